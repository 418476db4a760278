"""`migrate_instance` against the real sandbox on 127.0.0.1, on the flows' fake clock: the
whole migration once, and a rerun that creates and exchanges nothing twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocks.credentials import DcsCredentials
from flows.migrate import migrate_instance
from tests.migrate_world import CREATE, SET, SOURCE_PASSWORD, World, open_world

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def world() -> Iterator[World]:
    """The sandbox (no task yet) on a fake clock, and the test under that clock."""
    with open_world() as world:
        yield world


async def test_a_whole_migration_then_a_rerun_does_nothing_twice(world: World) -> None:
    """Created, configured with the Secret's password, cut over once; a rerun finds it all done."""
    await world.save()
    first = await migrate_instance(**world.parameters(stop_sync_after_cutover=True))
    state = world.sandbox.state
    (task_id,) = world.tasks_named()
    assert (first.task_id, first.created, first.configured) == (task_id, True, True)
    assert first.task_status == "EXCHANGE_SUCCESS"
    assert first.stats_after_cutover is not None
    assert first.sync_stopped
    assert first.caught_up is not None
    assert first.caught_up.offset == 0
    script = state.script(task_id)
    assert script is not None
    assert script.source_instance is not None
    assert script.source_instance.password == SOURCE_PASSWORD  # from the Secret block
    assert SOURCE_PASSWORD not in first.model_dump_json()
    assert (state.count(CREATE), state.count(SET), state.exchanges(task_id)) == (1, 1, 1)

    again = await migrate_instance(**world.parameters())
    assert (again.task_id, again.created, again.configured) == (task_id, False, False)
    assert world.tasks_named() == [task_id]
    assert (state.count(CREATE), state.count(SET)) == (1, 1)
    assert (state.exchange_requests(task_id), state.exchanges(task_id)) == (1, 1)


async def test_a_run_resumed_after_the_create_configures_the_task_it_made(world: World) -> None:
    """A task of that name left pending (a run died after its create) is configured, not doubled."""
    await world.save()
    block = await DcsCredentials.aload(world.block)
    async with block.get_async_client() as client:
        created = await client.create_online_migration_task(
            world.name, vpc_id="vpc-1", subnet_id="subnet-1", security_group_id="sg-1"
        )
    summary = await migrate_instance(**world.parameters(cutover="none"))
    assert (summary.task_id, summary.created, summary.configured) == (
        created.task_id, False, True,
    )  # fmt: skip
    assert world.tasks_named() == [created.task_id]
    assert world.sandbox.state.count(CREATE) == 1
