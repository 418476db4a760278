"""A fleet run and a runbook never both exchange one task's IPs: the cutover records decide."""

from __future__ import annotations

import pytest

from flows.runbook import RunbookSummary, migration_runbook
from tests.fleet_world import FleetWorld

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_a_task_a_runbook_cut_over_is_stood_down_by_the_fleet(fleet: FleetWorld) -> None:
    """Runbook first: the fleet leaves its task alone and cuts over only the other one."""
    done = fleet.add("by-runbook", "INCRMIGEATING")
    fleet.add("by-fleet", "INCRMIGEATING")
    await migration_runbook(
        task_id=done, credentials=fleet.world.block, cutover="exchange_ip", gate="off"
    )
    state = await fleet.run()
    assert state.is_completed()
    rows = await fleet.summary(state)
    assert rows["by-runbook"]["stage"] == "already cut over"
    assert rows["by-fleet"]["stage"] == "cut over"
    assert (fleet.exchanges("by-runbook"), fleet.exchanges("by-fleet")) == (1, 1)


@pytest.mark.parametrize(
    "automatic", [pytest.param(True, id="automatic"), pytest.param(False, id="manual")]
)
async def test_a_runbook_after_the_fleet_sends_no_second_exchange(
    fleet: FleetWorld, automatic: bool
) -> None:
    """Fleet first: an automatic runbook stands down; a manual one finds it done on DCS."""
    task_id = fleet.add("t", "INCRMIGEATING")
    assert (await fleet.run()).is_completed()
    summary: RunbookSummary = await migration_runbook(
        task_id=task_id,
        credentials=fleet.world.block,
        cutover="exchange_ip",
        gate="off",
        automatic=automatic,
    )
    assert fleet.exchanges("t") == 1
    if automatic:
        assert summary.stood_down is not None
        assert "cutover record" in summary.stood_down
    else:
        assert summary.task_status == "EXCHANGE_SUCCESS"
