"""`migration_fleet` against the sandbox (the independent DCS emulator) on 127.0.0.1: a fleet
in every state at once, on the flows' fake clock, each task ending as it should."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from blocks.credentials import DcsCredentials
from flows.clock import FakeTime, use_time
from flows.fleet import migration_fleet
from sandbox import MigrationScript, SandboxHandle, Scenario, serve
from tests.fleet_world import EVERY_STATE_ENDS, QUICK, summary_rows

pytestmark = pytest.mark.usefixtures("prefect_harness")


def scripts(run: str) -> dict[str, MigrationScript]:
    """One task per state, by name; ids unique per test (cutover records are per task id)."""
    ids = {name: f"{name}-{run}" for name in ("ready", "failing", "deleted", "lagging")}
    ids |= {name: f"{name}-{run}" for name in ("unknown", "bad-exchange")}
    return {
        "ready": MigrationScript.incremental(ids["ready"]),
        "failing": MigrationScript.failing(ids["failing"]),
        "deleted": MigrationScript.deleted(ids["deleted"]),
        # Never below 2048 behind: the gate holds until its timeout.
        "lagging": MigrationScript.incremental(
            ids["lagging"], stats={"lag_offset": 8192, "lag_seconds": 30, "floor_offset": 2048}
        ),
        "unknown": MigrationScript.unknown_status(ids["unknown"]),
        "bad-exchange": MigrationScript.incremental(
            ids["bad-exchange"], exchange_outcome="failure"
        ),
    }


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxHandle, dict[str, str]]]:
    """The sandbox serving one task per state, its clock the flows' fake time."""
    fake = FakeTime()
    tasks = scripts(uuid.uuid4().hex[:12])
    scenario = Scenario(tasks=list(tasks.values()))
    with serve(scenario, clock=fake.monotonic) as handle, use_time(fake):
        yield handle, {name: script.task_id for name, script in tasks.items()}


async def test_a_fleet_in_every_state_against_the_sandbox(
    sandbox: tuple[SandboxHandle, dict[str, str]],
) -> None:
    """Ready, failing, deleted, lagging, unknown, failed exchange: each ends as it should."""
    handle, ids = sandbox
    creds = handle.credentials
    block = f"fleet-sandbox-{ids['ready'][-12:]}"
    await DcsCredentials(
        endpoint=creds["endpoint"], project_id=creds["project_id"], token=creds["token"]
    ).asave(block, overwrite=True)

    # The fake clock advances by every sleep of every coroutine: while one gate waits on the
    # sandbox's real HTTP answer, the other tasks' watch and gates sleep on, and on a busy
    # machine 1,200 fake seconds passed between two reads of the caught-up task's gate. The
    # lagging task never catches up whatever the timeout, so a long one changes no outcome.
    quick = {**QUICK, "gate_timeout_seconds": 7200}
    state = await migration_fleet(
        task_ids=list(ids.values()), credentials=block, return_state=True, **quick
    )

    assert state.is_failed()
    rows = await summary_rows(state)
    ended = {
        name: (rows[task_id]["stage"], rows[task_id]["outcome"].split(":")[0])
        for name, task_id in ids.items()
    }
    assert ended == EVERY_STATE_ENDS
    posts = {name: handle.state.exchange_requests(task_id) for name, task_id in ids.items()}
    assert posts == {name: int(name in ("ready", "bad-exchange")) for name in ids}
    assert handle.state.exchanges(ids["ready"]) == 1
    assert all(handle.state.exchanges(task_id) <= 1 for task_id in ids.values())
    message = state.message or ""
    assert all((ids[name] in message) == (name != "ready") for name in ids)
