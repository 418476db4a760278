"""`migration_fleet` against a scripted DCS on loopback: a fleet in every state at once,
waves, a run killed after its first wave and run again, and the parameter form."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest
from prefect.client.orchestration import get_client

import flows.fleet
from blocks.errors import CutoverFailed, DcsValidationError
from blocks.models import EXCHANGE_SUCCESS, EXCHANGING
from flows.fleet import migration_fleet
from flows.records import CutoverRecords, cutover_record_name
from tests.fakes import PASSWORD
from tests.fleet_world import EVERY_STATE_ENDS, LAGGING, QUICK, FleetWorld
from tests.prefect_records import read_records
from tests.runbook_world import TOKEN

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_a_fleet_in_every_state_at_once(fleet: FleetWorld) -> None:
    """Each task ends as it should, one exchange at most each, the run Failed naming the rest."""
    fleet.add("ready", "INCRMIGEATING")
    fleet.add("failing", "FAILED")
    fleet.id("deleted")  # never existed on DCS: DCS.4133
    fleet.add("lagging", "INCRMIGEATING", stats=[LAGGING])
    fleet.add("unknown", "SOMETHING_NEW")
    fleet.add("bad-exchange", "INCRMIGEATING", exchange=[EXCHANGING, "EXCHANGE_FAILED"])
    fleet.add("done-before", "INCRMIGEATING")
    await fleet.cut_over_before("done-before")

    state = await fleet.run()

    assert state.is_failed()
    rows = await fleet.summary(state)
    ended = {
        name: (row["stage"], row["outcome"].split(":")[0].split(",")[0])
        for name, row in rows.items()
    }
    assert ended == {
        **EVERY_STATE_ENDS,
        "done-before": (
            "already cut over",
            f"record {cutover_record_name(fleet.id('done-before'))}",
        ),
    }
    exchanges = {name: fleet.exchanges(name) for name in rows}
    assert exchanges == {name: int(name in ("ready", "bad-exchange")) for name in rows}
    assert fleet.dcs.requests[f"show:{fleet.id('done-before')}"] == 0  # not even watched
    assert rows["ready"]["offset"] == 0
    assert rows["ready"]["ready_at"] <= rows["ready"]["ended_at"]
    message = state.message or ""
    for name in ("failing", "deleted", "lagging", "unknown", "bad-exchange"):
        assert fleet.id(name) in message
    assert fleet.id("ready") not in message
    (only,) = fleet.world.notifications()  # no waves: one message, at the end
    assert only.startswith("DCS migration fleet done: 2 of 7 cut over in ")
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    text = (await read_records(run_id)).text() + fleet.world.bodies()
    assert PASSWORD not in text
    assert TOKEN not in text


async def test_waves_cut_over_every_ready_task_and_complete(fleet: FleetWorld) -> None:
    """Five ready tasks in waves of two: three waves, a message each, one exchange each."""
    for n in range(5):
        fleet.add(f"t{n}", "INCRMIGEATING")
    state = await fleet.run(wave_size=2, max_parallel_cutovers=2)
    assert state.is_completed()
    summary = await state.result()
    assert summary.counts == {"cut over": 5}
    rows = await fleet.summary(state)
    # A wave takes the tasks ready when the last one ended (up to two): 3 to 5 waves.
    sizes = Counter(row["wave"] for row in rows.values())
    waves = len(sizes)
    assert sorted(sizes) == list(range(1, waves + 1))
    assert 3 <= waves <= 5
    assert max(sizes.values()) <= 2
    assert all(fleet.exchanges(name) == 1 for name in rows)
    subjects = fleet.world.notifications()
    expected = [f"DCS migration fleet, wave {n}" for n in range(1, waves + 1)]
    expected.append("DCS migration fleet done")
    assert [subject.split(":")[0] for subject in subjects] == expected


class Killed(BaseException):
    """The worker went away: not an error the flow could catch and carry on after."""


async def test_a_run_killed_after_its_first_wave_resumes_without_a_second_exchange(
    fleet: FleetWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run one dies after wave 1; run two stands wave 1 down and cuts over only the rest."""
    for n in range(5):
        fleet.add(f"t{n}", "INCRMIGEATING")
    after_wave = flows.fleet._Fleet.after_wave

    async def dies(self: Any, number: int, batch: Any) -> None:
        await after_wave(self, number, batch)
        raise Killed

    monkeypatch.setattr(flows.fleet._Fleet, "after_wave", dies)
    with pytest.raises(Killed):
        await fleet.run(wave_size=2)
    first = {name: fleet.exchanges(name) for name in fleet.ids}
    # Wave 1 took the one or two tasks ready first; nothing went on after it.
    assert sorted(first.values()) in ([0, 0, 0, 0, 1], [0, 0, 0, 1, 1])

    monkeypatch.setattr(flows.fleet._Fleet, "after_wave", after_wave)
    state = await fleet.run(wave_size=2)

    assert state.is_completed()
    assert {name: fleet.exchanges(name) for name in fleet.ids} == dict.fromkeys(fleet.ids, 1)
    rows = await fleet.summary(state)
    stages = {name: row["stage"] for name, row in rows.items()}
    assert stages == {name: "already cut over" if first[name] else "cut over" for name in fleet.ids}


async def test_a_run_killed_mid_wave_resumes_without_a_second_exchange(
    fleet: FleetWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed with one task cut over, one exchanging, one not begun: run two does the rest."""
    for n in range(3):
        fleet.add(f"t{n}", "INCRMIGEATING")
    loop = asyncio.get_running_loop()
    answer = fleet.dcs.answer
    killed: list[str] = []

    def spy(method: str, path: str, query: str = "") -> tuple[int, bytes]:
        """The first read after the second POST: DCS is exchanging; the worker dies now."""
        reply = answer(method, path, query)
        posted = [task_id for (task_id, _), n in fleet.dcs.task_posts.items() if n]
        if len(posted) == 2 and not killed and path.endswith(f"/migration-task/{posted[1]}"):
            killed.append(posted[1])
            loop.call_soon_threadsafe(run.cancel)  # everything of run one stops here
        return reply

    monkeypatch.setattr(fleet.dcs, "answer", spy)
    run = asyncio.ensure_future(fleet.run(wave_size=3, max_parallel_cutovers=1))
    with contextlib.suppress(asyncio.CancelledError):
        await run
    first = {name: fleet.exchanges(name) for name in fleet.ids}
    assert sorted(first.values()) == [0, 1, 1]  # one done, one exchanging, one not begun
    (exchanging,) = [name for name in fleet.ids if fleet.id(name) in killed]
    async with get_client() as client:
        orphan = await CutoverRecords(client, fleet.id(exchanging), "exchange-ip").latest()
    assert orphan is not None
    assert orphan.value["state"] == "requested"  # outcome unknown to run one

    monkeypatch.setattr(fleet.dcs, "answer", answer)
    state = await fleet.run(wave_size=3, max_parallel_cutovers=1)

    assert state.is_completed()
    assert {name: fleet.exchanges(name) for name in fleet.ids} == dict.fromkeys(fleet.ids, 1)
    stages = {name: row["stage"] for name, row in (await fleet.summary(state)).items()}
    for name in fleet.ids:
        done_before = first[name] and name != exchanging
        assert stages[name] == ("already cut over" if done_before else "cut over"), name


async def test_a_task_caught_mid_exchange_is_followed_not_requested_again(
    fleet: FleetWorld,
) -> None:
    """A record left 'requested' and DCS exchanging: no gate, no POST, followed to success."""
    task_id = fleet.add("mid", "INCRMIGEATING")
    fleet.dcs.show(EXCHANGING, EXCHANGE_SUCCESS, task_id=task_id)
    async with get_client() as client:
        records = CutoverRecords(client, task_id, "exchange-ip")
        assert await records.claim(1, {"state": "requested", "flow_run_id": "killed"})
    state = await fleet.run()
    assert state.is_completed()
    assert fleet.exchanges("mid") == 0
    assert fleet.dcs.requests["stats"] == 0  # no gate: the exchange was already under way


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        pytest.param({}, "not neither", id="no-tasks"),
        pytest.param({"name_filter": "x"}, "not both", id="ids-and-filter"),
        pytest.param({"approval": "per_wave"}, "wave_size", id="per-wave-without-waves"),
        pytest.param({"max_parallel_cutovers": 0}, "max_parallel_cutovers", id="no-slots"),
        pytest.param({"wave_size": -1}, "wave_size", id="negative-wave"),
    ],
)
async def test_bad_parameters_fail_before_any_request(
    fleet: FleetWorld, parameters: dict[str, Any], named: str
) -> None:
    """Each refusal names the parameter, and DCS hears nothing."""
    fleet.add("t", "INCRMIGEATING")
    given: dict[str, Any] = {"task_ids": list(fleet.ids.values()), **parameters}
    if named == "not neither":
        given["task_ids"] = []
    with pytest.raises(DcsValidationError, match=named):
        await migration_fleet(credentials=fleet.world.block, **given)
    assert fleet.dcs.requests == {}


async def test_a_name_filter_picks_the_tasks(fleet: FleetWorld) -> None:
    """name_filter: every task whose name matches goes, others are left alone."""
    fleet.add("wanted-a", "INCRMIGEATING")
    fleet.add("wanted-b", "INCRMIGEATING")
    other = fleet.add("other", "INCRMIGEATING")
    summary = await migration_fleet(name_filter="wanted", credentials=fleet.world.block, **QUICK)
    assert {row["task_id"] for row in summary.tasks} == {fleet.id("wanted-a"), fleet.id("wanted-b")}
    assert fleet.dcs.task_posts[other, "exchange-ip"] == 0


async def test_a_name_filter_that_matches_nothing_says_so(fleet: FleetWorld) -> None:
    """No task matches: a clear error naming the filter, before any cutover."""
    with pytest.raises(DcsValidationError, match="'nothing-like-this'"):
        await migration_fleet(name_filter="nothing-like-this", credentials=fleet.world.block)


def test_the_ui_form_has_a_typed_described_field_per_parameter() -> None:
    """Every fleet parameter has a type and a description in the flow's parameter schema."""
    schema = migration_fleet.parameters.model_dump()
    for name, field in schema["properties"].items():
        assert field.get("description"), name
        assert field.get("type") or field.get("anyOf") or field.get("allOf"), name
    assert schema["properties"]["approval"]["enum"] == ["none", "per_wave", "per_task"]
    assert not schema.get("required")


def test_failure_names_only_the_tasks_not_cut_over() -> None:
    """The run's failure lists at most 20 tasks, then says how many more."""
    from flows.fleet import _failure
    from flows.fleet_board import FleetBoard, Stage

    board = FleetBoard([f"t{n}" for n in range(25)])
    board.move("t0", Stage.CUT_OVER)
    for n in range(1, 25):
        board.move(f"t{n}", Stage.FAILED, "MigrationFailed: x")
    failure = _failure(board)
    assert isinstance(failure, CutoverFailed)
    assert "did not cut over 24 of 25" in str(failure)
    assert "and 4 more" in str(failure)
    assert "t0 " not in str(failure)
