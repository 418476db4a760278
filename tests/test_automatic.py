"""The automatic cutover stands down when its task already has a runbook or a cutover record.

Real flow runs on the harness server: the other runbooks are created through the API in
the state under test (no worker runs them); the automatic run is `migration_runbook`
itself, which stands down before its first DCS request.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled, Completed, Failed, Paused, Pending, Running, Scheduled, State

from blocks.credentials import DcsCredentials
from blocks.errors import MigrationFailed
from flows.automatic import _goes_first
from flows.clock import FakeTime, use_time
from flows.records import CutoverRecords
from flows.runbook import RunbookSummary, migration_runbook
from tests.conftest import StubDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def _other_runbook(task_id: str, state: State[Any], *, automatic: bool = False) -> FlowRun:
    """A runbook flow run for `task_id`, created through the API and put in `state`."""
    async with get_client() as client:
        parameters = {"task_id": task_id, "automatic": automatic}
        run = await client.create_flow_run(migration_runbook, parameters=parameters)
        await client.set_flow_run_state(run.id, state, force=True)
        return await client.read_flow_run(run.id)


async def _automatic(task_id: str, stub: StubDcs) -> tuple[RunbookSummary, FlowRun]:
    """Run the runbook as the automation starts it; return its summary and its flow run."""
    stub.handler = lambda *_: (200, {}, b'{"task_id": "x", "status": "MIGRATION_FAILED"}')
    block = f"auto-{task_id[:12]}"
    await DcsCredentials(endpoint=stub.url, project_id="project-1", token="auto-token").asave(block)
    with use_time(FakeTime()):
        state = await migration_runbook(
            task_id, block, cutover="exchange_ip", automatic=True, return_state=True
        )
    async with get_client() as client:
        run = await client.read_flow_run(state.state_details.flow_run_id)
    return await state.result(), run


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(Scheduled, id="scheduled"),
        pytest.param(Pending, id="pending"),
        pytest.param(Running, id="running"),
        pytest.param(lambda: Paused(timeout_seconds=600), id="paused"),
    ],
)
async def test_stands_down_for_another_runbook_of_the_task(stub_dcs: StubDcs, state: Any) -> None:
    """A manual runbook scheduled, running or paused for the task: no second one goes on."""
    task_id = uuid.uuid4().hex
    other = await _other_runbook(task_id, state())
    summary, run = await _automatic(task_id, stub_dcs)
    assert summary.stood_down is not None
    assert str(other.id) in summary.stood_down
    assert run.name == f"auto-cutover-{task_id}"
    assert run.state is not None
    assert run.state.is_completed()
    assert stub_dcs.requests == []  # not even a look at DCS


async def test_stands_down_for_a_cutover_record(stub_dcs: StubDcs) -> None:
    """A task whose exchange was requested before (any record) gets no automatic run."""
    task_id = uuid.uuid4().hex
    async with get_client() as client:
        record = await CutoverRecords(client, task_id, "exchange-ip").claim(1, {"state": "failed"})
    assert record is not None
    summary, _ = await _automatic(task_id, stub_dcs)
    assert summary.stood_down is not None
    assert record.name in summary.stood_down
    assert stub_dcs.requests == []


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(Completed, id="completed"),
        pytest.param(Failed, id="failed"),
        pytest.param(Cancelled, id="cancelled"),
    ],
)
async def test_goes_on_when_only_finished_runbooks_or_other_tasks_exist(
    stub_dcs: StubDcs, state: Any
) -> None:
    """Finished runbooks of the task and active ones of other tasks do not stop it."""
    task_id = uuid.uuid4().hex
    await _other_runbook(task_id, state())
    await _other_runbook(uuid.uuid4().hex, Running())
    # It goes on: it reads the task from DCS, which says the migration failed.
    with pytest.raises(MigrationFailed, match="MIGRATION_FAILED"):
        await _automatic(task_id, stub_dcs)
    assert stub_dcs.requests


def _run(*, automatic: bool, created: datetime) -> FlowRun:
    return FlowRun(
        flow_id=uuid.uuid4(),
        name="r",
        parameters={"task_id": "t", "automatic": automatic},
        created=created,
    )


def test_of_two_automatic_runs_the_first_created_goes_on() -> None:
    """Two automatic runs for one task: exactly one goes on; a manual run always comes first."""
    now = datetime.now(timezone.utc)
    early = _run(automatic=True, created=now)
    late = _run(automatic=True, created=now + timedelta(seconds=1))
    manual = _run(automatic=False, created=now + timedelta(seconds=2))
    assert _goes_first(early, late)
    assert not _goes_first(late, early)
    assert _goes_first(manual, early)
