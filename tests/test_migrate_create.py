"""`migrate_instance` when its create request gets no clear answer, against the sandbox on a
fake clock: a task the server made anyway is found by name and instances and the migration
goes on (never a second create); a task that is not there ends in `MigrationNotCreated`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from blocks.errors import MigrationNotCreated
from flows.migrate import migrate_instance
from sandbox import Scenario
from tests.migrate_world import CREATE, SET, World, open_world

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _spoil_create(kind: str, when: str, **fields: Any) -> dict[str, Any]:
    """A fault on the first create request: "after" the server acted, or "before"."""
    return {"kind": kind, "routes": [CREATE], "when": when, "count": 1, **fields}


UNCLEAR_ANSWERS = [
    pytest.param("server_error", {"status": 500}, id="500"),
    pytest.param("server_error", {"status": 502}, id="502-gateway-page"),
    pytest.param("drop", {}, id="connection-dropped"),
    pytest.param("html", {}, id="2xx-html-page"),
]


@pytest.fixture
def faults(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The sandbox's faults, as the test is parametrized."""
    return list(request.param)


@pytest.fixture
def world(faults: list[dict[str, Any]]) -> Iterator[World]:
    """The sandbox with `faults`, on a fake clock, and the test under that clock."""
    with open_world(Scenario.model_validate({"faults": faults})) as world:
        yield world


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([_spoil_create(kind, "after", **fields)], id=str(param.id))
        for param in UNCLEAR_ANSWERS
        for kind, fields in [param.values]
    ],
    indirect=True,
)
async def test_a_task_created_despite_an_unclear_answer_is_found_and_migrated(
    world: World,
) -> None:
    """The server made the task but its answer was lost: found by name, one task, cut over once."""
    await world.save()
    summary = await migrate_instance(**world.parameters())
    state = world.sandbox.state
    (task_id,) = world.tasks_named()
    assert sum(state.faults_injected.values()) == 1
    assert (summary.task_id, summary.created, summary.configured) == (task_id, True, True)
    assert summary.task_status == "EXCHANGE_SUCCESS"
    assert (state.count(CREATE), state.count(SET), state.exchanges(task_id)) == (1, 1, 1)
    created = [body for subject, body in world.notifications() if "task created" in subject]
    assert len(created) == 1
    assert "without a clear answer" in created[0]
    assert task_id in created[0]


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([_spoil_create("server_error", "before", status=500)], id="500"),
        pytest.param([_spoil_create("server_error", "before", status=503)], id="503"),
        pytest.param([_spoil_create("drop", "before")], id="connection-dropped"),
    ],
    indirect=True,
)
async def test_a_create_lost_without_a_trace_ends_in_migration_not_created(world: World) -> None:
    """No task of that name listed after an unclear create: MigrationNotCreated, one POST only."""
    await world.save()
    with pytest.raises(MigrationNotCreated) as raised:
        await migrate_instance(**world.parameters())
    state = world.sandbox.state
    assert world.tasks_named() == []
    assert (state.count(CREATE), state.count(SET)) == (1, 0)
    error = raised.value
    assert error.task_name == world.name
    text = str(error)
    assert repr(world.name) in text
    assert "DCS console" in text  # what to check
    assert "again" in text  # and what to do then
    failed = [subject for subject, _ in world.notifications() if "failed" in subject]
    assert len(failed) == 1, world.notifications()
