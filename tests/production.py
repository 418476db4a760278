"""The production-shaped stack: PostgreSQL, two process workers, twenty runbooks at once.

One stack serves every test of `tests/test_production.py` (the stack working, then the
faults of a long watch): each test has its own group of twenty DCS tasks, so the cutover
records (Prefect Variables) and exchange counts of one test never meet another's. Group
`n` stays in full migration for `n` scenario hours: a test takes its group to "ready" by
moving the sandbox on (`POST /_sandbox/advance`), which leaves every later group waiting.
The runbooks' parameters live in `RUNBOOK_PARAMETERS` only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from tests.postgres import Postgres, running_postgres
from tests.stack import ROOT, Stack, final, prefect, running_stack, start, until

RUNBOOK = "dcs-migration-runbook/manual"
#: Every runbook of these tests gets these (plus its task_id): change them here only.
RUNBOOK_PARAMETERS: dict[str, Any] = {
    "cutover": "exchange_ip",
    "require_approval": False,  # the deployment asks for approval by default
    "poll_interval_seconds": 1.0,
}
#: The tests' groups of twenty tasks, in the order their full migrations end.
GROUPS = ("auto", "pg", "outage", "crash")
GROUP_SIZE = 20
#: Scenario seconds between two groups getting ready.
HOUR = 3600
ZOMBIES = ROOT / "deployments" / "crash-zombie-runs.yaml"
#: Flow-run heartbeats, as deployments/crash-zombie-runs.yaml asks (Prefect's minimum);
#: that automation crashes a run that missed them for its `within` seconds.
HEARTBEAT_SECONDS = 30


@dataclass(frozen=True)
class Group:
    """One test's twenty DCS tasks, ready after `ready_at` scenario seconds."""

    name: str
    ready_at: float

    @property
    def task_ids(self) -> list[str]:
        return [f"{self.name}-{n:02d}" for n in range(1, GROUP_SIZE + 1)]


def group(name: str) -> Group:
    """The group of tasks a test owns."""
    return Group(name, (GROUPS.index(name) + 1) * HOUR)


def write_scenario(path: Path) -> Path:
    """The sandbox's scenario: every group's tasks, each exchanged in 2 s when asked."""
    tasks = [
        {
            "task_id": task_id,
            "task_name": task_id,
            "migration_type": "online_migration",
            "steps": [
                {"status": "FULLMIGRATING", "seconds": g.ready_at, "progress_to": 100},
                {"status": "INCRMIGEATING"},
            ],
            "exchange": {"outcome": "success", "exchanging_seconds": 2},
        }
        for g in map(group, GROUPS)
        for task_id in g.task_ids
    ]
    scenario = {
        "description": "production-shaped: a group of twenty runbooks per test",
        "speed": 1,
        "tasks": tasks,
    }
    path.write_text(json.dumps(scenario, indent=1))
    return path


@contextmanager
def production_stack(logs: Path) -> Iterator[tuple[Stack, Postgres]]:
    """PostgreSQL, the Prefect server on it, the sandbox, two workers, zombie detection."""
    with (
        running_postgres(logs) as database,
        running_stack(
            logs,
            write_scenario(logs / "production.json"),
            database_url=database.url,
            workers=2,
            automations=(ZOMBIES,),
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
        ) as stack,
    ):
        yield stack, database


def make_ready(stack: Stack, tasks: Group) -> None:
    """Move the sandbox on until `tasks` are in incremental sync (later groups still wait)."""
    elapsed = float(
        httpx.get(f"{stack.sandbox_url}/_sandbox/state", timeout=5).json()["elapsed_seconds"]
    )
    stack.advance_sandbox(max(0.0, tasks.ready_at - elapsed + 1))


async def start_runbooks(stack: Stack, tasks: Group) -> dict[str, UUID]:
    """One manual runbook per task of the group, all at once; their run ids by task."""
    ids = await asyncio.gather(
        *(start(stack, RUNBOOK, {"task_id": t, **RUNBOOK_PARAMETERS}) for t in tasks.task_ids)
    )
    return dict(zip(tasks.task_ids, ids, strict=True))


def reads(stack: Stack, tasks: Group) -> dict[str, int]:
    """How many times each task of the group was read (successfully) so far."""
    found = stack.sandbox()["tasks"]
    return {t: int(found[t]["reads"]) for t in tasks.task_ids}


async def all_watching(
    stack: Stack, tasks: Group, since: dict[str, int] | None = None, timeout: float = 240
) -> None:
    """Wait until every task of the group was read (more often than `since` says)."""

    async def watching() -> bool:
        now = reads(stack, tasks)
        return all(now[t] > (since or {}).get(t, 0) for t in tasks.task_ids)

    await until(stack, f"not every runbook of {tasks.name} watches its task", watching, timeout)


async def all_final(stack: Stack, runs: dict[str, UUID], timeout: float = 300) -> dict[str, Any]:
    """Each run once final (bounded wait): the flow runs by task."""
    found = await asyncio.gather(*(final(stack, run, timeout) for run in runs.values()))
    return dict(zip(runs, found, strict=True))


def exchanges(stack: Stack, tasks: Group) -> dict[str, int]:
    """How many IP exchanges the sandbox was asked for, by task of the group."""
    found = stack.sandbox()["tasks"]
    return {t: int(found[t]["exchange_requests"]) for t in tasks.task_ids}


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


async def all_completed_once(stack: Stack, tasks: Group, runs: dict[str, UUID]) -> None:
    """Every run of the group Completed, one exchange per task."""
    for task_id, run in (await all_final(stack, runs)).items():
        assert run.state.is_completed(), f"{task_id}: {run.state.type} {run.state.message}"
    assert exchanges(stack, tasks) == dict.fromkeys(tasks.task_ids, 1)


__all__ = [
    "GROUPS",
    "HEARTBEAT_SECONDS",
    "RUNBOOK",
    "RUNBOOK_PARAMETERS",
    "Group",
    "all_completed_once",
    "all_final",
    "all_watching",
    "exchanges",
    "group",
    "make_ready",
    "production_stack",
    "reads",
    "running_runs",
    "start_runbooks",
    "write_scenario",
]
