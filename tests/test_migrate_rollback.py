"""`migrate_instance` when the cutover does not verify, against the sandbox on a fake clock:
with `rollback_on_failed_verify` the IP exchange is rolled back exactly once and the run
fails saying so; without it nothing is rolled back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from blocks.errors import CutoverFailed
from flows.migrate import migrate_instance
from sandbox import MigrationScript, Scenario, Step
from tests.migrate_world import SOURCE, World, open_world

pytestmark = pytest.mark.usefixtures("prefect_harness")

STATS = "show_migration_task_stats"
#: The task fails 3 s in: after the exchange was requested (at once), before it is followed
#: to EXCHANGE_SUCCESS (5 s later), so the exchange succeeds and the fresh read fails.
FAILS_AFTER_EXCHANGE = [Step(status="INCRMIGEATING", seconds=3), Step(status="FAILED")]
SYNCING = [Step(status="INCRMIGEATING")]
VERIFY_FAILURES = [
    pytest.param(FAILS_AFTER_EXCHANGE, [], "failure status", id="task-failed-after-exchange"),
    pytest.param(
        SYNCING,
        [{"kind": "server_error", "routes": [STATS]}],
        "stats of migration task",
        id="stats-unreadable-after-exchange",
    ),
]


@pytest.fixture
def faults(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The sandbox's faults: none unless the test is parametrized with some."""
    return list(getattr(request, "param", []))


@pytest.fixture
def world(faults: list[dict[str, Any]]) -> Iterator[World]:
    """The sandbox with `faults`, on a fake clock, and the test under that clock."""
    with open_world(Scenario.model_validate({"faults": faults})) as world:
        yield world


def _existing_task(world: World, steps: list[Step], **fields: Any) -> str:
    """A configured task of the world's name, source and target, living `steps` from now."""
    task_id = uuid.uuid4().hex
    script = MigrationScript(task_id=task_id, task_name=world.name, steps=steps, **fields)
    world.sandbox.state.play(script)
    return task_id


async def _run(world: World, *, rollback: bool) -> CutoverFailed:
    parameters = world.parameters(
        source_instance_addrs=None,
        source_instance_id=SOURCE,
        gate="off",  # the gate is beside the point here; its own tests cover it
        rollback_on_failed_verify=rollback,
    )
    with pytest.raises(CutoverFailed) as raised:
        await migrate_instance(**parameters)
    return raised.value


@pytest.mark.parametrize(("steps", "faults", "why"), VERIFY_FAILURES, indirect=["faults"])
async def test_a_failed_verify_is_rolled_back_once(
    world: World, steps: list[Step], why: str
) -> None:
    """The flag on: one rollback-ip sent, the error and a notification say it was rolled back."""
    await world.save()
    task_id = _existing_task(world, steps)
    error = await _run(world, rollback=True)
    state = world.sandbox.state
    assert (state.exchange_requests(task_id), state.rollback_requests(task_id)) == (1, 1)
    assert state.rollbacks(task_id) == 1
    text = str(error)
    assert why in text
    assert "rolled back" in text
    assert "ROLLBACK_SUCCESS" in text
    subjects = [subject for subject, _ in world.notifications()]
    rolled = [s for s in subjects if "verification failed, rolled back" in s]
    assert len(rolled) == 1, subjects
    (body,) = [b for s, b in world.notifications() if s == rolled[0]]
    assert "rolled back" in body.split("verification failed, rolled back", 1)[-1]


@pytest.mark.parametrize(("steps", "faults", "why"), VERIFY_FAILURES, indirect=["faults"])
async def test_without_the_flag_a_failed_verify_is_not_rolled_back(
    world: World, steps: list[Step], why: str
) -> None:
    """The flag off: the run fails on the verify and no rollback-ip is sent."""
    await world.save()
    task_id = _existing_task(world, steps)
    error = await _run(world, rollback=False)
    state = world.sandbox.state
    assert (state.exchange_requests(task_id), state.rollback_requests(task_id)) == (1, 0)
    assert why in str(error)
    assert "rolled back" not in str(error)
    subjects = [subject for subject, _ in world.notifications()]
    assert any("cutover failed" in s for s in subjects), subjects
    assert not any("rolled back" in s for s in subjects), subjects


@pytest.mark.parametrize("faults", [pytest.param([], id="no-faults")], indirect=True)
async def test_a_rollback_that_fails_says_the_addresses_may_still_be_exchanged(
    world: World,
) -> None:
    """The rollback ends ROLLBACK_FAILED: sent once, and the error says to check the console."""
    await world.save()
    rollback_fails = {"exchange": {"rollback_outcome": "failure"}}
    task_id = _existing_task(world, FAILS_AFTER_EXCHANGE, **rollback_fails)
    error = await _run(world, rollback=True)
    state = world.sandbox.state
    assert (state.exchange_requests(task_id), state.rollback_requests(task_id)) == (1, 1)
    assert "rolling the IP exchange back failed too" in str(error)
    assert "DCS console" in str(error)
    subjects = [subject for subject, _ in world.notifications()]
    assert sum("verification failed, rollback failed" in s for s in subjects) == 1, subjects


#: More 500s in a row than the client's own retries (1 + 5), then the stats read answers.
STATS_BLIP = [{"kind": "server_error", "routes": [STATS], "count": 8}]


@pytest.mark.parametrize("faults", [pytest.param(STATS_BLIP, id="stats-blip")], indirect=True)
async def test_a_passing_stats_outage_after_the_exchange_is_ridden_out_not_rolled_back(
    world: World,
) -> None:
    """Eight 500s on the stats read after a good exchange: waited out, verified, no rollback."""
    await world.save()
    task_id = _existing_task(world, SYNCING)
    parameters = world.parameters(
        source_instance_addrs=None,
        source_instance_id=SOURCE,
        gate="off",
        rollback_on_failed_verify=True,
    )
    summary = await migrate_instance(**parameters)
    state = world.sandbox.state
    assert (state.exchange_requests(task_id), state.rollback_requests(task_id)) == (1, 0)
    assert summary.task_status == "EXCHANGE_SUCCESS"
    assert summary.stats_after_cutover is not None
