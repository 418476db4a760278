"""The polling engine, without Prefect, watching many tasks at once: outcomes per task,
list pages, first looks, concurrency and rate limits, rounds, deadlines, listing faults."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from blocks.errors import (
    DcsValidationError,
    MigrationFailed,
    MigrationTaskNotFound,
    MigrationTimeout,
    MigrationUnreachable,
)
from blocks.models import MigrationStatus, MigrationTask
from flows.clock import FakeTime, use_time
from flows.polling import WatchObserver, WatchSettings, watch_tasks
from tests.polling_support import client_answered_by, client_for
from tests.scripted import ScriptedDcs, Step


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """Time that moves only when the engine sleeps."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


def run_many(dcs: ScriptedDcs, fake: FakeTime, ids: list[str], **options: Any) -> dict[str, Any]:
    settings = WatchSettings(
        poll_interval_seconds=5, timeout_seconds=options.pop("timeout_seconds", 3600)
    )

    async def run() -> dict[str, Any]:
        async with client_for(dcs, fake) as client:
            return await watch_tasks(client, ids, settings, **options)

    return asyncio.run(run())


def test_fan_out_returns_an_outcome_per_task(fake_time: FakeTime) -> None:
    """Success, failure, deletion and readiness each end their own watch only."""
    dcs = ScriptedDcs(
        {
            "ok": ["MIGRATING", "MIGRATING", "SUCCESS"],
            "bad": ["MIGRATING", "FAILED"],
            "ready": ["FULLMIGRATING", "FULLMIGRATING", "FULLMIGRATING", "INCRMIGEATING"],
        }
    )
    outcomes = run_many(dcs, fake_time, ["ok", "bad", "ready", "gone"])
    assert outcomes["ok"].ok
    assert outcomes["ok"].task.succeeded
    assert isinstance(outcomes["bad"].error, MigrationFailed)
    assert outcomes["ready"].ok
    assert outcomes["ready"].task.ready_for_cutover
    assert isinstance(outcomes["gone"].error, MigrationTaskNotFound)


def test_fan_out_believes_a_success_only_when_listed(fake_time: FakeTime) -> None:
    """A task gone from the list whose detail reads SUCCESS ends not found; listed ones succeed."""
    dcs = ScriptedDcs(
        {"ok": ["MIGRATING", "SUCCESS"], "deleted": ["MIGRATING", "SUCCESS"]},
        unlisted={"deleted"},
    )
    outcomes = run_many(dcs, fake_time, ["ok", "deleted"])
    assert outcomes["ok"].ok
    assert isinstance(outcomes["deleted"].error, MigrationTaskNotFound)
    assert "deleted" in str(outcomes["deleted"].error)


def test_fan_out_reads_statuses_a_page_at_a_time(fake_time: FakeTime) -> None:
    """Many tasks: one list request per page per round, details only when a status changes."""
    rng = random.Random(5)
    scripts: dict[str, list[Step]] = {
        f"t{i:03d}": ["MIGRATING"] * rng.randint(1, 6) + ["SUCCESS"] for i in range(250)
    }
    dcs = ScriptedDcs(scripts, advance_on_list=True)
    rounds = run_many(dcs, fake_time, list(scripts), max_requests_per_second=1000, list_threshold=1)
    assert all(outcome.ok for outcome in rounds.values())
    # First looks come from the list; one detail read per change it revealed (to SUCCESS).
    assert dcs.requests["show"] == len(scripts)
    assert dcs.requests["list"] <= 3 * (max(len(s) for s in scripts.values()) + 1)


def test_fan_out_reads_what_a_page_shows_before_the_next_page(fake_time: FakeTime) -> None:
    """A change on the first page is read while the later pages are still to come: the
    second page is answered only once that read has been (it would wait in vain if the
    watch read nothing until the whole list was in)."""
    dcs = ScriptedDcs(
        {"early": ["MIGRATING", "SUCCESS"], "late": ["MIGRATING", "MIGRATING", "SUCCESS"]},
        advance_on_list=True,
    )
    early_read = asyncio.Event()
    order: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.query.decode()
        listing = request.url.path.endswith("/migration-tasks")
        if listing and "offset=1" in query and dcs.requests["list"] > 2:
            await asyncio.wait_for(early_read.wait(), timeout=10)
        status, content = dcs.answer(request.method, request.url.path, query)
        order.append(f"list {query}" if listing else request.url.path.rsplit("/", 1)[-1])
        if request.url.path.endswith("/early"):
            early_read.set()
        return httpx.Response(status, content=content)

    async def run() -> dict[str, Any]:
        async with client_answered_by(handler) as client:
            return await watch_tasks(
                client,
                ["early", "late"],
                WatchSettings(poll_interval_seconds=5),
                page_size=1,
                list_threshold=1,
            )

    outcomes = asyncio.run(run())
    assert all(outcome.ok for outcome in outcomes.values())
    # Round 2: page 1 shows "early" finished; its read comes before page 2 is answered.
    second_round = order[order.index("early") - 1 :]
    assert second_round[:3] == ["list offset=0&limit=1", "early", "list offset=1&limit=1"]
    assert dcs.requests["show"] == 2


def test_fan_out_bounds_concurrency(fake_time: FakeTime) -> None:
    """Never more requests in flight than max_concurrency."""
    in_flight = 0
    peak = 0
    dcs = ScriptedDcs({f"t{i}": ["MIGRATING", "SUCCESS"] for i in range(12)})

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        in_flight -= 1
        status, content = dcs.answer(request.method, request.url.path, request.url.query.decode())
        return httpx.Response(status, content=content)

    async def run() -> dict[str, Any]:
        async with client_answered_by(handler) as client:
            return await watch_tasks(
                client,
                list(dcs.scripts),
                WatchSettings(poll_interval_seconds=1),
                max_concurrency=3,
                list_threshold=100,
            )

    outcomes = asyncio.run(run())
    assert all(outcome.ok for outcome in outcomes.values())
    assert peak == 3


def test_fan_out_caps_requests_per_second(fake_time: FakeTime) -> None:
    """Twenty reads at 10 per second take at least 1.9 s of (fake) time."""
    dcs = ScriptedDcs({f"t{i}": ["SUCCESS"] for i in range(20)})
    run_many(dcs, fake_time, list(dcs.scripts), max_requests_per_second=10, list_threshold=100)
    assert dcs.requests["show"] == 20
    assert fake_time.monotonic() >= 1.9


def test_fan_out_first_look_comes_from_the_list(fake_time: FakeTime) -> None:
    """A task in progress costs no detail read until it changes; one listed finished does."""
    dcs = ScriptedDcs({"run": ["MIGRATING"], "end": ["SUCCESS"]}, advance_on_list=True)
    firsts: dict[str, MigrationTask] = {}

    class Firsts(WatchObserver):
        async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
            if previous is None and task.task_id:
                firsts[task.task_id] = task

    async def run() -> dict[str, Any]:
        async with client_for(dcs, fake_time) as client:
            settings = WatchSettings(poll_interval_seconds=5, timeout_seconds=12)
            return await watch_tasks(client, ["run", "end"], settings, Firsts(), list_threshold=1)

    outcomes = asyncio.run(run())
    assert outcomes["end"].ok
    assert isinstance(outcomes["run"].error, MigrationTimeout)
    # Lists at 0, 5 and 10 s, and a last look at the 12 s deadline.
    assert (dcs.requests["show:run"], dcs.requests["show:end"], dcs.requests["list"]) == (0, 1, 4)
    assert firsts["run"].task_name == "migration-run"
    assert firsts["run"].status is MigrationStatus.MIGRATING
    # The finished one was read in full: its details carry the instances.
    assert firsts["end"].target_instance is not None
    assert firsts["end"].target_instance.id == "dcs-1"


def test_fan_out_rounds_start_one_interval_apart(fake_time: FakeTime) -> None:
    """Rounds whose reads take 2 s still list again 5 s after they started, not 7 s."""
    dcs = ScriptedDcs(
        {f"t{i:02d}": ["MIGRATING", "FULLMIGRATING", "MIGRATING", "SUCCESS"] for i in range(20)},
        advance_on_list=True,
    )
    listed_at: list[float] = []
    answer = dcs.answer

    def timed(method: str, path: str, query: str = "") -> tuple[int, bytes]:
        if path.endswith("/migration-tasks"):
            listed_at.append(fake_time.monotonic())
        return answer(method, path, query)

    dcs.answer = timed  # type: ignore[method-assign]
    outcomes = run_many(
        dcs, fake_time, list(dcs.scripts), max_requests_per_second=10, list_threshold=1
    )
    assert all(outcome.ok for outcome in outcomes.values())
    # Round 1 is first looks from the list; rounds 2 and 3 each read the 20 changed tasks
    # at 10 per second (2 s); round 4 reads their success.
    assert dcs.requests["show"] == 60
    assert listed_at == pytest.approx([0.0, 5.0, 10.0, 15.0])


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param({"backup_files": "none"}, id="field-that-is-no-valid-task"),
        pytest.param({"status": None}, id="no-status"),
    ],
)
def test_fan_out_reads_details_when_the_list_item_is_not_enough(
    fake_time: FakeTime, odd: dict[str, Any]
) -> None:
    """A list item that cannot stand for the task is no first look: the details are read."""
    dcs = ScriptedDcs({f"t{i}": ["MIGRATING", "SUCCESS"] for i in range(3)})
    answer = dcs.answer

    def odd_items(method: str, path: str, query: str = "") -> tuple[int, bytes]:
        status, body = answer(method, path, query)
        if path.endswith("/migration-tasks"):
            page = json.loads(body)
            page["migration_tasks"] = [{**item, **odd} for item in page["migration_tasks"]]
            body = json.dumps(page).encode()
        return status, body

    dcs.answer = odd_items  # type: ignore[method-assign]
    outcomes = run_many(dcs, fake_time, list(dcs.scripts), list_threshold=1, timeout_seconds=60)
    assert all(outcome.ok and outcome.task.succeeded for outcome in outcomes.values())
    assert dcs.requests["show"] == 6  # a first look and the success, each read in full


def test_fan_out_reads_finished_tasks_first_and_reports_each_as_it_arrives(
    fake_time: FakeTime,
) -> None:
    """The list shows one task finished and one merely changed: the finished one is read
    first, and the observer hears of it while the other read is still in flight."""
    dcs = ScriptedDcs(
        {
            "moved": ["MIGRATING", "FULLMIGRATING", "FULLMIGRATING", "SUCCESS"],
            "done": ["MIGRATING", "SUCCESS"],
        },
        advance_on_list=True,
    )
    shows: list[str] = []
    released: list[bool] = []

    async def run() -> dict[str, Any]:
        done_seen = asyncio.Event()

        class Observer(WatchObserver):
            async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
                if task.task_id == "done" and task.succeeded:
                    done_seen.set()

        async def handler(request: httpx.Request) -> httpx.Response:
            path = request.url.path
            if "/migration-task/" in path:
                task_id = path.rsplit("/", 1)[-1]
                shows.append(task_id)
                if task_id == "moved" and shows.count("moved") == 1:
                    # Held until the observer has heard of "done" (or 2 s: then it failed).
                    try:
                        await asyncio.wait_for(done_seen.wait(), timeout=2)
                        released.append(True)
                    except asyncio.TimeoutError:  # not TimeoutError before 3.11
                        released.append(False)
            status, content = dcs.answer(request.method, path, request.url.query.decode())
            return httpx.Response(status, content=content)

        async with client_answered_by(handler) as client:
            return await watch_tasks(
                client,
                ["moved", "done"],
                WatchSettings(poll_interval_seconds=5),
                Observer(),
                max_concurrency=2,
                list_threshold=1,
            )

    outcomes = asyncio.run(run())
    assert outcomes["done"].ok
    assert outcomes["moved"].ok
    # First looks come from the list; then the finished task is read before the changed one.
    assert shows[:2] == ["done", "moved"]
    assert released == [True]


def test_fan_out_times_out_only_what_is_pending(fake_time: FakeTime) -> None:
    """At the deadline, finished tasks keep their success; the rest get MigrationTimeout."""
    dcs = ScriptedDcs({"fast": ["SUCCESS"], "slow": ["MIGRATING"]})
    outcomes = run_many(dcs, fake_time, ["fast", "slow"], timeout_seconds=30)
    assert outcomes["fast"].ok
    assert isinstance(outcomes["slow"].error, MigrationTimeout)
    assert outcomes["slow"].error.last_status == "MIGRATING"


def test_fan_out_refuses_an_empty_list(fake_time: FakeTime) -> None:
    """No task ids is a mistake worth saying so."""
    with pytest.raises(DcsValidationError, match="task_ids is empty"):
        run_many(ScriptedDcs({}), fake_time, [])


def test_fan_out_reads_each_task_when_listing_is_forbidden(fake_time: FakeTime) -> None:
    """Credentials that may not list tasks (403) fall back to one read per task, not a failure."""
    dcs = ScriptedDcs({f"t{i}": ["MIGRATING", "SUCCESS"] for i in range(6)})
    answer = dcs.answer

    def no_listing(method: str, path: str, query: str = "") -> tuple[int, bytes]:
        if path.endswith("/migration-tasks"):
            dcs.requests["list"] += 1
            return 403, b'{"error_code": "DCS.2003", "error_msg": "no permission to list"}'
        return answer(method, path, query)

    dcs.answer = no_listing  # type: ignore[method-assign]
    outcomes = run_many(dcs, fake_time, list(dcs.scripts))
    assert all(outcome.ok for outcome in outcomes.values())
    assert dcs.requests["list"] == 1  # tried once, then never again
    assert dcs.requests["show"] == 12


def test_fan_out_names_the_list_when_it_stays_unreadable(fake_time: FakeTime) -> None:
    """A list that keeps failing ends every pending watch with a message about the list."""
    dcs = ScriptedDcs({f"t{i}": ["MIGRATING"] for i in range(6)})
    answer = dcs.answer

    def flaky_listing(method: str, path: str, query: str = "") -> tuple[int, bytes]:
        if path.endswith("/migration-tasks"):
            return 503, b"<html>503</html>"
        return answer(method, path, query)

    dcs.answer = flaky_listing  # type: ignore[method-assign]

    async def run() -> dict[str, Any]:
        async with client_for(dcs, fake_time) as client:
            settings = WatchSettings(poll_interval_seconds=5, max_consecutive_errors=3)
            return await watch_tasks(client, list(dcs.scripts), settings)

    outcomes = asyncio.run(run())
    errors = [outcome.error for outcome in outcomes.values()]
    assert all(isinstance(error, MigrationUnreachable) for error in errors)
    assert "the list of migration tasks could not be read for 3 rounds" in str(errors[0])


class _Ends(WatchObserver):
    """Keeps each outcome as the engine hands it over, with the time it came."""

    def __init__(self, fake: FakeTime) -> None:
        self.fake = fake
        self.ended_at: dict[str, float] = {}
        self.errors: dict[str, str | None] = {}

    async def ended(self, outcome: Any) -> None:
        self.ended_at[outcome.task_id] = self.fake.monotonic()
        self.errors[outcome.task_id] = type(outcome.error).__name__ if outcome.error else None


@pytest.mark.parametrize("many", [pytest.param(False, id="details"), pytest.param(True, id="list")])
def test_each_outcome_is_handed_over_as_soon_as_its_watch_ends(
    fake_time: FakeTime, many: bool
) -> None:
    """`ended` hears a ready task at once, while a slower one is still watched, and hears all."""
    scripts: dict[str, list[Step]] = {
        "fast": ["INCRMIGEATING"],
        "slow": ["MIGRATING"] * 6 + ["INCRMIGEATING"],
        "bad": ["MIGRATING", "FAILED"],
    }
    if many:  # five or more pending: the engine reads statuses from the list
        scripts |= {f"more-{n}": ["MIGRATING"] * 6 + ["SUCCESS"] for n in range(3)}
    observer = _Ends(fake_time)
    dcs = ScriptedDcs(scripts, advance_on_list=many)  # time moves with each round
    outcomes = run_many(dcs, fake_time, list(scripts), observer=observer)
    assert set(observer.ended_at) == set(outcomes)
    assert observer.ended_at["fast"] < 5.0  # in the first round (rate limits take a moment)
    assert observer.ended_at["slow"] > observer.ended_at["fast"]
    assert observer.errors["bad"] == "MigrationFailed"


def test_timed_out_tasks_are_handed_over_too(fake_time: FakeTime) -> None:
    """At the deadline every task still pending reaches `ended`, with its MigrationTimeout."""
    observer = _Ends(fake_time)
    run_many(
        ScriptedDcs({"stuck": ["MIGRATING"]}),
        fake_time,
        ["stuck"],
        observer=observer,
        timeout_seconds=20,
    )
    assert observer.errors == {"stuck": "MigrationTimeout"}
