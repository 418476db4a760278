"""The runbook run is where a person looks: its own artifacts, its log, the approval form.

In-process runbooks against the scripted DCS, on fake time; what Prefect stored about the
run is read back through its API.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import aresume_flow_run

from blocks.errors import CutoverRejected
from tests.prefect_records import Records, read_records
from tests.runbook_world import World, paused_run_id

pytestmark = pytest.mark.usefixtures("prefect_harness")

TARGET = {"id": "dcs-b-0042", "name": "dcs-b", "addrs": "192.168.0.9:6379"}


async def _runbook_run(world: World) -> uuid.UUID:
    """The id of this world's runbook run, found by its name."""
    async with get_client() as client:
        (run,) = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"runbook-{world.task_id}"]))
        )
    return run.id


def _latest(records: Records, key: str) -> Any:
    """The newest version of the artifact `key` on the run."""
    versions = [artifact for artifact in records.artifacts if artifact.key == key]
    assert versions, f"no artifact {key}; the run has {[a.key for a in records.artifacts]}"
    return max(versions, key=lambda artifact: artifact.created)


def _rows(records: Records, task_id: str) -> list[dict[str, str]]:
    data = _latest(records, f"dcs-runbook-{task_id}").data
    return list(json.loads(data) if isinstance(data, str) else data)


async def test_the_run_itself_holds_the_timeline_progress_and_status_log(world: World) -> None:
    """Watch, gate and exchange on the runbook's own run; progress ends at 100%."""
    await world.setup(["RUNNING", "FULLMIGRATING", "FULLMIGRATING", "INCRMIGEATING"])
    world.dcs.progress = [40, 99.5]  # the last stats read of the full migration said 99%
    await world.run(cutover="exchange_ip", poll_interval_seconds=60)
    run_id = await _runbook_run(world)
    records = await read_records(run_id)
    assert records.subflow_runs == []  # the watch is a task of the run, not a subflow
    task_id = world.task_id
    for key in ("runbook", "migration-timeline", "migration-progress", "catch-up"):
        assert _latest(records, f"dcs-{key}-{task_id}").flow_run_id == run_id, key
    assert _latest(records, f"dcs-migration-progress-{task_id}").data == 100
    rows = _rows(records, task_id)
    assert [(row["step"], row["status"], row["task_status"]) for row in rows] == [
        ("watch", "RUNNING", ""),
        ("watch", "FULLMIGRATING", ""),
        ("watch", "INCRMIGEATING", ""),
        ("catch-up gate", "", ""),
        ("IP exchange", "", ""),
        ("IP exchange", "INCRMIGEATING", "EXCHANGING"),
        ("IP exchange", "INCRMIGEATING", "EXCHANGE_SUCCESS"),
        ("verified", "INCRMIGEATING", "EXCHANGE_SUCCESS"),
    ]
    assert rows[3]["detail"].startswith("caught up before the IP exchange: offset 0")
    assert rows[4]["detail"] == "request sent, task_status None"
    messages = records.messages()
    for change in ("(first look) -> RUNNING", "RUNNING -> FULLMIGRATING", "-> INCRMIGEATING"):
        assert any(change in message for message in messages), change


@pytest.mark.parametrize(
    ("heartbeat", "expected"),
    [
        pytest.param({}, 2, id="default-every-10-min"),
        pytest.param({"heartbeat_seconds": 300}, 5, id="every-5-min"),
        pytest.param({"heartbeat_seconds": 0}, 0, id="off"),
    ],
)
async def test_a_long_watch_says_it_goes_on(
    world: World, heartbeat: dict[str, float], expected: int
) -> None:
    """26 minutes of full migration, a look a minute: a heartbeat line per period, no more."""
    await world.setup(["FULLMIGRATING"] * 26 + ["INCRMIGEATING"])
    world.dcs.progress = [55]
    await world.run(cutover="none", poll_interval_seconds=60, **heartbeat)
    records = await read_records(await _runbook_run(world))
    beats = [m for m in records.messages() if m.startswith("still watching migration task")]
    assert len(beats) == expected, beats
    if beats:
        assert beats[0] == (
            f"still watching migration task {world.task_id} after "
            f"{int(heartbeat.get('heartbeat_seconds', 600)) // 60} min: "
            f"migration-{world.task_id} ({world.task_id[:8]}...) FULLMIGRATING, "
            "full migration 55%"
        )


async def _description(run_id: uuid.UUID) -> str:
    """The text above the approval form of a paused run."""
    async with get_client() as client:
        paused = await client.read_flow_run(run_id)
        assert paused.state is not None
        keyset = paused.state.state_details.run_input_keyset
        assert keyset is not None
        return str(json.loads(await client.read_flow_run_input(run_id, keyset["description"])))


@pytest.mark.usefixtures("quick_approval_poll")
@pytest.mark.parametrize(
    ("gate", "figures"),
    [
        pytest.param(
            "on",
            "- Latest stats: caught up before approval: offset 0, source 1000 keys, "
            "target 1000 keys, difference 0",
            id="gate-figures",
        ),
        pytest.param(
            "off", "- Latest stats: offset 0, source 1000 keys, target 1000 keys.", id="one-read"
        ),
    ],
)
async def test_the_approval_form_names_task_instances_status_and_stats(
    world: World, gate: str, figures: str
) -> None:
    """The form says what is cut over, between which instances, and on which figures."""
    await world.setup(["INCRMIGEATING"])
    world.dcs.loose = {"target_instance": TARGET}
    run = asyncio.create_task(world.run(cutover="exchange_ip", require_approval=True, gate=gate))
    run_id = await paused_run_id()
    description = await _description(run_id)
    lines = description.splitlines()
    assert lines[0] == f"Cut over migration-{world.task_id} ({world.task_id[:8]}...) INCRMIGEATING?"
    assert "- Source: 10.0.0.1:6379" in lines
    assert "- Target: dcs-b (dcs-b-0042) at 192.168.0.9:6379" in lines
    assert "- Status: INCRMIGEATING (ready for cutover)" in lines
    assert any(line.startswith(figures) for line in lines), description
    # The run's timeline is there while the person decides.
    rows = _rows(await read_records(run_id), world.task_id)
    assert (rows[-1]["step"], rows[-1]["detail"]) == ("approval", "asked")
    await aresume_flow_run(run_id, run_input={"approve": False, "comment": "not tonight"})
    with pytest.raises(CutoverRejected):
        await run
    rows = _rows(await read_records(run_id), world.task_id)
    assert (rows[-2]["step"], rows[-2]["detail"]) == ("approval", "rejected: not tonight")
    assert rows[-1]["step"] == "failed"
    assert world.dcs.posts["exchange-ip"] == 0
