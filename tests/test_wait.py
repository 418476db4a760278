"""The wait flows through Prefect: one task run per watch, writes on change, no secrets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect import flow
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.server.events.pipeline import EventsPipeline
from prefect.testing.fixtures import (
    asserting_events_worker,  # noqa: F401 - a fixture
    events_pipeline,  # noqa: F401 - a fixture
)

from blocks.credentials import DcsCredentials
from blocks.errors import MigrationFailed, MigrationTimeout
from blocks.models import MigrationTask
from flows.clock import FakeTime, use_time
from flows.wait import WatchResult, wait_for_migration_task, wait_for_migration_tasks
from tests.conftest import StubDcs
from tests.fakes import PASSWORD, FakeDcs, Step
from tests.prefect_records import read_records

pytestmark = pytest.mark.usefixtures("prefect_harness", "reset_worker_events")

TOKEN = "wait-token-canary-9d1c"
TASK = "a276c1ffa0a54c2597fc824b917db317"


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """Polls every 15 s of fake time, instantly."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


def serve(stub: StubDcs, scripts: dict[str, list[Step]], **options: Any) -> FakeDcs:
    dcs = FakeDcs(scripts, progress=[5.0, 5.5, 40.0, 99.9], **options)
    stub.handler = dcs.stub_handler
    return dcs


async def saved_block(stub: StubDcs, **auth: str) -> str:
    """A block for the stub, saved under a fresh name: flows take a block's name."""
    name = f"wait-{uuid.uuid4().hex[:12]}"
    block = DcsCredentials(endpoint=stub.url, project_id="project-1", **(auth or {"token": TOKEN}))
    await block.asave(name)
    return name


def events_of(worker: EventsWorker) -> list[Any]:
    # Not drain(): inside a running loop it returns a future that nobody would await,
    # and the events would be read before the worker had handled them all.
    worker.wait_until_empty()
    client = worker._client
    assert isinstance(client, AssertingEventsClient)
    return list(client.events)


async def test_a_watch_of_100_polls_is_one_task_run_and_100_requests(
    stub_dcs: StubDcs,
    fake_time: FakeTime,
    events_pipeline: EventsPipeline,  # noqa: F811
) -> None:
    """100 polls cost one Prefect task run and 101 requests (the list confirms the SUCCESS)."""
    dcs = serve(stub_dcs, {TASK: ["RUNNING"] * 99 + ["SUCCESS"]})
    state = await wait_for_migration_task(
        TASK,
        await saved_block(stub_dcs),
        poll_interval_seconds=15,
        configure_grace_seconds=None,  # 25 minutes of RUNNING: pending, on purpose
        return_state=True,
    )
    task = await state.result()
    assert task.succeeded
    assert dcs.requests["show"] == 100
    assert dcs.requests["list"] == 1  # a SUCCESS is believed once the list shows the task
    assert len(stub_dcs.requests) == 101
    await events_pipeline.process_events()  # task runs are recorded from their events
    records = await read_records(state.state_details.flow_run_id, task_runs=1)
    assert [run.name for run in records.task_runs] == [f"watch-{TASK}"]
    changes = [m for m in records.messages() if "->" in m]
    assert len(changes) == 2  # first look, then RUNNING -> SUCCESS; not one per poll
    assert fake_time.sleeps == [15] * 99


async def test_events_on_each_change_only(
    stub_dcs: StubDcs,
    fake_time: FakeTime,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    """One status-changed per transition plus the outcome event; nothing per unchanged poll."""
    serve(stub_dcs, {TASK: ["RUNNING"] * 5 + ["FULLMIGRATING"] * 5 + ["INCRMIGEATING"]})
    await wait_for_migration_task(TASK, await saved_block(stub_dcs))
    events = [e for e in events_of(asserting_events_worker) if e.event.startswith("dcs.")]
    assert [e.event for e in events] == [
        "dcs.migration.status-changed",
        "dcs.migration.status-changed",
        "dcs.migration.status-changed",
        "dcs.migration.ready-for-cutover",
    ]
    last = events[-1]
    assert last.resource.id == f"dcs.migration-task.{TASK}"
    assert last.resource["dcs.emitter"] == "watch"  # not what the cutover trigger matches
    assert last.payload["old_status"] == "FULLMIGRATING"
    assert last.payload["new_status"] == "INCRMIGEATING"
    assert last.payload["task_name"] == f"migration-{TASK}"
    assert last.payload["project_id"] == "project-1"
    text = " ".join(e.model_dump_json() for e in events)
    assert PASSWORD not in text
    assert TOKEN not in text


async def test_failure_raises_and_emits_failed(
    stub_dcs: StubDcs,
    fake_time: FakeTime,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    """A failure status fails the flow with MigrationFailed and emits dcs.migration.failed."""
    serve(stub_dcs, {TASK: ["MIGRATING", "MIGRATION_FAILED"]})
    with pytest.raises(MigrationFailed, match="MIGRATION_FAILED"):
        await wait_for_migration_task(TASK, await saved_block(stub_dcs))
    names = [e.event for e in events_of(asserting_events_worker)]
    assert "dcs.migration.failed" in names


async def test_timeout_raises_and_emits_timed_out(
    stub_dcs: StubDcs,
    fake_time: FakeTime,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    """At the deadline the flow fails with MigrationTimeout and emits dcs.migration.timed-out."""
    serve(stub_dcs, {TASK: ["FULLMIGRATING"]})
    with pytest.raises(MigrationTimeout) as caught:
        await wait_for_migration_task(
            TASK, await saved_block(stub_dcs), poll_interval_seconds=60, timeout_seconds=600
        )
    assert caught.value.last_status == "FULLMIGRATING"
    timed_out = [e for e in events_of(asserting_events_worker) if e.event.endswith("timed-out")]
    assert len(timed_out) == 1
    assert timed_out[0].payload["timeout_seconds"] == 600


async def test_artifacts_progress_and_timeline(stub_dcs: StubDcs, fake_time: FakeTime) -> None:
    """A progress artifact follows the full migration; a timeline table closes the watch."""
    serve(stub_dcs, {TASK: ["FULLMIGRATING"] * 4 + ["SUCCESS"]})
    state = await wait_for_migration_task(
        TASK, await saved_block(stub_dcs), poll_interval_seconds=60, return_state=True
    )
    records = await read_records(state.state_details.flow_run_id)
    kinds = {artifact.type: artifact for artifact in records.artifacts}
    assert set(kinds) == {"progress", "table"}
    # 5.0 -> 5.5 (same whole percent) -> 40 -> 99.9, then 100 once the full migration is over
    assert kinds["progress"].data == 100
    assert kinds["progress"].key == f"dcs-migration-progress-{TASK}"
    assert kinds["table"].key == f"dcs-migration-timeline-{TASK}"
    assert '"to": "SUCCESS"' in str(kinds["table"].data)


async def test_loose_values_never_fail_the_watch(stub_dcs: StubDcs, fake_time: FakeTime) -> None:
    """Fields that are no number or date, and a progress of "n/a", do not disturb the watch."""
    loose = {"bandwidth_limit_mb": "unlimited", "created_at": "yesterday"}
    steps: list[Step] = ["FULLMIGRATING"] * 3 + ["SUCCESS"]
    dcs = FakeDcs({TASK: steps}, progress=[5.0, "n/a", 40.0], loose=loose)
    stub_dcs.handler = dcs.stub_handler
    state = await wait_for_migration_task(
        TASK, await saved_block(stub_dcs), poll_interval_seconds=60, return_state=True
    )
    task = await state.result()
    assert task.succeeded
    assert (task.bandwidth_limit_mb, task.created_at) == ("unlimited", "yesterday")
    records = await read_records(state.state_details.flow_run_id)
    (progress,) = [artifact for artifact in records.artifacts if artifact.type == "progress"]
    # 5.0, then "n/a" skipped, then 40.0, then 100 once the full migration is over
    assert progress.data == 100
    assert dcs.requests["stats"] == 3


SECRET_KEY = "wait-secret-key-canary-3b8f"


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        pytest.param({"token": TOKEN}, TOKEN, id="token"),
        pytest.param({"access_key": "AKWAIT", "secret_key": SECRET_KEY}, SECRET_KEY, id="aksk"),
    ],
)
async def test_secrets_are_nowhere_in_prefect(
    stub_dcs: StubDcs,
    fake_time: FakeTime,
    asserting_events_worker: EventsWorker,  # noqa: F811
    auth: dict[str, str],
    secret: str,
) -> None:
    """Credentials and Redis password appear in no log, event, artifact, parameter or result."""
    serve(stub_dcs, {TASK: ["FULLMIGRATING", "FULLMIGRATING", "SUCCESS"]})
    state = await wait_for_migration_task(
        TASK, await saved_block(stub_dcs, **auth), return_state=True
    )
    result = await state.result()
    records = await read_records(state.state_details.flow_run_id)
    events = " ".join(e.model_dump_json() for e in events_of(asserting_events_worker))
    everything = records.text() + events + result.model_dump_json() + repr(result)
    assert PASSWORD not in everything
    assert secret not in everything
    assert records.flow_run.parameters["task_id"] == TASK  # the parameters were read
    assert len(records.artifacts) == 2  # and the artifacts, which were searched too


async def test_usable_as_a_subflow(stub_dcs: StubDcs, fake_time: FakeTime) -> None:
    """A runbook flow can call the wait flow as a subflow and use its result."""
    serve(stub_dcs, {TASK: ["MIGRATING", "SUCCESS"]})
    block = await saved_block(stub_dcs)

    @flow
    async def runbook() -> str:
        task: MigrationTask = await wait_for_migration_task(TASK, block)
        return task.status.value

    assert await runbook() == "SUCCESS"


async def test_many_tasks_one_task_run_and_a_result_each(
    stub_dcs: StubDcs,
    fake_time: FakeTime,
    events_pipeline: EventsPipeline,  # noqa: F811
) -> None:
    """The fan-out flow returns a WatchResult per task from a single task run."""
    serve(
        stub_dcs,
        {
            "t-ok": ["MIGRATING", "SUCCESS"],
            "t-bad": ["MIGRATING", "FAILED"],
            "t-ready": ["INCRMIGEATING"],
        },
    )
    state = await wait_for_migration_tasks(
        ["t-ok", "t-bad", "t-ready", "t-gone"], await saved_block(stub_dcs), return_state=True
    )
    results: dict[str, WatchResult] = await state.result()
    assert {task_id: r.ok for task_id, r in results.items()} == {
        "t-ok": True, "t-bad": False, "t-ready": True, "t-gone": False,
    }  # fmt: skip
    assert results["t-bad"].error_type == "MigrationFailed"
    assert results["t-gone"].error_type == "MigrationTaskNotFound"
    assert results["t-ready"].status == "INCRMIGEATING"
    await events_pipeline.process_events()
    records = await read_records(state.state_details.flow_run_id, task_runs=1)
    assert [run.name.rsplit("-", 1)[0] for run in records.task_runs] == ["watch-migration-tasks"]
    assert PASSWORD not in records.text()
