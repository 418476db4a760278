"""What a status means is decided once (blocks.models), and a status is spelled one way
everywhere it is shown: as DCS sent it, in logs, artifacts and events alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import (
    asserting_events_worker,  # noqa: F401 - a fixture
)

from blocks.credentials import DcsCredentials
from blocks.models import (
    FAILED_STATUSES,
    IN_PROGRESS_STATUSES,
    READY_FOR_CUTOVER_STATUSES,
    SUCCEEDED_STATUSES,
    IpExchange,
    MigrationStatus,
    MigrationTask,
    MigrationTaskSummary,
    StatusMeaning,
)
from flows.clock import FakeTime, use_time
from flows.wait import wait_for_migration_task
from tests.conftest import StubDcs
from tests.prefect_records import read_records
from tests.scripted import ScriptedDcs

TASK = "a276c1ffa0a54c2597fc824b917db317"
SPELLINGS = [
    pytest.param("INCRMIGEATING", "INCRMIGRATING", id="live-spelling"),
    pytest.param("INCRMIGRATING", "INCRMIGEATING", id="documented-spelling"),
]
SETS = {
    StatusMeaning.READY_FOR_CUTOVER: READY_FOR_CUTOVER_STATUSES,
    StatusMeaning.SUCCEEDED: SUCCEEDED_STATUSES,
    StatusMeaning.FAILED: FAILED_STATUSES,
    StatusMeaning.IN_PROGRESS: IN_PROGRESS_STATUSES,
}


# --- the meanings, decided once ----------------------------------------------------------


@pytest.mark.parametrize("status", [pytest.param(s, id=s.name) for s in MigrationStatus])
def test_each_status_has_one_meaning_and_the_properties_agree(status: MigrationStatus) -> None:
    """Every known status is in exactly one set, which gives its meaning; the booleans
    (ready_for_cutover, succeeded, failed, in_progress) say the same."""
    holders = [meaning for meaning, statuses in SETS.items() if status in statuses]
    task = MigrationTaskSummary(status=status.value)
    if status is MigrationStatus.UNKNOWN:
        assert (holders, task.meaning) == ([], StatusMeaning.UNKNOWN)
    else:
        assert holders == [task.meaning]
    assert task.ready_for_cutover is (task.meaning is StatusMeaning.READY_FOR_CUTOVER)
    assert task.succeeded is (task.meaning is StatusMeaning.SUCCEEDED)
    assert task.failed is (task.meaning is StatusMeaning.FAILED)
    assert task.in_progress is (task.meaning is StatusMeaning.IN_PROGRESS)


@pytest.mark.parametrize(
    ("task_status", "stage"),
    [
        pytest.param(None, "ready for cutover", id="no-exchange"),
        pytest.param("EXCHANGING", "IP exchange under way", id="exchanging"),
        pytest.param("EXCHANGE_SUCCESS", "IP exchange done", id="exchanged"),
        pytest.param(" exchange_success", "IP exchange done", id="padded-lowercase"),
        pytest.param("ROLLBACK_SUCCESS", "IP exchange rolled back", id="rolled-back"),
        pytest.param("SOMETHING_NEW", "ready for cutover", id="unknown-task-status"),
    ],
)
def test_the_stage_says_where_the_exchange_is(task_status: str | None, stage: str) -> None:
    """Once task_status names an exchange, the stage is the exchange's, not the status's."""
    task = MigrationTask(status="INCRMIGEATING", task_status=task_status)
    assert str(task.stage) == f"{task.stage}" == stage
    assert task.exchanging is (task.ip_exchange is IpExchange.UNDER_WAY)


@pytest.mark.parametrize(
    ("sent", "shown", "described"),
    [
        pytest.param("INCRMIGEATING", "INCRMIGEATING", "INCRMIGEATING", id="live-spelling"),
        pytest.param("INCRMIGRATING", "INCRMIGRATING", "INCRMIGRATING", id="documented"),
        pytest.param("incrmigeating", "incrmigeating", "incrmigeating", id="lowercase"),
        pytest.param("PAUSED", "PAUSED", "'PAUSED' (unknown status)", id="unknown"),
        pytest.param(None, "UNKNOWN", "UNKNOWN", id="absent"),
    ],
)
def test_status_text_is_what_dcs_sent(sent: str | None, shown: str, described: str) -> None:
    """status_text and describe() show the status as sent, whatever the enum calls it."""
    task = MigrationTask(task_id="t1", task_name="m", status=sent)
    assert task.status_text == shown
    assert task.describe() == f"m (t1) {described}"
    assert task.masked().status_text == shown


# --- one spelling in a watch's logs, artifacts and events --------------------------------


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """Polls every 15 s of fake time, instantly."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


async def watch(stub: StubDcs, task_id: str, sent: str) -> Any:
    """Run the wait flow on a task that goes FULLMIGRATING -> `sent`; its final state."""
    stub.handler = ScriptedDcs({task_id: ["FULLMIGRATING", sent]}, progress=[50.0]).stub_handler
    name = f"words-{uuid.uuid4().hex[:12]}"
    await DcsCredentials(endpoint=stub.url, project_id="project-1", token="t").asave(name)
    return await wait_for_migration_task(task_id, name, return_state=True)


@pytest.mark.usefixtures("prefect_harness", "reset_worker_events")
@pytest.mark.parametrize(("sent", "other"), SPELLINGS)
async def test_watch_logs_show_the_status_as_sent(
    stub_dcs: StubDcs, fake_time: FakeTime, sent: str, other: str
) -> None:
    """Every log line of the watch, the last ("done waiting") included, spells the
    status as DCS sent it."""
    state = await watch(stub_dcs, TASK, sent)
    messages = (await read_records(state.state_details.flow_run_id)).messages()
    (done,) = [line for line in messages if "done waiting" in line]
    assert sent in done
    assert f"FULLMIGRATING -> {sent}" in "\n".join(messages)
    assert not [line for line in messages if other in line]


@pytest.mark.usefixtures("prefect_harness", "reset_worker_events")
@pytest.mark.parametrize(("sent", "other"), SPELLINGS)
async def test_the_timeline_artifact_shows_the_status_as_sent(
    stub_dcs: StubDcs, fake_time: FakeTime, sent: str, other: str
) -> None:
    """The status timeline table holds the status as DCS sent it."""
    state = await watch(stub_dcs, TASK, sent)
    records = await read_records(state.state_details.flow_run_id)
    (table,) = [artifact for artifact in records.artifacts if artifact.type == "table"]
    assert f'"to": "{sent}"' in str(table.data)
    assert other not in str(table.data)


@pytest.mark.usefixtures("prefect_harness", "reset_worker_events")
@pytest.mark.parametrize(("sent", "other"), SPELLINGS)
async def test_events_show_the_status_as_sent(
    stub_dcs: StubDcs,
    fake_time: FakeTime,
    asserting_events_worker: EventsWorker,  # noqa: F811
    sent: str,
    other: str,
) -> None:
    """The status-changed event's new_status is the status as DCS sent it."""
    task_id = uuid.uuid4().hex  # its own, so no other test's event can count here
    await watch(stub_dcs, task_id, sent)
    asserting_events_worker.wait_until_empty()  # drain() would not be awaited here
    client = asserting_events_worker._client
    assert isinstance(client, AssertingEventsClient)
    resource = f"dcs.migration-task.{task_id}"
    events = [event for event in client.events if event.resource.id == resource]
    changed = [event for event in events if event.event == "dcs.migration.status-changed"]
    assert changed[-1].payload["new_status"] == sent
    assert other not in " ".join(event.model_dump_json() for event in events)
