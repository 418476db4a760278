"""Benchmark (b): many tasks watched at once, each flipping to a terminal status at random.

A generated scenario (seeded RNG) gives each of N tasks FULLMIGRATING for a random time
in [0.15, 0.8] x the period, then SUCCESS (9 in 10) or MIGRATION_FAILED. The sandbox runs
at speed 1 in its own process. Each variant runs in a fresh process (`python -m
benchmarks.fanout VARIANT`, settings in `BENCH_CONFIG`) that resets the sandbox (scenario
time 0, counter cleared), notes `time.monotonic()` around the reset, and watches every
task until all are terminal or the period is over:

- `ours`: `flows.polling.watch_tasks` over one `AsyncDcsClient` (AK/SK): a page of
  statuses per list request, a task's details only when its status changed; a
  `WatchObserver` records the moment each terminal status reaches the observer.
- `sdk`: the official SDK (AK/SK) from a thread pool: each round, one
  `show_migration_task` per pending task; rounds start one interval apart, as ours do.

Detection latency of a task = (moment the watcher saw its terminal status) - (reset
moment + its scripted flip time), infinite for a task whose flip the watch never saw
(it counts in the percentiles as the slowest). CLOCK_MONOTONIC is shared by every
process, so both readings are on one clock. Requests are counted by the sandbox's counter.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.sdk import TERMINAL_STATUSES, sdk_client, sdk_status

VARIANTS = ("ours", "sdk")
#: `ours` with `FanoutSettings.narrow_concurrency` requests in flight instead of `concurrency`.
NARROW = "ours-narrow"
#: A task that does not flip stays in progress this many periods: never within the watch.
NEVER_PERIODS = 100


def scenario(tasks: int, period: float, seed: int, flip_every: int = 1) -> dict[str, Any]:
    """N tasks with seeded flip times in [0.15, 0.8] x `period` (scenario speed 1); with
    `flip_every` k > 1 only every k-th task flips, the others stay FULLMIGRATING."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible benchmark, not a secret)
    scripts = []
    for number in range(tasks):
        flip = round(rng.uniform(0.15 * period, 0.8 * period), 3)
        if number % flip_every:
            flip = NEVER_PERIODS * period
        final = "SUCCESS" if rng.random() < 0.9 else "MIGRATION_FAILED"
        scripts.append(
            {
                "task_id": f"{rng.getrandbits(128):032x}",
                "task_name": f"bench-fanout-{number:05d}",
                "migration_type": "online_migration",
                "migration_method": "full_amount_migration",
                "steps": [
                    {"status": "FULLMIGRATING", "seconds": flip, "progress_to": 100},
                    {"status": final},
                ],
            }
        )
    return {"name": f"bench-fanout-{tasks}", "speed": 1, "tasks": scripts}


# -- the child side -------------------------------------------------------------------------


def _reset(endpoint: str) -> float:
    """Reset the sandbox; the monotonic moment of scenario time 0 (midpoint of the call)."""
    import httpx

    before = time.monotonic()
    httpx.post(f"{endpoint}/_sandbox/reset", timeout=10).raise_for_status()
    return (before + time.monotonic()) / 2


async def _ours(config: dict[str, Any], task_ids: list[str]) -> dict[str, Any]:
    from blocks.models import MigrationTask, MigrationTaskList
    from blocks.settings import DcsSettings
    from flows.polling import WatchObserver, WatchSettings, open_client, watch_tasks

    class Recorder(WatchObserver):
        def __init__(self) -> None:
            self.seen: dict[str, float] = {}

        async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
            if task.is_terminal and task.task_id and task.task_id not in self.seen:
                self.seen[task.task_id] = time.monotonic()

    settings = DcsSettings(
        endpoint=config["endpoint"],
        project_id=config["project_id"],
        access_key=config["access_key"],
        secret_key=config["secret_key"],
    )
    recorder = Recorder()
    listed: dict[str, float] = {}
    rounds = 0
    start = _reset(config["endpoint"])
    cpu, wall = time.process_time(), time.perf_counter()
    async with open_client(settings, max_connections=config["concurrency"]) as client:
        list_page = client.list_migration_tasks

        async def recording_list(**kwargs: Any) -> MigrationTaskList:
            nonlocal rounds
            page = await list_page(**kwargs)
            now = time.monotonic()
            rounds += kwargs.get("offset", 0) == 0
            for summary in page.migration_tasks:
                terminal = summary.raw_status in TERMINAL_STATUSES
                if terminal and summary.task_id and summary.task_id not in listed:
                    listed[summary.task_id] = now
            return page

        client.list_migration_tasks = recording_list  # type: ignore[method-assign]
        outcomes = await watch_tasks(
            client,
            task_ids,
            WatchSettings(
                poll_interval_seconds=config["interval"],
                timeout_seconds=config["period"],
                track_progress=False,
            ),
            recorder,
            max_concurrency=config["concurrency"],
            max_requests_per_second=config["rps"],
            page_size=config["page_size"],
        )
    errors = sum(
        1
        for outcome in outcomes.values()
        # A failed migration is a flip; a timeout is a task that does not flip in the period.
        if type(outcome.error).__name__ not in ("NoneType", "MigrationFailed", "MigrationTimeout")
    )
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "start_monotonic": start,
        "seen": recorder.seen,
        "listed": listed,
        "list_rounds": rounds,
        "errors": errors,
    }


def _sdk(config: dict[str, Any], task_ids: list[str]) -> dict[str, Any]:
    local = threading.local()
    errors = 0

    def show(task_id: str) -> tuple[str | None, float]:
        nonlocal errors
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = sdk_client(
                config["endpoint"], config["project_id"], config["access_key"], config["secret_key"]
            )
        try:
            status: str | None = sdk_status(client, task_id)
        except Exception:  # the SDK's exceptions share no root but Exception: count, go on
            errors += 1
            status = None
        return status, time.monotonic()

    seen: dict[str, float] = {}
    rounds = 0
    start = _reset(config["endpoint"])
    cpu, wall = time.process_time(), time.perf_counter()
    deadline = time.monotonic() + config["period"]
    pending = list(task_ids)
    with ThreadPoolExecutor(config["threads"], thread_name_prefix="sdk") as pool:
        while pending:
            rounds += 1
            round_started = time.monotonic()
            still = []
            for task_id, (status, at) in zip(pending, pool.map(show, pending), strict=True):
                if status in TERMINAL_STATUSES:
                    seen[task_id] = at
                else:
                    still.append(task_id)
            pending = still
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            until_next = config["interval"] - (time.monotonic() - round_started)
            time.sleep(max(0.0, min(until_next, remaining)))
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "start_monotonic": start,
        "seen": seen,
        "listed": {},
        "list_rounds": rounds,
        "errors": errors,
    }


def _latencies(seen: dict[str, float], flips: dict[str, float], start: float) -> list[float]:
    """Per task: seen - flipped; infinite for a task the watch never saw flip."""
    return [
        seen[task_id] - (start + flip) if task_id in seen else math.inf
        for task_id, flip in flips.items()
    ]


def child(variant: str) -> None:
    config: dict[str, Any] = json.loads(os.environ["BENCH_CONFIG"])
    data = json.loads(Path(config["scenario"]).read_text())
    task_ids = [task["task_id"] for task in data["tasks"]]
    flips = {
        task["task_id"]: float(task["steps"][0]["seconds"])
        for task in data["tasks"]
        if float(task["steps"][0]["seconds"]) <= config["period"]
    }
    raw = _sdk(config, task_ids) if variant == "sdk" else asyncio.run(_ours(config, task_ids))
    latencies = _latencies(raw["seen"], flips, raw["start_monotonic"])
    listed = _latencies(raw["listed"], flips, raw["start_monotonic"]) if raw["listed"] else []
    harness.emit(
        {
            "variant": variant,
            "tasks": len(task_ids),
            "transitions": len(flips),
            "cpu_s": raw["cpu_s"],
            "wall_s": raw["wall_s"],
            "detected": len(raw["seen"]),
            "latency_p50_s": harness.percentile(latencies, 0.5),
            "latency_p99_s": harness.percentile(latencies, 0.99),
            "latency_max_s": max(latencies, default=math.nan),
            "listed_p50_s": harness.percentile(listed, 0.5),
            "listed_p99_s": harness.percentile(listed, 0.99),
            "rounds": raw["list_rounds"],
            "errors": raw["errors"],
            "peak_rss_mb": harness.peak_rss_mb(),
        }
    )


# -- the parent side ------------------------------------------------------------------------


@dataclass
class FanoutSettings:
    sizes: list[int]
    period: float
    interval: float
    page_size: int
    concurrency: int
    rps: float
    threads: int
    runs: int
    seed: int
    #: Every k-th task flips within the period (1: every task).
    flip_every: int = 1
    #: max_concurrency of the `ours-narrow` variant.
    narrow_concurrency: int = 3


@dataclass
class FanoutMeasurement:
    variant: str
    tasks: int
    result: dict[str, Any]
    requests: dict[str, int]
    sandbox_cpu_s: float
    flip_every: int = 1

    @property
    def transitions(self) -> int:
        return int(self.result.get("transitions", self.tasks))

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def wall_s(self) -> float:
        return float(self.result["wall_s"])

    @property
    def cpu_percent(self) -> float:
        return 100 * float(self.result["cpu_s"]) / self.wall_s

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * float(self.result["cpu_s"]) / max(1, self.total_requests)

    @property
    def requests_per_second(self) -> float:
        return self.total_requests / self.wall_s

    @property
    def sandbox_cpu_percent(self) -> float:
        return 100 * self.sandbox_cpu_s / self.wall_s

    def expected_requests(self, page_size: int) -> int:
        """List pages each round, one read per transition (each flipping task flips once)."""
        pages = max(1, math.ceil(self.tasks / page_size))
        return int(self.result["rounds"]) * pages + self.transitions


def measure(
    variant: str,
    tasks: int,
    scenario_file: Path,
    sandbox: harness.Service,
    settings: FanoutSettings,
    log: Path,
) -> FanoutMeasurement:
    info = sandbox.info
    config = {
        "endpoint": sandbox.url,
        "project_id": info["project_id"],
        "access_key": info["access_key"],
        "secret_key": info["secret_key"],
        "scenario": str(scenario_file),
        "interval": settings.interval,
        "period": settings.period,
        "page_size": settings.page_size,
        "concurrency": settings.narrow_concurrency if variant == NARROW else settings.concurrency,
        "rps": settings.rps,
        "threads": settings.threads,
    }
    sandbox_cpu = sandbox.cpu_seconds()
    env = harness.child_env(BENCH_CONFIG=json.dumps(config))
    timeout = settings.period * 3 + 120
    result = harness.run_child("benchmarks.fanout", [variant], env=env, log=log, timeout=timeout)
    seen = harness.sandbox_stats(sandbox)
    return FanoutMeasurement(
        variant=variant,
        tasks=tasks,
        result=result,
        requests={route: int(count) for route, count in seen["by_route"].items()},
        sandbox_cpu_s=sandbox.cpu_seconds() - sandbox_cpu,
        flip_every=settings.flip_every,
    )


def run(
    settings: FanoutSettings,
    workdir: Path,
    say: Callable[[str], None],
    variants: tuple[str, ...] = VARIANTS,
) -> list[FanoutMeasurement]:
    """Each size: its own sandbox process; `runs` rounds of each variant (ours, the SDK)."""
    log = workdir / "fanout.log"
    measurements = []
    for tasks in settings.sizes:
        name = f"fanout-{tasks}" + (
            f"-every-{settings.flip_every}" if settings.flip_every > 1 else ""
        )
        scenario_file = workdir / f"{name}.json"
        data = scenario(tasks, settings.period, settings.seed, settings.flip_every)
        scenario_file.write_text(json.dumps(data))
        sandbox_log = workdir / f"sandbox-{name}.log"
        sparse = f" (1 in {settings.flip_every} flips)" if settings.flip_every > 1 else ""
        with harness.sandbox_process(scenario_file, "real", sandbox_log) as sandbox:
            for number in range(1, settings.runs + 1):
                for variant in variants:
                    m = measure(variant, tasks, scenario_file, sandbox, settings, log)
                    r = m.result
                    say(
                        f"  {tasks:>5} tasks{sparse} run {number}/{settings.runs} {variant:<4}: "
                        f"{m.requests_per_second:7.1f} req/s, CPU {m.cpu_percent:5.1f}%, "
                        f"p50 {r['latency_p50_s']:.2f} s, p99 {r['latency_p99_s']:.2f} s, "
                        f"detected {r['detected']}/{r['transitions']}, {r['peak_rss_mb']:.0f} MB, "
                        f"sandbox CPU {m.sandbox_cpu_percent:.0f}%"
                    )
                    measurements.append(m)
    return measurements


__all__ = [
    "NARROW",
    "VARIANTS",
    "FanoutMeasurement",
    "FanoutSettings",
    "measure",
    "run",
    "scenario",
]

if __name__ == "__main__":
    child(sys.argv[1])
