"""Benchmark (a): one watch of one task, polled N times, five ways.

The sandbox runs with `--clock polls`: its task `watch-N` answers FULLMIGRATING to the
first N - 1 polls and SUCCESS to the N-th, however fast each way polls, so every variant
makes exactly N polls. Each variant runs in a fresh process (`python -m
benchmarks.one_watch VARIANT`, settings in `BENCH_CONFIG`) and measures its own CPU
(`time.process_time()`: every thread of the process) two ways:

- *per poll*: CPU read as each poll starts; (CPU at the last poll - CPU at the second) /
  (N - 2) is the steady cost of one more poll. Left out: the watch's set-up and
  tear-down (flow run, task run, block load, the timeline artifact) and the first poll's
  one-off work (ours: the first-look log line and event, the stats request and the
  progress artifact); the whole-watch figure has them. For our client the reading is
  taken by a wrapper around `AsyncDcsClient.show_migration_task` (class-level, in the
  benchmark process only); for the others, in their loop.
- *whole watch*: CPU and wall time from just before the watch starts to just after it
  returns, everything included.

Peak RSS is the process's `ru_maxrss`.

The variants whose client comes from a `DcsCredentials` block (`ours-*`, `task-per-poll`)
take a slot of the DCS API budget (`flows.budget`) before each request. No limit exists
on the benchmark's Prefect server, so each process paces itself, and its budget is raised
in the child so that it never waits (`_budget_never_waits`): at the default 5 requests/s
the 200 polls 0.01 s apart would take 40 s, and the figure is what a poll costs, not the
budget's pace. The shared budget's cost (a Prefect API call per request) is not in it.

Variants:

- `bare-httpx`: no Prefect; an `httpx.AsyncClient` GET, `.json()["status"]`, sleep.
- `ours-token` / `ours-aksk`: `flows.wait.wait_for_migration_task` (one flow run, one task
  run, the whole polling loop inside), loading a saved `DcsCredentials` block by name.
- `task-per-poll`: a flow that calls a Prefect `@task` once per poll (the prefect-dbt
  Cloud pattern); the task does one `show_migration_task` on a client the flow opened once
  (kinder to the pattern than a client per poll), and returns the status.
- `sdk-in-task`: a loop around the official SDK's `show_migration_task` inside one
  Prefect task of a flow (AK/SK: the SDK signs every request).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.sdk import TERMINAL_STATUSES, sdk_client, sdk_status

VARIANTS = ("bare-httpx", "ours-token", "ours-aksk", "task-per-poll", "sdk-in-task")
PREFECT_VARIANTS = frozenset(VARIANTS) - {"bare-httpx"}
#: Also run with fewer polls: one task run per watch whatever the polls, or one per poll.
SMALL_VARIANTS = ("ours-token", "task-per-poll")
BLOCK_TOKEN = "bench-token"  # noqa: S105 (a block's name, not a token)
BLOCK_AKSK = "bench-aksk"
DONE_TASK = "bench-done"


def watch_task_id(polls: int) -> str:
    return f"watch-{polls}"


def scenario(poll_counts: list[int]) -> dict[str, Any]:
    """Tasks that end at an exact poll (under `--clock polls`), and one already done."""
    tasks: list[dict[str, Any]] = [
        {
            "task_id": watch_task_id(polls),
            "migration_type": "online_migration",
            "migration_method": "full_amount_migration",
            "steps": [
                {"status": "FULLMIGRATING", "seconds": polls - 0.5, "progress_to": 100},
                {"status": "SUCCESS"},
            ],
        }
        for polls in sorted(set(poll_counts))
    ]
    tasks.append({"task_id": DONE_TASK, "steps": [{"status": "SUCCESS"}]})
    return {"name": "bench-one-watch", "tasks": tasks}


# -- the child side: one variant, one process ---------------------------------------------


#: `time.process_time()` as each poll of the watch started.
POLL_CPU: list[float] = []


def _poll_started() -> None:
    POLL_CPU.append(time.process_time())


def _time_our_polls() -> None:
    """Note the CPU as each `show_migration_task` of our async client starts."""
    from blocks.client import AsyncDcsClient
    from blocks.models import MigrationTask

    show = AsyncDcsClient.show_migration_task

    async def timed(self: AsyncDcsClient, task_id: str) -> MigrationTask:
        _poll_started()
        return await show(self, task_id)

    AsyncDcsClient.show_migration_task = timed  # type: ignore[method-assign]


def _measure(run: Callable[[], Any]) -> dict[str, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = run()
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "outcome": str(outcome),
        "loop_cpu_s": POLL_CPU[-1] - POLL_CPU[1] if len(POLL_CPU) > 2 else float("nan"),
        "loop_polls": len(POLL_CPU),
    }


async def _bare(config: dict[str, Any]) -> str:
    import httpx

    url = f"{config['endpoint']}/v2/{config['project_id']}/migration-task/{config['task_id']}"
    headers = {"X-Auth-Token": config["token"], "Accept": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            _poll_started()
            response = await client.get(url, headers=headers)
            response.raise_for_status()
            status = str(response.json()["status"])
            if status in TERMINAL_STATUSES:
                return status
            await asyncio.sleep(config["interval"])


def run_bare(config: dict[str, Any]) -> dict[str, Any]:
    return _measure(lambda: asyncio.run(_bare(config)))


def _budget_never_waits(project_id: str) -> None:
    """Raise this process's API budget for the project so that it never makes a poll wait
    (it is still asked before each request)."""
    from flows.budget import Budget, api_budget

    api_budget(project_id).budget = Budget(requests_per_second=1e9, burst=10**9)


def run_ours(config: dict[str, Any], block: str) -> dict[str, Any]:
    from flows.wait import wait_for_migration_task

    _time_our_polls()
    _budget_never_waits(config["project_id"])

    def watch() -> str:
        task = asyncio.run(
            wait_for_migration_task(
                config["task_id"],
                credentials=block,
                poll_interval_seconds=config["interval"],
                timeout_seconds=600,
            )
        )
        return task.raw_status or ""

    return _measure(watch)


def run_task_per_poll(config: dict[str, Any]) -> dict[str, Any]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from blocks.client import AsyncDcsClient
    from flows.credentials import aload_credentials

    clients: list[AsyncDcsClient] = []
    _time_our_polls()
    _budget_never_waits(config["project_id"])

    @task(name="poll-migration-task", cache_policy=NO_CACHE)
    async def poll_status(task_id: str) -> str:
        return (await clients[0].show_migration_task(task_id)).raw_status or ""

    @flow(name="bench-task-run-per-poll")
    async def task_run_per_poll(task_id: str, credentials: str, interval: float) -> str:
        block = await aload_credentials(credentials)
        async with block.get_async_client() as client:
            clients.append(client)
            while True:
                status = await poll_status(task_id)
                if status in TERMINAL_STATUSES:
                    return status
                await asyncio.sleep(interval)

    return _measure(
        lambda: asyncio.run(task_run_per_poll(config["task_id"], BLOCK_TOKEN, config["interval"]))
    )


def run_sdk_in_task(config: dict[str, Any]) -> dict[str, Any]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from flows.credentials import load_credentials

    @task(name="sdk-poll-loop", cache_policy=NO_CACHE)
    def sdk_loop(task_id: str, credentials: str, interval: float) -> str:
        block = load_credentials(credentials)
        secret = block.secret_key.get_secret_value() if block.secret_key else ""
        client = sdk_client(block.dcs_endpoint, block.project_id, block.access_key or "", secret)
        try:
            while True:
                _poll_started()
                status = sdk_status(client, task_id)
                if status in TERMINAL_STATUSES:
                    return status
                time.sleep(interval)
        finally:
            client.get_http_client().close()

    @flow(name="bench-sdk-in-one-task")
    def sdk_flow(task_id: str, credentials: str, interval: float) -> str:
        return sdk_loop(task_id, credentials, interval)

    return _measure(lambda: sdk_flow(config["task_id"], BLOCK_AKSK, config["interval"]))


def run_first_request(config: dict[str, Any]) -> dict[str, Any]:
    """For benchmark (c): when the flow was called; the sandbox says when it was first asked."""
    if config.get("save_blocks"):
        save_blocks(config)
    from flows.wait import wait_for_migration_task

    called = time.monotonic()
    task = asyncio.run(
        wait_for_migration_task(DONE_TASK, credentials=BLOCK_TOKEN, poll_interval_seconds=1)
    )
    return {
        "flow_call_monotonic": called,
        "flow_return_monotonic": time.monotonic(),
        "outcome": task.raw_status,
    }


def save_blocks(config: dict[str, Any]) -> dict[str, Any]:
    """The two saved `DcsCredentials` blocks the Prefect variants load by name."""
    from blocks.credentials import DcsCredentials

    common = {"endpoint": config["endpoint"], "project_id": config["project_id"]}
    DcsCredentials(**common, token=config["token"]).save(BLOCK_TOKEN, overwrite=True)
    DcsCredentials(**common, access_key=config["access_key"], secret_key=config["secret_key"]).save(
        BLOCK_AKSK, overwrite=True
    )
    return {"saved": [BLOCK_TOKEN, BLOCK_AKSK]}


def child(variant: str) -> None:
    config: dict[str, Any] = json.loads(os.environ["BENCH_CONFIG"])
    runners: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "bare-httpx": run_bare,
        "ours-token": lambda c: run_ours(c, BLOCK_TOKEN),
        "ours-aksk": lambda c: run_ours(c, BLOCK_AKSK),
        "task-per-poll": run_task_per_poll,
        "sdk-in-task": run_sdk_in_task,
        "first-request": run_first_request,
        "save-blocks": save_blocks,
    }
    result = runners[variant](config)
    result.update(variant=variant, peak_rss_mb=harness.peak_rss_mb())
    harness.emit(result)


# -- the parent side ------------------------------------------------------------------------


@dataclass
class PrefectContext:
    """The Prefect server the variants report to, and a child's environment for it."""

    server: harness.Service
    env: dict[str, str]
    #: "SQLite" or "PostgreSQL": the server's database.
    database_kind: str = "SQLite"

    @property
    def database(self) -> Path:
        return Path(self.server.info["database"])


@dataclass
class Measurement:
    variant: str
    polls_asked: int
    polls: int
    requests: int
    cpu_s: float
    wall_s: float
    loop_cpu_s: float
    peak_rss_mb: float
    server_cpu_s: float
    sandbox_cpu_s: float
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_ms_per_poll(self) -> float:
        """The whole watch's CPU over its polls."""
        return 1000 * self.cpu_s / self.polls

    @property
    def loop_ms_per_poll(self) -> float:
        """CPU from the second poll to the last, per poll: the steady cost of a poll."""
        return 1000 * self.loop_cpu_s / (self.polls - 2)

    @property
    def task_runs(self) -> int:
        return self.rows.get("task_run", 0)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def child_config(sandbox: harness.Service, **extra: Any) -> dict[str, Any]:
    info = sandbox.info
    return {
        "endpoint": sandbox.url,
        "project_id": info["project_id"],
        "token": info["token"],
        "access_key": info["access_key"],
        "secret_key": info["secret_key"],
        **extra,
    }


def measure(
    variant: str,
    polls: int,
    interval: float,
    sandbox: harness.Service,
    prefect: PrefectContext,
    log: Path,
) -> Measurement:
    """One run of one variant in a fresh process, with what the servers saw of it."""
    config = child_config(sandbox, task_id=watch_task_id(polls), interval=interval)
    harness.sandbox_reset(sandbox)
    rows_before = harness.table_rows(prefect.database)
    server_cpu, sandbox_cpu = prefect.server.cpu_seconds(), sandbox.cpu_seconds()
    env = {**prefect.env, "BENCH_CONFIG": json.dumps(config)}
    result = harness.run_child("benchmarks.one_watch", [variant], env=env, log=log, timeout=600)
    seen = harness.sandbox_stats(sandbox)
    sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu
    if variant in PREFECT_VARIANTS:
        rows_after = harness.settled_rows(prefect.database)
    else:
        rows_after = harness.table_rows(prefect.database)
    by_route = seen["by_route"]
    measurement = Measurement(
        variant=variant,
        polls_asked=polls,
        polls=int(by_route.get("show_migration_task", 0)),
        requests=int(seen["total"]),
        cpu_s=float(result["cpu_s"]),
        wall_s=float(result["wall_s"]),
        loop_cpu_s=float(result["loop_cpu_s"]),
        peak_rss_mb=float(result["peak_rss_mb"]),
        server_cpu_s=prefect.server.cpu_seconds() - server_cpu,
        sandbox_cpu_s=sandbox_cpu,
        rows=harness.row_delta(rows_before, rows_after),
    )
    if (
        measurement.polls != polls
        or result["loop_polls"] != polls
        or result["outcome"] != "SUCCESS"
    ):
        msg = (
            f"{variant}: expected {polls} polls ending in SUCCESS, the sandbox saw "
            f"{measurement.polls}, the variant timed {result['loop_polls']} and returned "
            f"{result['outcome']!r}"
        )
        raise harness.BenchmarkError(msg)
    return measurement


@dataclass
class OneWatchResults:
    polls: int
    small_polls: int
    interval: float
    runs: list[list[Measurement]]

    def of(self, variant: str, polls: int) -> list[Measurement]:
        return [m for run in self.runs for m in run if m.variant == variant and m.polls == polls]


def run(
    sandbox: harness.Service,
    prefect: PrefectContext,
    workdir: Path,
    *,
    polls: int,
    small_polls: int,
    interval: float,
    runs: int,
    warmup: bool,
    say: Callable[[str], None],
) -> OneWatchResults:
    """Every variant at `polls` (two also at `small_polls`), `runs` rounds, interleaved."""
    log = workdir / "one_watch.log"
    # What ran before (the start-up part) must be in the database before anything counts.
    harness.settled_rows(prefect.database)
    if warmup:
        say("  warm-up: each variant once (not counted)")
        for variant in VARIANTS:
            measure(variant, small_polls, interval, sandbox, prefect, log)
    rounds: list[list[Measurement]] = []
    for number in range(1, runs + 1):
        round_: list[Measurement] = []
        for variant in VARIANTS:
            counts = (polls, small_polls) if variant in SMALL_VARIANTS else (polls,)
            for count in counts:
                m = measure(variant, count, interval, sandbox, prefect, log)
                say(
                    f"  run {number}/{runs} {variant:<14} {m.polls:>4} polls: "
                    f"{m.loop_ms_per_poll:6.3f} ms CPU/poll in the loop, "
                    f"{m.cpu_ms_per_poll:6.2f} over the whole watch, wall {m.wall_s:5.2f} s, "
                    f"{m.task_runs} task runs, {m.total_rows} rows, {m.peak_rss_mb:.0f} MB"
                )
                round_.append(m)
        rounds.append(round_)
    return OneWatchResults(polls, small_polls, interval, rounds)


__all__ = [
    "PREFECT_VARIANTS",
    "SMALL_VARIANTS",
    "VARIANTS",
    "Measurement",
    "OneWatchResults",
    "PrefectContext",
    "child_config",
    "measure",
    "run",
    "scenario",
]

if __name__ == "__main__":
    child(sys.argv[1])
