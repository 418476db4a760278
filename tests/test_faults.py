"""The faults of a long watch, on the production-shaped stack, with twenty runbooks waiting.

The Prefect server down for a minute, a worker's machine gone, PostgreSQL restarted: each
run still ends Completed (or Crashed, then Completed when run again), and the sandbox saw
exactly one IP exchange per task. See `tests/production.py` for the stack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.postgres import Postgres
from tests.processes import descendants
from tests.production import (
    HEARTBEAT_SECONDS,
    TASK_IDS,
    TO_READY,
    all_final,
    all_watching,
    exchanges,
    production_stack,
    reads,
    running_runs,
    start_runbooks,
)
from tests.stack import PREFECT, Stack, cli, flow_run, prefect, until

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 60
#: `within` of deployments/crash-zombie-runs.yaml: a run is Crashed this long after its
#: last heartbeat, plus the server's next look at proactive triggers.
ZOMBIE_WITHIN = 120


@pytest.fixture
def production(tmp_path: Path) -> Iterator[tuple[Stack, Postgres]]:
    """The production-shaped stack, fresh for the test, and its PostgreSQL."""
    with production_stack(tmp_path) as running:
        yield running


async def _all_completed_once(stack: Stack, runs: dict[str, UUID]) -> None:
    for task_id, run in (await all_final(stack, runs)).items():
        assert run.state.is_completed(), f"{task_id}: {run.state.type} {run.state.message}"
    assert exchanges(stack) == dict.fromkeys(TASK_IDS, 1)
    assert await running_runs(stack) == []


async def _events(stack: Stack, event: str) -> list[Any]:
    """Every event of type `event` the server holds."""
    from prefect.events.filters import EventFilter, EventNameFilter

    async with prefect(stack) as client:
        page = await client.read_events(EventFilter(event=EventNameFilter(name=[event])), limit=200)
    return list(page.events)


async def _logs_with(stack: Stack, text: str) -> int:
    """How many log lines the server holds that contain `text`."""
    from prefect.client.schemas.filters import LogFilter, LogFilterTextSearch

    async with prefect(stack) as client:
        logs = await client.read_logs(LogFilter(text=LogFilterTextSearch(query=text)), limit=200)
    return sum(text in log.message for log in logs)


async def test_the_server_down_for_a_minute_while_twenty_runbooks_wait(
    production: tuple[Stack, Postgres],
) -> None:
    """Server stopped 60 s as the tasks get ready: every run completes, one exchange each."""
    stack, _ = production
    runs = await start_runbooks(stack)
    await all_watching(stack)

    stack.server.stop()
    down = time.monotonic()
    stack.advance_sandbox(TO_READY)  # the watches end, and the cutovers begin, meanwhile
    await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - down))  # the outage itself
    stack.start_server()

    await _all_completed_once(stack, runs)
    # What was sent during the outage: the watches saw "ready" while the server was down.
    ready = await _events(stack, "dcs.migration.ready-for-cutover")
    seen = await _logs_with(stack, "FULLMIGRATING -> INCRMIGEATING")
    (stack.logs / "outage-evidence.txt").write_text(f"ready events {len(ready)}, logs {seen}\n")
    print(f"outage: ready events on the server {len(ready)}, ready log lines {seen}")


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
    runs = await start_runbooks(stack)
    await all_watching(stack)

    worker = max(stack.workers, key=lambda w: len(descendants(w.process.pid)))  # type: ignore[union-attr]
    assert worker.process is not None
    killed_runs = _flow_run_ids(descendants(worker.process.pid))
    assert killed_runs, "the worker ran none of the runbooks"
    worker.kill()
    killed_at = time.monotonic()

    async def crashed() -> bool:
        states = [(await flow_run(stack, run)).state for run in killed_runs]
        return all(state.is_crashed() for state in states)

    bound = ZOMBIE_WITHIN + HEARTBEAT_SECONDS + 30
    await until(stack, "the killed runs were not marked Crashed", crashed, bound)
    took = time.monotonic() - killed_at
    (stack.logs / "crash-evidence.txt").write_text(f"{len(killed_runs)} crashed in {took:.0f} s\n")
    print(f"worker kill: {len(killed_runs)} runs Crashed {took:.0f} s after the kill")
    for run in set(runs.values()) - killed_runs:  # the other worker's runs go on
        assert (await flow_run(stack, run)).state.is_running()

    worker.start()  # a new machine
    before = reads(stack)
    for run in killed_runs:
        cli(stack.env, PREFECT, "flow-run", "retry", str(run), log=stack.logs / "retry.log")
    await all_watching(stack, since=before)
    stack.advance_sandbox(TO_READY)
    await _all_completed_once(stack, runs)


async def test_postgres_restarted_while_twenty_runbooks_wait(
    production: tuple[Stack, Postgres],
) -> None:
    """PostgreSQL restarted under the server: every run completes, one exchange each."""
    stack, database = production
    runs = await start_runbooks(stack)
    await all_watching(stack)

    database.stop()
    database.start()
    stack.advance_sandbox(TO_READY)
    await _all_completed_once(stack, runs)
