"""`migrate_instance` against the real sandbox on 127.0.0.1, on the flows' fake clock: the
whole migration once, a rerun that creates and exchanges nothing twice, and bad input
refused before any request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.blocks.system import Secret

from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError
from flows.clock import FakeTime, use_time
from flows.migrate import migrate_instance
from sandbox import SandboxHandle, Scenario, serve

pytestmark = pytest.mark.usefixtures("prefect_harness")

SOURCE_PASSWORD = "source-redis-canary-7d1f"
TARGET = "86157b69-8a62-47f9-8c55-fa6ddc8927ee"  # the sandbox's target instance
CREATE, SET = "create_online_migration_task", "set_online_migration_task"


class World:
    def __init__(self, sandbox: SandboxHandle, fake: FakeTime) -> None:
        self.sandbox, self.fake = sandbox, fake
        tag = uuid.uuid4().hex[:8]
        self.block, self.secret, self.name = f"migrate-{tag}", f"src-pw-{tag}", f"mig-{tag}"

    async def save(self) -> None:
        creds = self.sandbox.credentials
        await DcsCredentials(
            endpoint=creds["endpoint"], project_id=creds["project_id"], token=creds["token"]
        ).asave(self.block, overwrite=True)
        await Secret(value=SOURCE_PASSWORD).asave(self.secret, overwrite=True)

    def parameters(self, **overrides: Any) -> dict[str, Any]:
        return {
            "task_name": self.name,
            "vpc_id": "vpc-1",
            "subnet_id": "subnet-1",
            "security_group_id": "sg-1",
            "source_instance_addrs": "10.0.0.5:6379",
            "source_password_secret": self.secret,
            "target_instance_id": TARGET,
            "credentials": self.block,
            "poll_interval_seconds": 15,
            **overrides,
        }

    def tasks_named(self) -> list[str]:
        return [s.task_id for s in self.sandbox.state.scripts() if s.task_name == self.name]


@pytest.fixture
def world() -> Iterator[World]:
    """The sandbox (no task yet) on a fake clock, and the test under that clock."""
    fake = FakeTime()
    with serve(Scenario(), clock=fake.monotonic) as handle, use_time(fake):
        yield World(handle, fake)


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


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"source_instance_id": TARGET}, "not both", id="source-by-id-and-address"),
        pytest.param({"target_instance_id": None}, "target_instance_id", id="no-target"),
        pytest.param({"source_instance_addrs": "nohost"}, "source_instance_addrs", id="bad-addrs"),
        pytest.param({"bandwidth_limit_mb": 0}, "bandwidth_limit_mb", id="no-bandwidth"),
        pytest.param(
            {"source_instance_addrs": None, "source_instance_id": TARGET},
            "the same",
            id="same-source-and-target",
        ),
        pytest.param(
            {"cutover": "none", "rollback_on_failed_verify": True},
            "rollback_on_failed_verify",
            id="rollback-without-exchange",
        ),
        pytest.param(
            {"migration_method": "full", "stop_sync_after_cutover": True},
            "stop_sync_after_cutover",
            id="stop-sync-of-a-full-migration",
        ),
        pytest.param({"source_password_secret": " "}, "source_password_secret", id="blank-secret"),
        pytest.param(
            {"source_password_secret": "no-such-secret"}, "no-such-secret", id="missing-secret"
        ),
        pytest.param({"settle_seconds": 5000}, "settle_seconds", id="gate-cannot-pass"),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    world: World, overrides: dict[str, Any], fragment: str
) -> None:
    """Each bad parameter fails with a DcsValidationError naming it; DCS hears nothing."""
    await world.save()
    with pytest.raises(DcsValidationError, match=fragment):
        await migrate_instance(**world.parameters(**overrides))
    assert world.sandbox.state.requests == []
