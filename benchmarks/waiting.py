"""Benchmark (d): many migrations waiting at once, one fleet run against a runbook each.

Both ways run as they are deployed: flow runs of a deployment on a Prefect process worker,
each flow run a `python -m prefect.engine` subprocess of the worker.

- `fleet`: one `migration_fleet` run watching N tasks (the fan-out watcher: a page of
  statuses per list request);
- `runbooks`: N `migration_runbook` runs, one per task (each polls its own task).

Every task stays FULLMIGRATING for the whole measurement (nothing becomes ready), so what
is measured is the cost of waiting. Each measurement has its own sandbox (holding exactly
its N tasks, so the fleet lists only those), its own work pool, deployment and worker.
Once every flow run is Running, one interval more (plus a margin) lets each make its first
look and settle; then, over a window of several intervals, from /proc:

- CPU of the flow-run processes (every descendant of the worker), % of one core;
- peak RSS: the sum of each flow-run process's own peak (VmHWM, start-up included), and
  the highest sum of their RSS sampled every second in the window;
- requests: the sandbox's counter over the window, per interval;
- the worker's, the Prefect server's and the sandbox's CPU, beside ours, never added.

The flow-run processes are stopped by their PIDs after the window, then the worker.
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

import httpx

from benchmarks import harness, one_watch

WAYS = ("fleet", "runbooks")
BLOCK = one_watch.BLOCK_AKSK
#: Scenario seconds a task stays FULLMIGRATING: longer than any measurement.
WAITING_SECONDS = 10_000_000
#: Memory a runbook may need before one is started (measured ~100 MB, with headroom).
MB_PER_RUNBOOK_GUARD = 130
#: Memory left free for everyone else on a shared machine.
MB_SPARE = 3072


def task_id(number: int) -> str:
    return f"bench-wait-{number:05d}"


def scenario(tasks: int) -> dict[str, Any]:
    """N tasks that stay FULLMIGRATING for the whole measurement."""
    return {
        "name": f"bench-waiting-{tasks}",
        "speed": 1,
        "tasks": [
            {
                "task_id": task_id(number),
                "task_name": task_id(number),
                "migration_type": "online_migration",
                "migration_method": "full_amount_migration",
                "steps": [
                    {"status": "FULLMIGRATING", "seconds": WAITING_SECONDS, "progress_to": 50},
                    {"status": "SUCCESS"},
                ],
            }
            for number in range(tasks)
        ],
    }


def parameters(way: str, tasks: int, interval: float) -> list[dict[str, Any]]:
    """The flow runs' parameters: one fleet run for all tasks, or one runbook per task."""
    ids = [task_id(number) for number in range(tasks)]
    common = {"credentials": BLOCK, "poll_interval_seconds": interval, "timeout_seconds": 86400.0}
    if way == "fleet":
        return [{"task_ids": ids, **common}]
    return [{"task_id": one, "cutover": "none", **common} for one in ids]


# -- the child side: deploy and start the flow runs ---------------------------------------------


async def _start(config: dict[str, Any]) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    from flows.fleet import migration_fleet
    from flows.runbook import migration_runbook

    way, pool = config["way"], config["pool"]
    if way == "fleet":
        chosen: Any = migration_fleet
        entrypoint = "flows/fleet.py:migration_fleet"
    else:
        chosen = migration_runbook
        entrypoint = "flows/runbook.py:migration_runbook"
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(
                name=pool,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            ),
            overwrite=True,
        )
        flow_id = await client.create_flow(chosen)
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name=pool,
            work_pool_name=pool,
            entrypoint=entrypoint,
            path=str(harness.ROOT),
            pull_steps=[
                {
                    "prefect.deployments.steps.set_working_directory": {
                        "directory": str(harness.ROOT)
                    }
                }
            ],
        )
        ids = []
        for values in parameters(way, config["tasks"], config["interval"]):
            run = await client.create_flow_run_from_deployment(deployment_id, parameters=values)
            ids.append(str(run.id))
    return {"flow_runs": ids}


def child(command: str) -> None:
    config: dict[str, Any] = json.loads(os.environ["BENCH_CONFIG"])
    if command != "start":
        msg = f"unknown command {command!r}: the only one is 'start'"
        raise SystemExit(msg)
    harness.emit(asyncio.run(_start(config)))


# -- the parent side ----------------------------------------------------------------------------


@dataclass
class WaitingSettings:
    fleet_sizes: list[int]
    runbook_sizes: list[int]
    #: Runbooks not run at this count: extrapolated from the largest measured count.
    extrapolate_to: int
    interval: float
    window: float
    #: The Prefect server's database, as the report names it.
    server_database: str = "SQLite"


@dataclass
class WaitingMeasurement:
    way: str
    migrations: int
    #: Why it was not run (then every figure is NaN).
    not_run: str | None = None
    processes: int = 0
    window_s: float = float("nan")
    cpu_s: float = float("nan")
    peak_rss_mb: float = float("nan")
    peak_sum_rss_mb: float = float("nan")
    requests: dict[str, int] = field(default_factory=dict)
    worker_cpu_s: float = float("nan")
    worker_peak_rss_mb: float = float("nan")
    server_cpu_s: float = float("nan")
    sandbox_cpu_s: float = float("nan")
    #: From creating the flow runs to every one Running.
    to_running_s: float = float("nan")
    #: CPU of the flow-run processes from their start to the window's start.
    startup_cpu_s: float = float("nan")

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_s / self.window_s

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def per_interval(self, interval: float, route: str | None = None) -> float:
        count = self.total_requests if route is None else self.requests.get(route, 0)
        return count * interval / self.window_s

    def percent_of(self, seconds: float) -> float:
        return 100 * seconds / self.window_s


def _available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _states_or_busy(api_url: str, run_ids: list[str], say: Callable[[str], None]) -> dict[str, int]:
    """`_states`, or {} while the Prefect server is too busy to answer (100 runs starting
    at once kept a SQLite server past a 60 s timeout): the caller's deadline still holds."""
    try:
        return _states(api_url, run_ids)
    except httpx.HTTPError as error:
        say(f"    the Prefect server did not answer the state count ({error!r}); asking again")
        return {}


def _states(api_url: str, run_ids: list[str]) -> dict[str, int]:
    """How many of the flow runs are in each state type."""
    counts: dict[str, int] = {}
    for start in range(0, len(run_ids), 200):
        chunk = run_ids[start : start + 200]
        answer = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"flow_runs": {"id": {"any_": chunk}}, "limit": len(chunk)},
            timeout=60,
        )
        answer.raise_for_status()
        for run in answer.json():
            kind = (run.get("state") or {}).get("type") or "NONE"
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _stop_flow_runs(worker_pid: int) -> None:
    """Stop every process under the worker, by PID: TERM, a grace period, then KILL."""
    pids = harness.descendants(worker_pid)
    for pid in pids:
        harness.signal_pid(pid, "TERM")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(harness.pid_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if harness.pid_alive(pid):
            harness.signal_pid(pid, "KILL")


def measure(
    way: str,
    tasks: int,
    settings: WaitingSettings,
    prefect: one_watch.PrefectContext,
    workdir: Path,
    say: Callable[[str], None],
) -> WaitingMeasurement:
    """One way at one size: its sandbox, pool, deployment, worker and flow runs."""
    name = f"wait-{way}-{tasks}"
    scenario_file = workdir / f"{name}.json"
    scenario_file.write_text(json.dumps(scenario(tasks)))
    log = workdir / f"{name}.log"
    with harness.sandbox_process(scenario_file, "real", workdir / f"sandbox-{name}.log") as sandbox:
        harness.run_child(
            "benchmarks.one_watch",
            ["save-blocks"],
            env={**prefect.env, "BENCH_CONFIG": json.dumps(one_watch.child_config(sandbox))},
            log=log,
            timeout=300,
        )
        config = {"way": way, "pool": name, "tasks": tasks, "interval": settings.interval}
        env = {**prefect.env, "BENCH_CONFIG": json.dumps(config)}
        started = harness.run_child("benchmarks.waiting", ["start"], env=env, log=log, timeout=600)
        run_ids: list[str] = started["flow_runs"]
        created = time.monotonic()
        worker_env = {
            **prefect.env,
            # As deployments/prefect.yaml sets for every flow run: ride out a busy server.
            "PREFECT_CLIENT_MAX_RETRIES": "8",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        }
        command = [str(harness.BIN / "prefect"), "worker", "start", "--pool", name]
        with harness.background(command, worker_env, workdir / f"worker-{name}.log") as worker:
            try:
                return _measure_running(
                    way, tasks, settings, prefect, sandbox, worker.pid, run_ids, created, say
                )
            finally:
                _stop_flow_runs(worker.pid)


def _measure_running(
    way: str,
    tasks: int,
    settings: WaitingSettings,
    prefect: one_watch.PrefectContext,
    sandbox: harness.Service,
    worker_pid: int,
    run_ids: list[str],
    created: float,
    say: Callable[[str], None],
) -> WaitingMeasurement:
    # Starting 100 interpreters on 2 shared cores takes minutes: allow ~4 s of each.
    deadline = created + 120 + 4 * len(run_ids)
    while True:
        states = _states_or_busy(prefect.server.url, run_ids, say)
        if states.get("RUNNING", 0) == len(run_ids):
            break
        ended = {kind: n for kind, n in states.items() if kind not in ("SCHEDULED", "PENDING")}
        if ended.keys() - {"RUNNING"} or time.monotonic() > deadline:
            msg = f"{way} at {tasks}: flow runs not all Running: {states}"
            raise harness.BenchmarkError(msg)
        time.sleep(2)
    to_running = time.monotonic() - created
    say(f"    all {len(run_ids)} flow run(s) Running after {to_running:.0f} s; settling")
    # One interval for every run's first look, and a margin for the last to settle.
    time.sleep(settings.interval + 10)
    processes = harness.descendants(worker_pid)
    cpu_before = {pid: harness.pid_cpu_seconds(pid) for pid in processes}
    worker_before = harness.pid_cpu_seconds(worker_pid)
    server_before, sandbox_before = prefect.server.cpu_seconds(), sandbox.cpu_seconds()
    requests_before = harness.sandbox_stats(sandbox)["by_route"]
    began = time.monotonic()
    peak_sum = 0.0
    while (left := began + settings.window - time.monotonic()) > 0:
        peak_sum = max(peak_sum, sum(harness.pid_memory_mb(pid)[0] for pid in processes))
        time.sleep(min(1.0, left))
    window = time.monotonic() - began
    requests_after = harness.sandbox_stats(sandbox)["by_route"]
    cpu = sum(harness.pid_cpu_seconds(pid) - before for pid, before in cpu_before.items())
    return WaitingMeasurement(
        way=way,
        migrations=tasks,
        processes=len(processes),
        window_s=window,
        cpu_s=cpu,
        peak_rss_mb=sum(harness.pid_memory_mb(pid)[1] for pid in processes),
        peak_sum_rss_mb=peak_sum,
        requests={
            route: int(count) - int(requests_before.get(route, 0))
            for route, count in requests_after.items()
        },
        worker_cpu_s=harness.pid_cpu_seconds(worker_pid) - worker_before,
        worker_peak_rss_mb=harness.pid_memory_mb(worker_pid)[1],
        server_cpu_s=prefect.server.cpu_seconds() - server_before,
        sandbox_cpu_s=sandbox.cpu_seconds() - sandbox_before,
        to_running_s=to_running,
        startup_cpu_s=sum(cpu_before.values()),
    )


def _room_for(tasks: int) -> str | None:
    """Why `tasks` runbooks would not fit in memory now (None: they would)."""
    needed = tasks * MB_PER_RUNBOOK_GUARD + MB_SPARE
    available = _available_mb()
    if available < needed:
        return (
            f"needs ~{needed:,.0f} MB ({tasks:,} x {MB_PER_RUNBOOK_GUARD} MB + "
            f"{MB_SPARE:,} MB spare), {available:,.0f} MB available"
        )
    return None


def run(
    settings: WaitingSettings,
    prefect: one_watch.PrefectContext,
    workdir: Path,
    say: Callable[[str], None],
) -> list[WaitingMeasurement]:
    """The fleet at each fleet size, then the runbooks at each runbook size that fits."""
    measurements = []
    plan = [("fleet", n) for n in settings.fleet_sizes]
    plan += [("runbooks", n) for n in settings.runbook_sizes]
    for way, tasks in plan:
        if way == "runbooks" and (reason := _room_for(tasks)) is not None:
            say(f"  {tasks:>5} waiting, {way}: NOT RUN ({reason})")
            measurements.append(WaitingMeasurement(way, tasks, not_run=reason))
            continue
        say(f"  {tasks:>5} waiting, {way}: starting")
        try:
            m = measure(way, tasks, settings, prefect, workdir, say)
        except harness.BenchmarkError as error:
            # One row lost (a flow run crashed, say) must not cost the rows measured.
            say(f"  {tasks:>5} waiting, {way}: FAILED ({error})")
            measurements.append(WaitingMeasurement(way, tasks, not_run=f"failed: {error}"))
            continue
        say(
            f"  {tasks:>5} waiting, {way}: {m.processes} process(es), peak RSS "
            f"{m.peak_rss_mb:.0f} MB, CPU {m.cpu_percent:.2f}%, "
            f"{m.per_interval(settings.interval):.1f} requests per interval"
        )
        measurements.append(m)
    return measurements


__all__ = [
    "WAYS",
    "WaitingMeasurement",
    "WaitingSettings",
    "measure",
    "parameters",
    "run",
    "scenario",
]

if __name__ == "__main__":
    child(sys.argv[1])
