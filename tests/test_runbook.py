"""migration_runbook end to end in-process: wait, notify, approve, cut over, verify, notify."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import aresume_flow_run
from prefect.states import Cancelled

import flows.approval
import flows.handover
import flows.runbook
from blocks.errors import CutoverFailed, CutoverRejected, DcsValidationError, MigrationFailed
from blocks.models import MigrationTask
from flows.runbook import RunbookSummary, migration_runbook, stop_on_cancel
from tests.runbook_world import TOKEN, World, paused_run_id
from tests.scripted import PASSWORD

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_incremental_migration_cut_over_by_ip_exchange(world: World) -> None:
    """Ready for cutover -> one IP exchange -> verified -> 'ready' and 'done' notifications."""
    await world.setup(["RUNNING", "FULLMIGRATING", "INCRMIGEATING"])
    summary: RunbookSummary = await world.run(cutover="exchange_ip")
    assert summary.task_status == "EXCHANGE_SUCCESS"
    assert summary.status == "INCRMIGEATING"
    assert world.dcs.posts["exchange-ip"] == 1
    subjects = world.notifications()
    assert len(subjects) == 2
    assert "ready for cutover" in subjects[0]
    assert "cutover done" in subjects[1]
    assert subjects[1].endswith("INCRMIGEATING (IP exchange done)")  # not "ready for cutover"
    assert PASSWORD not in world.bodies()
    assert TOKEN not in world.bodies()


async def test_no_cutover_just_waits_and_notifies(world: World) -> None:
    """cutover='none' waits for success and sends one notification; nothing is exchanged."""
    await world.setup(["MIGRATING", "SUCCESS"])
    summary: RunbookSummary = await world.run()
    assert summary.status == "SUCCESS"
    assert world.dcs.posts == {}
    assert len(world.notifications()) == 1


async def test_a_failed_migration_notifies_and_fails(world: World) -> None:
    """A failure status fails the run with MigrationFailed after a 'failed' notification."""
    await world.setup(["MIGRATING", "FAILED"])
    with pytest.raises(MigrationFailed):
        await world.run(cutover="exchange_ip")
    assert world.dcs.posts == {}
    (subject,) = world.notifications()
    assert subject.startswith("DCS migration failed:")


async def test_a_failed_cutover_is_named_in_the_notification(world: World) -> None:
    """After 'ready for cutover', an exchange that fails is told as 'cutover failed'."""
    await world.setup(["INCRMIGEATING"])
    world.dcs.exchange_steps = ["EXCHANGING", "EXCHANGE_FAILED"]
    with pytest.raises(CutoverFailed):
        await world.run(cutover="exchange_ip")
    assert world.dcs.posts["exchange-ip"] == 1
    ready, failed = world.notifications()
    assert "ready for cutover" in ready
    assert failed.startswith("DCS migration cutover failed:")


@pytest.mark.parametrize(
    ("poll", "pace"),
    [pytest.param(2.0, 2.0, id="faster"), pytest.param(15.0, 5.0, id="capped")],
)
async def test_the_exchange_is_followed_at_the_runbooks_pace_or_every_5_s(
    world: World, poll: float, pace: float
) -> None:
    """A runbook polling every 2 s follows its IP exchange every 2 s; every 15 s, every 5 s."""
    await world.setup(["INCRMIGEATING"])  # ready at the first read: the wait never sleeps
    # settle_seconds=0: caught up at the gate's first read, so the gate never sleeps either.
    summary: RunbookSummary = await world.run(
        cutover="exchange_ip", poll_interval_seconds=poll, settle_seconds=0
    )
    assert summary.task_status == "EXCHANGE_SUCCESS"
    # Every sleep is the exchange's: EXCHANGING, EXCHANGING, then EXCHANGE_SUCCESS.
    assert len(world.fake.sleeps) >= 2
    assert set(world.fake.sleeps) == {pace}


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        pytest.param({"cutover": "deployment"}, "needs cutover_deployment", id="no-deployment"),
        pytest.param(
            {"cutover": "exchange_ip", "cutover_deployment": "a/b"}, "is set but", id="stray"
        ),
        pytest.param(
            {"cutover": "deployment", "cutover_deployment": "no-such/deployment"},
            "no deployment named 'no-such/deployment'",
            id="deployment-not-deployed",
        ),
        pytest.param({"cutover_parameters": {"task_id": "x"}}, "cutover_parameters", id="params"),
        pytest.param({"exchanged_ip": ["10.0.0.5"]}, "exchanged_ip", id="ips-without-exchange"),
        pytest.param(
            {"cutover": "exchange_ip", "exchanged_ip": ["10.0.0.5", "not-an-ip"]},
            "'not-an-ip'",
            id="not-an-ip",
        ),
        pytest.param({"is_exchange_domain": True}, "is_exchange_domain", id="domain"),
        pytest.param({"force_cutover": True}, "force_cutover", id="force-without-exchange"),
        pytest.param(
            {"cutover": "exchange_ip", "approval_timeout_seconds": 0},
            "approval_timeout_seconds",
            id="no-time-to-answer",
        ),
    ],
)
async def test_inconsistent_parameters_are_refused_up_front(
    world: World, parameters: dict[str, Any], fragment: str
) -> None:
    """Parameters that cannot work together, or that the chosen cutover would ignore, fail
    before any request, naming the problem."""
    await world.setup(["SUCCESS"])
    with pytest.raises(DcsValidationError, match=fragment):
        await world.run(**parameters)
    assert world.dcs.requests == {}


@pytest.mark.usefixtures("quick_approval_poll")
@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
async def test_approval_gate(world: World, approve: bool) -> None:
    """The runbook pauses for a form; approving cuts over once, rejecting never does."""
    await world.setup(["INCRMIGEATING"])
    run = asyncio.create_task(world.run(cutover="exchange_ip", require_approval=True))
    run_id = await paused_run_id()
    assert world.dcs.posts["exchange-ip"] == 0  # nothing happens before the answer
    await aresume_flow_run(run_id, run_input={"approve": approve, "comment": "change 4711"})
    if approve:
        summary = await run
        assert summary.approved_by_comment == "change 4711"
        assert world.dcs.posts["exchange-ip"] == 1
    else:
        with pytest.raises(CutoverRejected, match="change 4711"):
            await run
        assert world.dcs.posts["exchange-ip"] == 0
        assert "failed" in world.notifications()[-1]


@pytest.mark.usefixtures("quick_approval_poll")
async def test_approval_timeout_fails_without_cutover(world: World) -> None:
    """Nobody answers within approval_timeout_seconds: the run fails, nothing is exchanged."""
    await world.setup(["INCRMIGEATING"])
    with pytest.raises(FlowPauseTimeout):
        await world.run(cutover="exchange_ip", require_approval=True, approval_timeout_seconds=1)
    assert world.dcs.posts["exchange-ip"] == 0


@pytest.mark.parametrize("stop", [True, False], ids=["stop", "keep-running"])
async def test_cancellation_stops_the_migration_only_when_asked(
    world: World, stop: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The cancel hook stops the DCS migration if stop_migration_on_cancel, else leaves it."""
    await world.setup(["INCRMIGEATING"])
    flow_run = FlowRun(
        name="runbook-cancelled",
        flow_id=uuid.uuid4(),
        parameters={
            "task_id": world.task_id,
            "credentials": world.block,
            "stop_migration_on_cancel": stop,
        },
    )
    await asyncio.to_thread(stop_on_cancel, migration_runbook, flow_run, Cancelled())
    assert world.dcs.posts["stop"] == (1 if stop else 0)
    said = " ".join(record.getMessage() for record in caplog.records)
    assert ("stopped DCS migration task" if stop else "keeps running") in said


def test_the_ui_form_has_a_typed_described_field_per_parameter() -> None:
    """Each runbook parameter has a type and a description in the flow's parameter schema."""
    schema = migration_runbook.parameters.model_dump()
    properties = schema["properties"]
    for name in (
        "task_id", "credentials", "until", "poll_interval_seconds", "timeout_seconds",
        "cutover", "cutover_deployment", "require_approval", "notification_blocks",
        "stop_migration_on_cancel",
    ):  # fmt: skip
        assert properties[name].get("description"), name
    assert properties["cutover"]["enum"] == ["none", "exchange_ip", "deployment"]
    assert properties["credentials"]["default"] == "dcs"
    assert properties["require_approval"]["default"] is False
    assert schema["required"] == ["task_id"]


async def test_a_bad_notification_block_fails_before_the_wait(world: World) -> None:
    """A typo in a block name fails at once, before hours of waiting, with no DCS request."""
    await world.setup(["MIGRATING", "SUCCESS"])
    with pytest.raises(DcsValidationError, match="custom-webhook/no-such-sink"):
        await world.run(notification_blocks=["custom-webhook/no-such-sink"])
    assert world.dcs.requests == {}


@pytest.mark.parametrize(
    ("status", "task_status", "cutover", "ok"),
    [
        pytest.param("TERMINATED", "EXCHANGE_SUCCESS", "exchange_ip", True, id="sync-stopped"),
        pytest.param("INCRMIGEATING", "EXCHANGE_SUCCESS", "exchange_ip", True, id="exchanged"),
        pytest.param("INCRMIGEATING", "EXCHANGE_FAILED", "exchange_ip", False, id="not-exchanged"),
        pytest.param("MIGRATION_FAILED", None, "deployment", False, id="task-failed"),
        pytest.param("TERMINATED", None, "deployment", True, id="deployment-stopped-sync"),
    ],
)
def test_verification_after_the_cutover(
    status: str, task_status: str | None, cutover: Any, ok: bool
) -> None:
    """Stopping the sync is part of a cutover; a failure status or a failed exchange is not."""
    task = MigrationTask(task_id="t", status=status, task_status=task_status)
    if ok:
        flows.handover.check_cut_over(task, cutover)
    else:
        with pytest.raises(CutoverFailed):
            flows.handover.check_cut_over(task, cutover)
