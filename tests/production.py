"""The production-shaped stack: PostgreSQL, two process workers, twenty runbooks at once.

Shared by `tests/test_production.py` (the stack working) and `tests/test_faults.py` (the
faults of a long watch). The runbooks' parameters live in `RUNBOOK_PARAMETERS` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from tests.postgres import Postgres, running_postgres
from tests.stack import DATA, ROOT, Stack, final, prefect, running_stack, start, until

SCENARIO = DATA / "production.yaml"
TASK_IDS = [f"prod-{n:02d}" for n in range(1, 21)]
RUNBOOK = "dcs-migration-runbook/manual"
#: Every runbook of these tests gets these (plus its task_id): change them here only.
RUNBOOK_PARAMETERS: dict[str, Any] = {
    "cutover": "exchange_ip",
    "require_approval": False,  # the deployment asks for approval by default
    "poll_interval_seconds": 1.0,
}
#: Scenario seconds that take every task of SCENARIO to incremental sync (ready).
TO_READY = 3600
ZOMBIES = ROOT / "deployments" / "crash-zombie-runs.yaml"
#: Flow-run heartbeats (Prefect's minimum); `ZOMBIES` crashes a run that misses them.
HEARTBEAT_SECONDS = 30


@contextmanager
def production_stack(logs: Path) -> Iterator[tuple[Stack, Postgres]]:
    """PostgreSQL, the Prefect server on it, the sandbox, two workers, zombie detection."""
    with (
        running_postgres(logs) as database,
        running_stack(
            logs,
            SCENARIO,
            database_url=database.url,
            workers=2,
            automations=(ZOMBIES,),
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
        ) as stack,
    ):
        yield stack, database


async def start_runbooks(stack: Stack) -> dict[str, UUID]:
    """One manual runbook per task of the scenario, all at once; their run ids by task."""
    ids = await asyncio.gather(
        *(start(stack, RUNBOOK, {"task_id": t, **RUNBOOK_PARAMETERS}) for t in TASK_IDS)
    )
    return dict(zip(TASK_IDS, ids, strict=True))


def reads(stack: Stack) -> dict[str, int]:
    """How many times each task was read (successfully) so far."""
    tasks = stack.sandbox()["tasks"]
    return {t: int(tasks[t]["reads"]) for t in TASK_IDS}


async def all_watching(
    stack: Stack, since: dict[str, int] | None = None, timeout: float = 240
) -> None:
    """Wait until every task was read (more often than `since` says): all twenty wait."""

    async def watching() -> bool:
        now = reads(stack)
        return all(now[t] > (since or {}).get(t, 0) for t in TASK_IDS)

    await until(stack, "not every runbook watches its task", watching, timeout)


async def all_final(stack: Stack, runs: dict[str, UUID], timeout: float = 300) -> dict[str, Any]:
    """Each run once final (bounded wait): the flow runs by task."""
    found = await asyncio.gather(*(final(stack, run, timeout) for run in runs.values()))
    return dict(zip(runs, found, strict=True))


def exchanges(stack: Stack) -> dict[str, int]:
    """How many IP exchanges the sandbox was asked for, by task."""
    tasks = stack.sandbox()["tasks"]
    return {t: int(tasks[t]["exchange_requests"]) for t in TASK_IDS}


async def running_runs(stack: Stack) -> list[Any]:
    """Runbook runs the server still has as Running (or Pending); the sensor's come and go."""
    from prefect.client.schemas.filters import FlowFilter, FlowRunFilter, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    active = FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
    async with prefect(stack) as client:
        return list(
            await client.read_flow_runs(
                flow_filter=FlowFilter(name={"any_": ["dcs-migration-runbook"]}),
                flow_run_filter=FlowRunFilter(state={"type": active}),
            )
        )


__all__ = [
    "HEARTBEAT_SECONDS",
    "RUNBOOK",
    "RUNBOOK_PARAMETERS",
    "TASK_IDS",
    "TO_READY",
    "all_final",
    "all_watching",
    "exchanges",
    "production_stack",
    "reads",
    "running_runs",
    "start_runbooks",
]
