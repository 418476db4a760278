"""The production shape, and the faults of a long watch, on one PostgreSQL stack.

Two workers, the sensor, the automatic cutover, twenty runbooks per test; then PostgreSQL
restarted, the Prefect server down for a minute, a worker's machine gone. Each run ends
Completed (or Crashed, then Completed when run again) with exactly one IP exchange per
task. The stack (`tests/production.py`) is made once for the module: the tests run in
this order, each on its own group of tasks, and each leaves the stack whole (automation
paused, PostgreSQL, server and both workers running).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.postgres import Postgres
from tests.processes import descendants
from tests.production import (
    HEARTBEAT_SECONDS,
    all_completed_once,
    all_watching,
    group,
    make_ready,
    production_stack,
    reads,
    running_runs,
    start_runbooks,
)
from tests.stack import PREFECT, Stack, cli, final, flow_run, prefect, runs_of, start, until

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 60
#: `within` of deployments/crash-zombie-runs.yaml: a run is Crashed this long after its
#: last heartbeat (plus the server's next look at proactive triggers).
ZOMBIE_WITHIN = 120


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Postgres]]:
    """The production-shaped stack, one for the module, and its PostgreSQL."""
    with production_stack(tmp_path_factory.mktemp("production")) as running:
        yield running


async def test_twenty_runbooks_two_workers_on_postgres_each_exchange_once(
    production: tuple[Stack, Postgres],
) -> None:
    """20 runbooks on 2 workers, the sensor and the automatic cutover on: all Completed, 20x1."""
    stack, _ = production
    tasks = group("auto")
    cli(stack.env, PREFECT, "automation", "resume", "dcs-auto-cutover", log=stack.logs / "on.log")
    try:
        runs = await start_runbooks(stack, tasks)
        await all_watching(stack, tasks)
        make_ready(stack, tasks)

        # The sensor (as scheduled: every task, its one state) sees each task ready once:
        # the automation starts a run for each, and each stands down, since a runbook
        # already stands for its task (or has cut it over).
        sensor = await start(stack, "dcs-migration-sensor/every-2-minutes", {})
        assert (await final(stack, sensor)).state.is_completed()
        await all_completed_once(stack, tasks, runs)

        async def automatic_runs_done() -> list[Any] | None:
            automatic = await runs_of(stack, "dcs-migration-runbook/cutover-on-ready")
            done = len(automatic) >= len(runs) and all(r.state.is_final() for r in automatic)
            return automatic if done else None

        automatic = await until(stack, "20 automatic runs did not end", automatic_runs_done, 240)
    finally:
        cli(
            stack.env,
            PREFECT,
            "automation",
            "pause",
            "dcs-auto-cutover",
            log=stack.logs / "off.log",
        )
    assert sorted(run.parameters["task_id"] for run in automatic) == tasks.task_ids
    for run in automatic:
        assert run.state.is_completed(), run.state.message
    assert await running_runs(stack) == []


async def test_postgres_restarted_while_twenty_runbooks_wait(
    production: tuple[Stack, Postgres],
) -> None:
    """PostgreSQL restarted under the server: every run completes, one exchange each."""
    stack, database = production
    tasks = group("pg")
    runs = await start_runbooks(stack, tasks)
    await all_watching(stack, tasks)

    database.stop()
    database.start()
    make_ready(stack, tasks)
    await all_completed_once(stack, tasks, runs)
    assert await running_runs(stack) == []


async def _outage_evidence(stack: Stack, runs: list[UUID], down: datetime, up: datetime) -> str:
    """What the server holds, emitted by `runs` while it was down: logs, events, heartbeats."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )
    from prefect.events.schemas.events import ResourceSpecification

    during = EventOccurredFilter(since=down, until=up)
    async with prefect(stack) as client:
        logs = await client.read_logs(
            LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=runs),
                timestamp=LogFilterTimestamp(after_=down, before_=up),
            ),
            limit=200,
        )
        ready = await client.read_events(
            EventFilter(
                occurred=during,
                event=EventNameFilter(name=["dcs.migration.ready-for-cutover"]),
                resource=EventResourceFilter(
                    id_prefix=["dcs.migration-task.outage-"],
                    labels=ResourceSpecification({"dcs.emitter": "watch"}),
                ),
            ),
            limit=1,  # the page's total counts them all
        )
        beats = await client.read_events(
            EventFilter(
                occurred=during,
                event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                resource=EventResourceFilter(id=[f"prefect.flow-run.{run}" for run in runs]),
            ),
            limit=1,
        )
    became_ready = sum("-> INCRMIGEATING" in log.message for log in logs)
    return (
        f"outage {(up - down).total_seconds():.0f} s: {len(logs)} log lines of the runs"
        f" ({became_ready} 'ready' lines), {ready.total} ready-for-cutover events"
        f" of the watches, {beats.total} heartbeats, all stamped inside the outage"
    )


async def test_the_server_down_for_a_minute_while_twenty_runbooks_wait(
    production: tuple[Stack, Postgres],
) -> None:
    """Server stopped 60 s as the tasks get ready: every run completes, one exchange each."""
    stack, _ = production
    tasks = group("outage")
    runs = await start_runbooks(stack, tasks)
    await all_watching(stack, tasks)

    stack.server.stop()
    down, started = datetime.now(timezone.utc), time.monotonic()
    make_ready(stack, tasks)  # the watches end, and the cutovers begin, meanwhile
    await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - started))
    up = datetime.now(timezone.utc)
    stack.start_server()

    await all_completed_once(stack, tasks, runs)
    assert await running_runs(stack) == []
    evidence = await _outage_evidence(stack, list(runs.values()), down, up)
    (stack.logs / "outage-evidence.txt").write_text(evidence + "\n")
    print(evidence)


def _flow_run_ids(pids: list[int]) -> set[UUID]:
    """The flow runs that the processes `pids` ran (from their environment)."""
    found = set()
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                found.add(UUID(item.split(b"=", 1)[1].decode()))
    return found


async def test_a_worker_killed_its_runs_crash_in_bounded_time_and_run_again_once(
    production: tuple[Stack, Postgres],
) -> None:
    """Worker and its runs SIGKILLed: Crashed within 120+30 s; retried, they cut over once."""
    stack, _ = production
    tasks = group("crash")
    runs = await start_runbooks(stack, tasks)
    await all_watching(stack, tasks)

    worker = max(stack.workers, key=lambda w: len(descendants(w.process.pid)))  # type: ignore[union-attr]
    assert worker.process is not None
    killed_runs = _flow_run_ids(descendants(worker.process.pid)) & set(runs.values())
    assert killed_runs, "the worker ran none of the runbooks"
    worker.kill()
    killed_at = time.monotonic()
    worker.start()  # a new machine: the stack is whole again

    async def crashed() -> bool:
        states = [(await flow_run(stack, run)).state for run in killed_runs]
        return all(state.is_crashed() for state in states)

    bound = ZOMBIE_WITHIN + HEARTBEAT_SECONDS + 15
    await until(stack, "the killed runs were not marked Crashed", crashed, bound)
    took = time.monotonic() - killed_at
    (stack.logs / "crash-evidence.txt").write_text(f"{len(killed_runs)} crashed in {took:.0f} s\n")
    print(f"worker kill: {len(killed_runs)} runs Crashed {took:.0f} s after the kill")
    for run in set(runs.values()) - killed_runs:  # the other worker's runs go on
        assert (await flow_run(stack, run)).state.is_running()

    before = reads(stack, tasks)
    for run in killed_runs:
        cli(stack.env, PREFECT, "flow-run", "retry", str(run), log=stack.logs / "retry.log")
    await all_watching(stack, tasks, since=before)
    make_ready(stack, tasks)
    await all_completed_once(stack, tasks, runs)
    assert await running_runs(stack) == []
