"""The fleet tests' world: the runbook world's DCS, sink and blocks, holding many tasks;
with the `fleet` fixture that hands it out (a pytest plugin, like the runbook world).

Task ids are unique per test (cutover records are per task id, and the Prefect server is
shared by the session). With five or more tasks pending, the watch reads statuses from the
list and details only on a change, and the fake's scripts advance on detail reads: so a
task here starts in the status it is to be found in (the engine's own tests cover change).

Time is fake and shared: every concurrent wait (the watch's rounds, each gate's reads, each
exchange's follow) moves it on for all of them, so deadlines here are generous.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State

from flows.fleet import migration_fleet
from flows.fleet_board import ARTIFACT_KEY
from flows.records import CutoverRecords
from tests.fakes import CAUGHT_UP, FakeDcs, StatsStep, Step
from tests.prefect_records import read_records
from tests.runbook_world import World

LAGGING: dict[str, Any] = {**CAUGHT_UP, "offset": "5120"}
#: How each task of a fleet in every state ends: its stage, and its outcome's first word.
EVERY_STATE_ENDS: dict[str, tuple[str, str]] = {
    "ready": ("cut over", "task_status EXCHANGE_SUCCESS"),
    "failing": ("failed", "MigrationFailed"),
    "deleted": ("failed", "MigrationTaskNotFound"),
    "lagging": ("failed", "CutoverGateTimeout"),
    "unknown": ("failed", "MigrationTimeout"),
    "bad-exchange": ("failed", "CutoverFailed"),
}
#: Small gate windows and a short watch, all on fake time.
QUICK: dict[str, Any] = {
    "poll_interval_seconds": 15,
    "timeout_seconds": 900,
    "gate_interval_seconds": 10,
    "settle_seconds": 20,
    "gate_timeout_seconds": 1200,
}


class FleetWorld:
    """Named tasks on the world's DCS; runs of the fleet over them, and what they left."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.dcs = world.dcs = FakeDcs({})
        self.ids: dict[str, str] = {}

    def id(self, name: str) -> str:
        return self.ids.setdefault(name, f"{name}-{self.world.task_id[:12]}")

    async def setup(self) -> None:
        await self.world.setup(["INCRMIGEATING"])
        del self.dcs.scripts[self.world.task_id]  # the world's own task is not in the fleet

    def add(
        self,
        name: str,
        *steps: Step,
        stats: list[StatsStep] | None = None,
        exchange: list[Step] | None = None,
    ) -> str:
        task_id = self.id(name)
        self.dcs.add(task_id, *steps)
        if stats is not None:
            self.dcs.task_stats[task_id] = list(stats)
        if exchange is not None:
            self.dcs.task_after[task_id] = {"exchange-ip": list(exchange)}
        return task_id

    async def cut_over_before(self, name: str) -> None:
        """A record that says an earlier run cut the task over (as a runbook leaves it)."""
        async with get_client() as client:
            records = CutoverRecords(client, self.id(name), "exchange-ip")
            value = {"state": "succeeded", "flow_run_id": "an-earlier-run"}
            assert await records.claim(1, value) is not None

    async def run(self, **parameters: Any) -> State[Any]:
        given = {
            "task_ids": list(self.ids.values()),
            "credentials": self.world.block,
            "notification_blocks": [self.world.notify],
            **QUICK,
        }
        state: State[Any] = await migration_fleet(**{**given, **parameters}, return_state=True)
        return state

    def exchanges(self, name: str) -> int:
        return self.dcs.task_posts[self.id(name), "exchange-ip"]

    async def summary(self, state: State[Any]) -> dict[str, dict[str, Any]]:
        """The summary artifact's rows by task name, as the run left them."""
        rows = await summary_rows(state)
        return {name: rows[task_id] for name, task_id in self.ids.items()}


async def summary_rows(state: State[Any]) -> dict[str, dict[str, Any]]:
    """The summary artifact's rows by task id, as the fleet run in `state` left them."""
    run_id = state.state_details.flow_run_id
    assert isinstance(run_id, UUID)
    records = await read_records(run_id)
    (artifact,) = [a for a in records.artifacts if a.key == ARTIFACT_KEY]
    data = artifact.data if isinstance(artifact.data, str) else json.dumps(artifact.data)
    return {row["task_id"]: row for row in json.loads(data)}


@pytest.fixture
async def fleet(world: World) -> FleetWorld:
    """A fleet world on fresh DCS and sink servers, with fake time."""
    built = FleetWorld(world)
    await built.setup()
    return built


__all__ = ["EVERY_STATE_ENDS", "LAGGING", "QUICK", "FleetWorld", "fleet", "summary_rows"]
