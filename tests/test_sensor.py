"""migration_sensor: one look per run, one event per change, state kept in Prefect Variables."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableCreate
from prefect.events import Event
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import asserting_events_worker

from blocks.credentials import DcsCredentials
from blocks.errors import DcsServerError, DcsValidationError
from flows import sensor
from flows.clock import FakeTime, use_time
from flows.events import FAILED, READY_FOR_CUTOVER, STATUS_CHANGED, SUCCEEDED
from flows.sensor import migration_sensor
from tests.conftest import PROJECT_ID, StubDcs
from tests.fakes import PASSWORD as REDIS_PASSWORD
from tests.fakes import FakeDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Prefect's event-capturing fixtures, used by name below.
__all__ = ["asserting_events_worker"]

TOKEN = "sensor-token-canary-7c1d"
LIST_PATH = f"/v2/{PROJECT_ID}/migration-tasks"
DETAIL_PATH = f"/v2/{PROJECT_ID}/migration-task/"
LISTED = {
    "migration_type": "incremental_migration",
    "migration_method": "online_migration",
    "source_instance_password": REDIS_PASSWORD,  # a field DCS might add one day
}


@pytest.fixture(autouse=True)
def fake_time() -> Iterator[FakeTime]:
    """Retries back off in fake time: no test waits for real."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


@pytest.fixture
def dcs(stub_dcs: StubDcs) -> FakeDcs:
    """The stub serving a DCS project whose list pages carry each task's type and method."""
    fake = FakeDcs(fields=LISTED)
    stub_dcs.handler = fake.stub_handler
    return fake


@pytest.fixture
async def block_name(stub_dcs: StubDcs) -> str:
    """The name of a saved credentials block pointing at the stub."""
    name = f"sensor-{uuid.uuid4().hex[:8]}"
    block = DcsCredentials(endpoint=stub_dcs.url, project_id=PROJECT_ID, token=TOKEN)
    await block.asave(name, overwrite=True)
    return name


@pytest.fixture
def state() -> str:
    """A state Variable name of this test's own."""
    return f"sensor-state-{uuid.uuid4().hex[:8]}"


Events = Callable[..., list[Event]]


@pytest.fixture
def events(asserting_events_worker: EventsWorker, reset_worker_events: None) -> Events:
    """A function returning the events (dcs.* unless told) emitted since its last call."""

    def take(prefix: str = "dcs.") -> list[Event]:
        asserting_events_worker.wait_until_empty()
        client = getattr(asserting_events_worker, "_client", None)
        emitted: list[Event] = client.pop_events() if client is not None else []
        return [event for event in emitted if event.event.startswith(prefix)]

    return take


def names(emitted: list[Event]) -> list[tuple[str, str]]:
    """(event name, task id) of each event, sorted."""
    return sorted((e.event, e.resource.id.removeprefix("dcs.migration-task.")) for e in emitted)


def requests(stub: StubDcs, prefix: str) -> int:
    """How many requests the stub got for paths starting with `prefix`."""
    return sum(1 for _, path, _, _ in stub.requests if path.startswith(prefix))


async def variable(name: str) -> Any:
    """A Variable's value or None (outside a flow, `Variable.aget` leaks a client)."""
    async with get_client() as client:
        found = await client.read_variable_by_name(name)
    return None if found is None else found.value


async def recorded(name: str) -> dict[str, str]:
    """The statuses held in the state Variable and its continuations."""
    values: dict[str, str] = {}
    for number in range(1, 50):
        value = await variable(name if number == 1 else f"{name}--{number}")
        if value is None:
            return values
        assert isinstance(value, dict)
        values.update(value)
    return values


async def test_first_run_announces_every_task_then_a_quiet_run_emits_nothing(
    dcs: FakeDcs, block_name: str, state: str, events: Events
) -> None:
    """Run 1 emits a change from None for each task; run 2 with nothing new emits nothing."""
    dcs.add("t1", "MIGRATING")
    dcs.add("t2", "INCRMIGEATING")
    seen = await migration_sensor(credentials=block_name, state_variable=state)
    assert seen == {"t1": "MIGRATING", "t2": "INCRMIGEATING"}
    emitted = events()
    expected = [(READY_FOR_CUTOVER, "t2"), (STATUS_CHANGED, "t1"), (STATUS_CHANGED, "t2")]
    assert names(emitted) == expected
    assert all(e.payload["old_status"] is None for e in emitted)
    assert await recorded(state) == seen

    assert await migration_sensor(credentials=block_name, state_variable=state) == seen
    assert events() == []


@pytest.mark.parametrize(
    ("new_status", "outcome"),
    [
        pytest.param("SUCCESS", [SUCCEEDED], id="succeeded"),
        pytest.param("MIGRATION_FAILED", [FAILED], id="failed"),
        pytest.param("INCRMIGRATING", [READY_FOR_CUTOVER], id="ready-for-cutover"),
        pytest.param("FULLMIGRATING", [], id="still-in-progress"),
        pytest.param("PAUSED", [], id="unknown-status"),
    ],
)
async def test_a_change_between_runs_is_emitted_once(
    dcs: FakeDcs,
    block_name: str,
    state: str,
    events: Events,
    caplog: pytest.LogCaptureFixture,
    new_status: str,
    outcome: list[str],
) -> None:
    """MIGRATING -> X emits status-changed (+ the outcome event) once, and logs one line."""
    dcs.add("t1", "MIGRATING")
    dcs.add("t2", "MIGRATING")
    await migration_sensor(credentials=block_name, state_variable=state)
    events()
    dcs.scripts["t1"] = [new_status]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            await migration_sensor(credentials=block_name, state_variable=state)
    emitted = events()
    assert names(emitted) == sorted([(STATUS_CHANGED, "t1"), *((n, "t1") for n in outcome)])
    assert {(e.payload["old_status"], e.payload["new_status"]) for e in emitted} == {
        ("MIGRATING", new_status)
    }
    lines = [r for r in caplog.records if "->" in r.getMessage()]
    assert len(lines) == 1
    assert f"migration-t1 (t1): MIGRATING -> {new_status}" in lines[0].getMessage()
    assert lines[0].levelname == ("WARNING" if new_status == "PAUSED" else "INFO")


async def test_name_filter_picks_only_matching_tasks(
    dcs: FakeDcs, block_name: str, state: str, events: Events
) -> None:
    """A glob matches whole names, case-sensitively; other tasks are neither seen nor stored."""
    tasks = {"a": "prod-cache", "b": "prod-db", "c": "stage-db", "d": "Prod-x", "e": "prod"}
    for task_id, name in tasks.items():
        dcs.add(task_id, "MIGRATING", name=name)
    seen = await migration_sensor(
        name_filter="prod-*", credentials=block_name, state_variable=state
    )
    assert seen == {"a": "MIGRATING", "b": "MIGRATING"}
    assert names(events()) == [(STATUS_CHANGED, "a"), (STATUS_CHANGED, "b")]
    assert await recorded(state) == seen


@pytest.mark.parametrize(
    ("positions", "list_requests"),
    [
        pytest.param([3, 249], 3, id="last-page"),
        pytest.param([0, 99], 1, id="first-page-only"),
        pytest.param([150, 120, 150], 2, id="duplicates"),
    ],
)
async def test_listed_ids_cost_one_request_per_page_and_one_task_run(
    dcs: FakeDcs,
    stub_dcs: StubDcs,
    block_name: str,
    state: str,
    events: Events,
    positions: list[int],
    list_requests: int,
) -> None:
    """250 tasks, pages of 100: list pages until every id is found, no detail request."""
    for n in range(250):
        dcs.add(f"task-{n:03d}", "MIGRATING")
    ids = [f"task-{n:03d}" for n in positions]
    seen = await migration_sensor(task_ids=ids, credentials=block_name, state_variable=state)
    assert seen == dict.fromkeys(ids, "MIGRATING")
    assert requests(stub_dcs, LIST_PATH) == list_requests
    assert requests(stub_dcs, DETAIL_PATH) == 0
    task_runs = {e.resource.name for e in events("prefect.task-run.")}
    assert len(task_runs) == 1
    assert next(iter(task_runs)).startswith("check-migration-statuses")


async def test_a_deleted_listed_task_emits_failed_once(
    dcs: FakeDcs, stub_dcs: StubDcs, block_name: str, state: str, events: Events
) -> None:
    """DCS.4133 for a listed id: DELETED, status-changed + failed once, the run succeeds."""
    dcs.add("t1", "MIGRATING")
    dcs.add("gone", "MIGRATING")
    await migration_sensor(task_ids=["t1", "gone"], credentials=block_name, state_variable=state)
    events()
    del dcs.scripts["gone"]
    for _ in range(2):
        seen = await migration_sensor(
            task_ids=["t1", "gone"], credentials=block_name, state_variable=state
        )
        assert seen == {"t1": "MIGRATING", "gone": "DELETED"}
    emitted = events()
    assert names(emitted) == [(FAILED, "gone"), (STATUS_CHANGED, "gone")]
    assert emitted[0].payload["old_status"] == "MIGRATING"
    assert requests(stub_dcs, DETAIL_PATH) == 1  # the second run answered from the record


async def test_a_task_deleted_from_a_filtered_project_is_announced_then_forgotten(
    dcs: FakeDcs, stub_dcs: StubDcs, block_name: str, state: str, events: Events
) -> None:
    """Without task_ids, a vanished task is asked for once, announced as DELETED, dropped."""
    for task_id in ("t1", "t2", "t3"):
        dcs.add(task_id, "MIGRATING")
    await migration_sensor(credentials=block_name, state_variable=state)
    events()
    del dcs.scripts["t2"]
    dcs.hidden.add("t3")  # skipped by the list (a page shift), still there
    for _ in range(2):
        await migration_sensor(credentials=block_name, state_variable=state)
    assert names(events()) == [(FAILED, "t2"), (STATUS_CHANGED, "t2")]
    assert await recorded(state) == {"t1": "MIGRATING", "t3": "MIGRATING"}
    assert requests(stub_dcs, DETAIL_PATH) == 3  # t2 once, t3 on each run


async def test_a_deleted_task_whose_detail_still_reads_success_is_deleted(
    dcs: FakeDcs, stub_dcs: StubDcs, block_name: str, state: str, events: Events
) -> None:
    """A task gone from every list whose detail still says SUCCESS is DELETED, not succeeded."""
    dcs.add("t1", "MIGRATING")
    dcs.add("gone", "MIGRATING")
    await migration_sensor(task_ids=["t1", "gone"], credentials=block_name, state_variable=state)
    events()
    dcs.scripts["gone"] = ["SUCCESS"]
    dcs.unlisted.add("gone")  # deleted: no list shows it, yet its detail still reads
    seen = await migration_sensor(
        task_ids=["t1", "gone"], credentials=block_name, state_variable=state
    )
    assert seen == {"t1": "MIGRATING", "gone": "DELETED"}
    assert names(events()) == [(FAILED, "gone"), (STATUS_CHANGED, "gone")]


async def test_events_are_shaped_for_automations_and_hold_no_secret(
    dcs: FakeDcs,
    block_name: str,
    state: str,
    events: Events,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Resource, labels and payload as flows.events says; no password or token anywhere."""
    dcs.add("t1", "INCRMIGEATING", name="prod-cache")
    dcs.add("t2", "SUCCESS", name="prod-db", task_statuses=["EXCHANGE_SUCCESS"])
    dcs.hidden.add("t2")
    with caplog.at_level(logging.DEBUG):
        seen = await migration_sensor(
            task_ids=["t1", "t2"], credentials=block_name, state_variable=state
        )
    emitted = events()
    by_name = {(e.event, e.resource.id): e for e in emitted}
    ready = by_name[(READY_FOR_CUTOVER, "dcs.migration-task.t1")]
    assert ready.resource["prefect.resource.name"] == "prod-cache"
    assert ready.resource["dcs.project-id"] == PROJECT_ID
    assert ready.resource["dcs.emitter"] == "sensor"  # what the cutover trigger matches
    assert ready.payload == {
        "task_id": "t1", "task_name": "prod-cache", "project_id": PROJECT_ID,
        "old_status": None, "new_status": "INCRMIGEATING", "task_status": None,
        "migration_type": "incremental_migration", "migration_method": "online_migration",
    }  # fmt: skip
    succeeded = by_name[(SUCCEEDED, "dcs.migration-task.t2")]
    assert succeeded.payload["task_status"] == "EXCHANGE_SUCCESS"
    assert "task-run" in {related.role for related in ready.related}
    places = {
        "events": "".join(e.model_dump_json() for e in emitted),
        "logs": caplog.text + "".join(str(r.__dict__) for r in caplog.records),
        "variable": json.dumps(await recorded(state)),
        "result": json.dumps(seen),
    }
    for where, text in places.items():
        assert REDIS_PASSWORD not in text, where
        assert TOKEN not in text, where


@pytest.mark.parametrize(
    ("fail_from_offset", "emitted_while_failing"),
    [
        pytest.param(0, [], id="whole-outage"),
        pytest.param(2, [(STATUS_CHANGED, "t0"), (SUCCEEDED, "t0")], id="second-page-down"),
    ],
)
async def test_a_transient_outage_fails_the_run_and_the_next_run_catches_up(
    dcs: FakeDcs,
    block_name: str,
    state: str,
    events: Events,
    monkeypatch: pytest.MonkeyPatch,
    fail_from_offset: int,
    emitted_while_failing: list[tuple[str, str]],
) -> None:
    """A 503 streak fails the run; unseen tasks keep their record; each change emits once."""
    monkeypatch.setattr(sensor, "PAGE_SIZE", 2)
    for n in range(4):
        dcs.add(f"t{n}", "MIGRATING")
    await migration_sensor(credentials=block_name, state_variable=state)
    events()
    dcs.scripts["t0"] = dcs.scripts["t2"] = ["SUCCESS"]
    dcs.fail_from_offset = fail_from_offset
    with pytest.raises(DcsServerError, match="HTTP 503"):
        await migration_sensor(credentials=block_name, state_variable=state)
    assert names(events()) == sorted(emitted_while_failing)
    expected = {f"t{n}": "MIGRATING" for n in range(4)}
    expected.update({task_id: "SUCCESS" for _, task_id in emitted_while_failing})
    assert await recorded(state) == expected

    dcs.fail_from_offset = None
    for _ in range(2):
        await migration_sensor(credentials=block_name, state_variable=state)
    caught_up = sorted({(STATUS_CHANGED, "t0"), (SUCCEEDED, "t0"), (STATUS_CHANGED, "t2"),
                        (SUCCEEDED, "t2")} - set(emitted_while_failing))  # fmt: skip
    assert names(events()) == caught_up


async def test_a_large_state_spans_several_variables(
    dcs: FakeDcs, block_name: str, state: str, events: Events
) -> None:
    """Prefect caps a Variable at 5,000 characters: 250 tasks spread over parts, then shrink."""
    for _ in range(250):
        dcs.add(uuid.uuid4().hex, "INCRMIGEATING")
    seen = await migration_sensor(credentials=block_name, state_variable=state)
    assert len(events()) == 2 * 250
    assert await recorded(state) == seen
    assert await variable(f"{state}--3") is not None
    for task_id in list(dcs.scripts)[1:]:
        dcs.scripts[task_id] = ["DELETED"]  # as if deleted, without the lookups
    await migration_sensor(credentials=block_name, state_variable=state)
    assert len(events()) == 2 * 249
    dcs.scripts = dict(list(dcs.scripts.items())[:20])
    await migration_sensor(task_ids=list(dcs.scripts), credentials=block_name, state_variable=state)
    assert events() == []
    await migration_sensor(credentials=block_name, state_variable=state)
    assert await recorded(state) == {task_id: dcs.status_of(task_id) for task_id in dcs.scripts}
    assert await variable(f"{state}--2") is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"state_variable": "Sensor-State"}, "'Sensor-State'", id="uppercase"),
        pytest.param({"state_variable": "a/b"}, "'a/b'", id="slash"),
        pytest.param({"state_variable": ""}, "state_variable ''", id="empty-name"),
        pytest.param({"task_ids": ["a"], "name_filter": "p*"}, "not both", id="both"),
        pytest.param({"task_ids": []}, "empty list", id="no-ids"),
        pytest.param({"task_ids": ["a/b"]}, "task_id 'a/b'", id="bad-id"),
        pytest.param({"name_filter": " "}, "name_filter ' '", id="blank-filter"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    stub_dcs: StubDcs, block_name: str, arguments: dict[str, Any], message: str
) -> None:
    """Each mistake raises a DcsValidationError naming the value, and DCS is never asked."""
    arguments = {"credentials": block_name, "state_variable": "sensor-state-unused", **arguments}
    with pytest.raises(DcsValidationError, match=message):
        await migration_sensor(**arguments)
    assert stub_dcs.requests == []


async def test_a_foreign_state_variable_is_refused_not_overwritten(
    dcs: FakeDcs, block_name: str, state: str
) -> None:
    """A Variable that does not hold {task_id: status} is named in the error and left alone."""
    async with get_client() as client:
        await client.create_variable(VariableCreate(name=state, value=["not", "a", "mapping"]))
    with pytest.raises(DcsValidationError, match=f"Prefect Variable '{state}' does not hold"):
        await migration_sensor(credentials=block_name, state_variable=state)
    assert await variable(state) == ["not", "a", "mapping"]


def test_every_parameter_is_described_for_the_ui() -> None:
    """The docstring's Args section becomes each parameter's description in the UI form."""
    properties = migration_sensor.parameters.properties
    assert set(properties) == {"task_ids", "name_filter", "credentials", "state_variable"}
    assert all(p.get("description") for p in properties.values())
