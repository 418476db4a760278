"""The catch-up gate through Prefect: in front of every cutover of the runbook, on its own as
`wait_until_caught_up`, its events, its artifact and its log; time is fake throughout."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.flow_runs import aresume_flow_run
from prefect.testing.fixtures import (
    asserting_events_worker,  # noqa: F401 - a fixture
)

import flows.runbook
from blocks.credentials import DcsCredentials
from blocks.errors import CutoverGateTimeout, DcsValidationError
from flows.clock import FakeTime, use_time
from flows.gate import GateResult, wait_until_caught_up
from flows.runbook import RunbookSummary, migration_runbook
from tests.conftest import StubDcs
from tests.fakes import CAUGHT_UP, PASSWORD, StatsStep, Step
from tests.fakes import FakeDcs as ScriptedDcs
from tests.prefect_records import read_records
from tests.runbook_world import TOKEN, World, paused_run_id

pytestmark = pytest.mark.usefixtures("prefect_harness", "reset_worker_events")

LAGGING = {**CAUGHT_UP, "offset": "5120"}
#: The gate with its defaults passes at its 7th read (0, 10, ..., 60 s).
ONE_PASS = 7


def gate_events(worker: EventsWorker) -> list[Any]:
    """The catch-up gate's events the worker saw, in order."""
    worker.drain()
    client = worker._client
    assert isinstance(client, AssertingEventsClient)
    names = ("dcs.migration.caught-up", "dcs.migration.gate-failed")
    return [event for event in client.events if event.event in names]


async def serve(world: World, steps: list[Step], stats: list[StatsStep], **loose: Any) -> None:
    await world.setup(steps)
    world.dcs.stats = list(stats)
    world.dcs.loose = dict(loose)


def warnings(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and fragment in record.getMessage()
    ]


async def test_a_target_that_never_catches_up_holds_the_exchange(
    world: World,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    """Lagging to the deadline: CutoverGateTimeout, no POST, a failure note, gate-failed."""
    await serve(world, ["INCRMIGEATING"], [LAGGING])
    with pytest.raises(CutoverGateTimeout, match="No cutover was made"):
        await world.run(cutover="exchange_ip", gate_timeout_seconds=120)
    assert world.dcs.posts["exchange-ip"] == 0
    assert world.dcs.requests["stats"] == 13  # every 10 s from 0 to 120 s
    ready, failed = world.notifications()
    assert "ready for cutover" in ready
    assert failed.startswith("DCS migration failed:")
    assert "CutoverGateTimeout" in world.bodies()
    (event,) = gate_events(asserting_events_worker)
    assert event.event == "dcs.migration.gate-failed"
    assert event.resource.id == f"dcs.migration-task.{world.task_id}"
    assert event.resource["dcs.emitter"] == "gate"
    assert (event.payload["offset"], event.payload["waited_seconds"]) == (5120, 120.0)
    assert "offset 5120 > max_offset 0" in event.payload["reason"]


async def test_the_cutover_deployment_is_gated_too(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cutover='deployment' waits for the gate as well: held before any deployment runs."""
    await serve(world, ["INCRMIGEATING"], [LAGGING])
    checked: list[object] = []

    async def deployed(name: object) -> str:
        checked.append(name)
        return str(name)

    # The up-front check passes; no such deployment exists, so reaching it would fail
    # with another error than the gate's.
    monkeypatch.setattr(flows.runbook, "check_cutover_deployment", deployed)
    with pytest.raises(CutoverGateTimeout):
        await world.run(
            cutover="deployment", cutover_deployment="no-such/flow", gate_timeout_seconds=120
        )
    assert checked == ["no-such/flow"]


async def test_a_pass_emits_caught_up_with_the_figures(
    world: World,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    """Lagging, then three keys apart with offset 0: one exchange, caught-up with figures."""
    almost = {**CAUGHT_UP, "target_dbsize": "997"}
    await serve(world, ["INCRMIGEATING"], [LAGGING, LAGGING, almost])
    summary: RunbookSummary = await world.run(cutover="exchange_ip")
    assert world.dcs.posts["exchange-ip"] == 1
    assert summary.caught_up is not None
    assert (summary.caught_up.offset, summary.caught_up.key_difference) == (0, 3)
    (event,) = gate_events(asserting_events_worker)
    assert event.event == "dcs.migration.caught-up"
    payload = event.payload
    assert (payload["offset"], payload["source_dbsize"], payload["target_dbsize"]) == (0, 1000, 997)
    assert (payload["key_difference"], payload["waited_seconds"]) == (3, 80.0)
    assert payload["stage"] == "before the IP exchange"
    assert payload["task_name"] == f"migration-{world.task_id}"
    text = event.model_dump_json()
    assert PASSWORD not in text
    assert TOKEN not in text


async def test_gate_off_warns_and_reads_no_stats(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """gate='off': the exchange goes ahead at once, and the run's log says so as a warning."""
    await serve(world, ["INCRMIGEATING"], [LAGGING])
    summary: RunbookSummary = await world.run(cutover="exchange_ip", gate="off")
    assert world.dcs.posts["exchange-ip"] == 1
    assert world.dcs.requests["stats"] == 0
    assert summary.caught_up is None
    assert len(warnings(caplog, "the catch-up gate is off (gate='off')")) == 1


async def test_gate_on_does_not_warn_about_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The default gate='on' logs no such warning (the warning above is not always there)."""
    await serve(world, ["INCRMIGEATING"], [CAUGHT_UP])
    await world.run(cutover="exchange_ip")
    assert warnings(caplog, "gate is off") == []


async def test_a_finished_full_migration_is_cut_over_without_the_gate(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """SUCCESS of a full migration: no stats to judge; the log says why the gate stood aside."""
    await serve(
        world, ["MIGRATING", "SUCCESS"], [LAGGING], migration_method="full_amount_migration"
    )
    summary: RunbookSummary = await world.run(cutover="exchange_ip")
    assert world.dcs.posts["exchange-ip"] == 1
    assert world.dcs.requests["stats"] == 1  # the watch's progress read during MIGRATING only
    assert summary.caught_up is not None
    assert summary.caught_up.applied is False
    said = " ".join(record.getMessage() for record in caplog.records)
    assert "catch-up gate not applied before the IP exchange" in said


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        pytest.param({"settle_seconds": 3600}, "settle_seconds (3600", id="settle-past-timeout"),
        pytest.param({"gate_interval_seconds": 0}, "gate_interval_seconds", id="interval-0"),
        pytest.param({"max_offset": -1}, "max_offset", id="negative-offset"),
    ],
)
async def test_bad_gate_parameters_fail_before_any_request(
    world: World, parameters: dict[str, Any], fragment: str
) -> None:
    """A gate that could never pass is refused up front, naming the parameter."""
    await serve(world, ["INCRMIGEATING"], [CAUGHT_UP])
    with pytest.raises(DcsValidationError) as raised:
        await world.run(cutover="exchange_ip", **parameters)
    assert fragment in str(raised.value)
    assert world.dcs.requests == {}


@pytest.mark.usefixtures("quick_approval_poll")
async def test_the_gate_runs_again_in_full_after_the_approval(world: World) -> None:
    """Caught up before approval, lagging after it: the second pass holds; no exchange."""
    await serve(world, ["INCRMIGEATING"], [CAUGHT_UP] * ONE_PASS + [LAGGING])
    run = asyncio.create_task(
        world.run(cutover="exchange_ip", require_approval=True, gate_timeout_seconds=300)
    )
    run_id = await paused_run_id()
    assert world.dcs.requests["stats"] == ONE_PASS
    async with get_client() as client:
        paused = await client.read_flow_run(run_id)
        assert paused.state is not None
        keyset = paused.state.state_details.run_input_keyset
        assert keyset is not None
        description = json.loads(await client.read_flow_run_input(run_id, keyset["description"]))
    assert "caught up before approval: offset 0, source 1000 keys, target 1000 keys" in description
    assert "the gate runs again, in full" in description
    await aresume_flow_run(run_id, run_input={"approve": True, "comment": "go"})
    with pytest.raises(CutoverGateTimeout, match="offset 5120"):
        await run
    assert world.dcs.posts["exchange-ip"] == 0
    assert world.dcs.requests["stats"] == ONE_PASS + 31  # 0 to 300 s, every 10 s


@pytest.mark.usefixtures("quick_approval_poll")
async def test_a_full_second_pass_even_when_still_caught_up(world: World) -> None:
    """Still caught up after approval: the second pass waits its own settle window too."""
    await serve(world, ["INCRMIGEATING"], [CAUGHT_UP])
    run = asyncio.create_task(world.run(cutover="exchange_ip", require_approval=True))
    await aresume_flow_run(await paused_run_id(), run_input={"approve": True})
    summary: RunbookSummary = await run
    assert world.dcs.requests["stats"] == 2 * ONE_PASS
    assert summary.caught_up is not None
    assert summary.caught_up.stage == "before the IP exchange"
    assert world.dcs.posts["exchange-ip"] == 1


async def saved_block(stub: StubDcs, name: str) -> str:
    await DcsCredentials(endpoint=stub.url, project_id="project-1", token=TOKEN).asave(
        name, overwrite=True
    )
    return name


async def test_the_artifact_has_a_row_per_change_not_per_read(stub_dcs: StubDcs) -> None:
    """Ten reads, two sets of figures: a table of two rows and the outcome, on the flow run."""
    dcs = ScriptedDcs({"t-art": ["INCRMIGEATING"]}, stats=[LAGGING] * 3 + [CAUGHT_UP])
    stub_dcs.handler = dcs.stub_handler
    with use_time(FakeTime()):
        state = await wait_until_caught_up(
            "t-art", await saved_block(stub_dcs, "gate-artifact"), return_state=True
        )
    result: GateResult = await state.result()
    assert (result.reads, result.waited_seconds) == (10, 90.0)
    records = await read_records(state.state_details.flow_run_id)
    (artifact,) = [a for a in records.artifacts if a.key == "dcs-catch-up-t-art"]
    rows = [line for line in str(artifact.data).splitlines() if line.startswith("| 20")]
    assert len(rows) == 2
    assert "| 5120 | 1000 | 1000 | 0 | not passing: offset 5120 > max_offset 0 |" in rows[0]
    assert "| 0 | 1000 | 1000 | 0 | passing |" in rows[1]
    assert "**Caught up:**" in str(artifact.data)
    assert artifact.flow_run_id == state.state_details.flow_run_id


async def test_a_streak_of_failed_reads_is_one_warning(
    stub_dcs: StubDcs, caplog: pytest.LogCaptureFixture
) -> None:
    """Two reads lost to 503s (each after the client's own retries): one warning, then info."""
    dcs = ScriptedDcs({"t-503": ["INCRMIGEATING"]}, stats=[503] * 12 + [CAUGHT_UP])
    stub_dcs.handler = dcs.stub_handler
    with use_time(FakeTime()):
        result = await wait_until_caught_up("t-503", await saved_block(stub_dcs, "gate-503"))
    assert result.waited_seconds >= 60
    assert len(warnings(caplog, "cannot read the stats")) == 1
    said = " ".join(record.getMessage() for record in caplog.records)
    assert "readable again after 2 failed read(s)" in said


async def test_on_its_own_it_refuses_a_task_still_in_full_migration(stub_dcs: StubDcs) -> None:
    """wait_until_caught_up on a task in full migration: refused, saying what to do first."""
    dcs = ScriptedDcs({"t-full": ["FULLMIGRATING"]})
    stub_dcs.handler = dcs.stub_handler
    with pytest.raises(DcsValidationError, match="wait_for_migration_task"):
        await wait_until_caught_up("t-full", await saved_block(stub_dcs, "gate-full"))
    assert dcs.requests["stats"] == 0


def test_the_ui_form_describes_the_gate() -> None:
    """The runbook's form has a typed, described field per gate parameter, 'on' by default."""
    properties = migration_runbook.parameters.model_dump()["properties"]
    for name in (
        "gate", "gate_interval_seconds", "settle_seconds", "gate_timeout_seconds",
        "max_offset", "max_key_difference",
    ):  # fmt: skip
        assert properties[name].get("description"), name
    assert properties["gate"]["enum"] == ["on", "off"]
    assert properties["gate"]["default"] == "on"
    assert properties["max_key_difference"]["default"] == 1000
