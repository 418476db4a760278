"""The production-shaped stack: PostgreSQL, two process workers, twenty runbooks at once.

One stack serves every test of `tests/test_production.py` (the stack working, then the
faults of a long watch): each test has its own group of DCS tasks, so the cutover
records (Prefect Variables) and exchange counts of one test never meet another's. Group
`n` stays in full migration for `n` scenario hours: a test takes its group to "ready" by
moving the sandbox on (`POST /_sandbox/advance`), which leaves every later group waiting.
The runbooks' parameters live in `RUNBOOK_PARAMETERS` only. A thousand more tasks, the
fan-out's, end their full migration half an hour in (before every group gets ready).
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

from sandbox.state import MAX_RECORDS
from tests.postgres import Postgres, running_postgres
from tests.stack import ROOT, Stack, prefect, running_stack, start, until

RUNBOOK = "dcs-migration-runbook/manual"
#: Every runbook of these tests gets these (plus its task_id): change them here only.
RUNBOOK_PARAMETERS: dict[str, Any] = {
    "cutover": "exchange_ip",
    "require_approval": False,  # the deployment asks for approval by default
    "poll_interval_seconds": 1.0,
}
#: The tests' groups of tasks, in the order their full migrations end, and their sizes.
#: The issue asks for twenty runbooks on the happy path and "while 20 runbooks wait" for
#: the server outage; for PostgreSQL restarted and a worker killed it says "while runbooks
#: wait": seven there (both workers run some) spare 26 flow-run processes, ~2 min of CPU.
GROUPS = {"auto": 20, "pg": 7, "outage": 20, "crash": 7}
#: The fan-out's tasks: in full migration until `FAN_OUT_DONE_AT`, then SUCCESS.
FAN_OUT = [f"fan-{n:04d}" for n in range(1, 1001)]
#: Scenario seconds between two groups getting ready.
HOUR = 3600
ZOMBIES = ROOT / "deployments" / "crash-zombie-runs.yaml"
#: Flow-run heartbeats, as deployments/crash-zombie-runs.yaml asks (Prefect's minimum);
#: that automation crashes a run that missed them for its `within` seconds.
HEARTBEAT_SECONDS = 30


FAN_OUT_DONE_AT = HOUR / 2


@dataclass(frozen=True)
class Group:
    """One test's DCS tasks, ready after `ready_at` scenario seconds."""

    name: str
    ready_at: float
    size: int

    @property
    def task_ids(self) -> list[str]:
        return [f"{self.name}-{n:02d}" for n in range(1, self.size + 1)]


def group(name: str) -> Group:
    """The group of tasks a test owns."""
    return Group(name, (list(GROUPS).index(name) + 1) * HOUR, GROUPS[name])


def write_scenario(path: Path) -> Path:
    """The sandbox's scenario: every group's tasks, each exchanged in 2 s when asked, and
    the fan-out's."""
    tasks: list[dict[str, Any]] = [
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
    # Never ready for cutover: the automatic cutover must not take them up.
    tasks += [
        {
            "task_id": task_id,
            "task_name": task_id,
            "migration_type": "online_migration",
            "steps": [
                {"status": "FULLMIGRATING", "seconds": FAN_OUT_DONE_AT, "progress_to": 100},
                {"status": "SUCCESS"},
            ],
        }
        for task_id in FAN_OUT
    ]
    scenario = {
        "description": "production-shaped: a group of runbooks per test, and a fan-out",
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
            # The tests start the sensor themselves: its schedule would start a flow run
            # (a process, seconds of CPU) every 2 minutes, at moments no test chose.
            PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        ) as stack,
    ):
        yield stack, database


def make_ready(stack: Stack, tasks: Group) -> None:
    """Move the sandbox on until `tasks` are in incremental sync (later groups still wait)."""
    elapsed = float(
        httpx.get(f"{stack.sandbox_url}/_sandbox/state", timeout=5).json()["elapsed_seconds"]
    )
    stack.advance_sandbox(max(0.0, tasks.ready_at - elapsed + 1))


async def start_runbooks(stack: Stack, tasks: Group, **parameters: Any) -> dict[str, UUID]:
    """One manual runbook per task of the group, all at once; their run ids by task."""
    given = {**RUNBOOK_PARAMETERS, **parameters}
    ids = await asyncio.gather(
        *(start(stack, RUNBOOK, {"task_id": t, **given}) for t in tasks.task_ids)
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
    """Each run once final (bounded wait): the flow runs by task, all read in one call a look."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    wanted = FlowRunFilter(id=FlowRunFilterId(any_=list(runs.values())))
    async with prefect(stack) as client:

        async def finished() -> dict[UUID, Any] | None:
            found = await client.read_flow_runs(flow_run_filter=wanted, limit=len(runs))
            done = {run.id: run for run in found if run.state is not None and run.state.is_final()}
            return done if len(done) == len(runs) else None

        done = await until(stack, f"not every run of {list(runs)} ended", finished, timeout)
    return {task_id: done[run] for task_id, run in runs.items()}


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


def request_log(stack: Stack) -> list[dict[str, Any]]:
    """Every request the sandbox recorded so far (it keeps the last `MAX_RECORDS`)."""
    url = f"{stack.sandbox_url}/_sandbox/state"
    found = httpx.get(url, params={"recent": MAX_RECORDS}, timeout=30).json()["recent_requests"]
    return list(found)


FAN_OUT_DEPLOYMENT = "wait-for-migration-tasks/fan-out"


async def deploy_fan_out(stack: Stack) -> None:
    """`wait_for_migration_tasks` as a deployment on the stack's pool (code from this checkout)."""
    from prefect.utilities.callables import parameter_schema

    from flows.wait import wait_for_migration_tasks

    schema = parameter_schema(wait_for_migration_tasks.fn).model_dump_for_openapi()
    async with prefect(stack) as client:
        flow_id = await client.create_flow_from_name("wait-for-migration-tasks")
        await client.create_deployment(
            flow_id=flow_id,
            name="fan-out",
            work_pool_name="dcs-process",
            work_queue_name="default",
            entrypoint="flows/wait.py:wait_for_migration_tasks",
            path=str(ROOT),
            parameter_openapi_schema=schema,
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ],
        )


__all__ = [
    "FAN_OUT",
    "FAN_OUT_DEPLOYMENT",
    "FAN_OUT_DONE_AT",
    "GROUPS",
    "HEARTBEAT_SECONDS",
    "RUNBOOK",
    "RUNBOOK_PARAMETERS",
    "Group",
    "all_completed_once",
    "all_final",
    "all_watching",
    "deploy_fan_out",
    "exchanges",
    "group",
    "make_ready",
    "production_stack",
    "reads",
    "request_log",
    "running_runs",
    "start_runbooks",
    "write_scenario",
]
