"""The polling engine, without Prefect: every status path, deadlines, streaks, fan-out."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import TokenAuth
from blocks.client import AsyncDcsClient
from blocks.errors import (
    DcsAuthError,
    DcsTransportError,
    DcsValidationError,
    MigrationFailed,
    MigrationTaskNotFound,
    MigrationTimeout,
    MigrationUnreachable,
)
from blocks.models import MigrationStatus, MigrationTask, MigrationTaskStats
from blocks.retry import RetryPolicy
from flows.clock import FakeTime, use_time
from flows.polling import WatchObserver, WatchSettings, watch_task, watch_tasks
from tests.scripted import PASSWORD, ScriptedDcs, Step

TASK = "a276c1ffa0a54c2597fc824b917db317"


class Recorder(WatchObserver):
    """Remembers every hook call, to prove what is reported and what is not."""

    def __init__(self) -> None:
        self.changes: list[tuple[str | None, str | None]] = []
        self.progress_seen: list[float | None] = []
        self.errors: list[int] = []

    async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
        self.changes.append((previous.raw_status if previous else None, task.raw_status))

    async def progress(self, task: MigrationTask, stats: MigrationTaskStats) -> None:
        self.progress_seen.append(stats.full_migration_progress)

    async def transient_error(self, task_id: str, error: Any, streak: int) -> None:
        self.errors.append(streak)


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """Time that moves only when the engine sleeps."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


def client_for(dcs: ScriptedDcs, fake: FakeTime) -> AsyncDcsClient:
    # One attempt per read: the engine's own streak handling is what is under test.
    return AsyncDcsClient(
        "https://dcs.example.test",
        "project-1",
        TokenAuth(SecretStr("t")),
        transport=dcs.transport(),
        retry=RetryPolicy(max_attempts=1),
        sleep=fake.sleep,
        clock=fake.monotonic,
    )


def client_answered_by(handler: Any) -> AsyncDcsClient:
    """A one-attempt client whose every request `handler` answers (sync or async)."""
    return AsyncDcsClient(
        "https://dcs.test",
        "p",
        TokenAuth(SecretStr("t")),
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=1),
    )


def run_watch(
    steps: list[Step], fake: FakeTime, observer: WatchObserver | None = None, **settings: Any
) -> tuple[MigrationTask, ScriptedDcs]:
    dcs = ScriptedDcs({TASK: steps}, progress=[10.0, 10.4, 55.0, 100.0])

    async def run() -> MigrationTask:
        async with client_for(dcs, fake) as client:
            return await watch_task(client, TASK, WatchSettings(**settings), observer)

    return asyncio.run(run()), dcs


@pytest.mark.parametrize(
    ("steps", "until", "final", "reads"),
    [
        pytest.param(
            ["RUNNING", "FULLMIGRATING", "MIGRATING", "SUCCESS"], "auto", "SUCCESS", 4, id="full"
        ),
        pytest.param(
            ["RUNNING", "FULLMIGRATING", "INCRMIGEATING"],
            "auto",
            "INCRMIGEATING",
            3,
            id="incremental-live-spelling",
        ),
        pytest.param(
            ["RUNNING", "INCRMIGRATING"], "auto", "INCRMIGRATING", 2, id="incremental-doc-spelling"
        ),
        pytest.param(
            ["FULLMIGRATING", "INCRMIGEATING", "INCRMIGEATING", "SUCCESS"],
            "success",
            "SUCCESS",
            4,
            id="success-waits-through-incremental",
        ),
        pytest.param(
            ["MIGRATING", "INCRMIGEATING"],
            "ready_for_cutover",
            "INCRMIGEATING",
            2,
            id="ready-for-cutover",
        ),
        pytest.param(
            ["MIGRATING", "MIGRATION_SUCCESS"],
            "ready_for_cutover",
            "MIGRATION_SUCCESS",
            2,
            id="ready-for-cutover-accepts-success",
        ),
        pytest.param(["PAUSED", "SUCCESS"], "auto", "SUCCESS", 2, id="unknown-status-waits"),
        pytest.param(["CREATING", "TERMINATING", "SUCCESS"], "auto", "SUCCESS", 3, id="others"),
    ],
)
def test_each_path_ends_where_until_says(
    fake_time: FakeTime, steps: list[Step], until: str, final: str, reads: int
) -> None:
    """The watch returns at the first status `until` accepts, after exactly that many reads."""
    task, dcs = run_watch(steps, fake_time, until=until, poll_interval_seconds=15)
    assert task.raw_status == final
    assert dcs.requests["show"] == reads
    assert fake_time.sleeps == [15] * (reads - 1)


@pytest.mark.parametrize(
    "status", ["FAILED", "MIGRATION_FAILED", "TERMINATED", "RELEASED", "ERROR", "DELETED"]
)
def test_each_failure_status_raises_migration_failed_with_a_masked_task(
    fake_time: FakeTime, status: str
) -> None:
    """A failure status ends the watch with MigrationFailed carrying the masked last task."""
    with pytest.raises(MigrationFailed, match=status) as caught:
        run_watch(["MIGRATING", status], fake_time)
    task = caught.value.task
    assert task.raw_status == status
    assert task.source_instance is not None
    assert task.source_instance.password is not None
    assert task.source_instance.password.get_secret_value() != PASSWORD
    assert PASSWORD not in str(caught.value)


def test_a_deleted_task_raises_not_found_at_once(fake_time: FakeTime) -> None:
    """DCS.4133 is not retried: MigrationTaskNotFound after one read and no sleep."""
    with pytest.raises(MigrationTaskNotFound):
        run_watch([404], fake_time)
    assert fake_time.sleeps == []


def test_a_task_deleted_mid_wait_raises_not_found(fake_time: FakeTime) -> None:
    """A task that disappears while watched ends the watch with MigrationTaskNotFound."""
    with pytest.raises(MigrationTaskNotFound):
        run_watch(["MIGRATING", "MIGRATING", 404], fake_time)
    assert len(fake_time.sleeps) == 2


def test_refused_credentials_fail_at_once(fake_time: FakeTime) -> None:
    """A 401 is permanent for a watch: no streak, no waiting."""
    with pytest.raises(DcsAuthError):
        run_watch(["MIGRATING", 401], fake_time)
    assert len(fake_time.sleeps) == 1


def test_an_unsendable_request_fails_at_once(fake_time: FakeTime) -> None:
    """A header httpx refuses to send is permanent for a watch: no streak, no waiting."""
    unsendable = httpx.LocalProtocolError("Illegal header value b'token\\n'")
    with pytest.raises(DcsTransportError, match="not valid HTTP"):
        run_watch(["MIGRATING", unsendable], fake_time)
    assert len(fake_time.sleeps) == 1


def test_the_deadline_is_on_the_monotonic_clock(fake_time: FakeTime) -> None:
    """At the deadline the watch reads once more, then raises MigrationTimeout with the status."""
    with pytest.raises(MigrationTimeout) as caught:
        run_watch(["MIGRATING"], fake_time, poll_interval_seconds=15, timeout_seconds=50)
    assert caught.value.last_status == "MIGRATING"
    assert fake_time.sleeps == [15, 15, 15, 5]  # the last wait is cut to the deadline
    assert fake_time.monotonic() == 50


def test_slow_reads_count_against_the_deadline(fake_time: FakeTime) -> None:
    """Time spent inside reads counts: the deadline is not a sum of sleeps."""

    class SlowObserver(WatchObserver):
        async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
            fake_time.elapsed += 40  # a read (or a hook) that took 40 s

    with pytest.raises(MigrationTimeout):
        run_watch(["MIGRATING", "RUNNING"], fake_time, SlowObserver(), timeout_seconds=60)
    assert sum(fake_time.sleeps) < 60


def test_a_success_right_at_the_deadline_is_seen(fake_time: FakeTime) -> None:
    """The read at the deadline counts: a task that succeeds then is a success, not a timeout."""
    task, _ = run_watch(
        ["MIGRATING", "MIGRATING", "SUCCESS"],
        fake_time,
        poll_interval_seconds=10,
        timeout_seconds=20,
    )
    assert task.succeeded


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(503, id="503"),
        pytest.param(500, id="500"),
        pytest.param(429, id="429"),
        pytest.param(httpx.ConnectError("refused"), id="connect"),
        pytest.param(httpx.ReadTimeout("slow"), id="timeout"),
    ],
)
def test_transient_errors_never_fail_a_migration_that_succeeds(
    fake_time: FakeTime, failure: Step
) -> None:
    """Errors between reads are waited out; the success after them is returned."""
    observer = Recorder()
    task, _ = run_watch(["MIGRATING", failure, failure, failure, "SUCCESS"], fake_time, observer)
    assert task.succeeded
    assert observer.errors == [1, 2, 3]
    assert observer.changes == [(None, "MIGRATING"), ("MIGRATING", "SUCCESS")]


def test_a_long_streak_fails_clearly(fake_time: FakeTime) -> None:
    """More failed reads in a row than the bound raise MigrationUnreachable naming the count."""
    with pytest.raises(MigrationUnreachable, match="5 polls in a row") as caught:
        run_watch(["MIGRATING", 503], fake_time, max_consecutive_errors=5)
    assert caught.value.last_status == "MIGRATING"
    assert caught.value.consecutive_errors == 5


def test_a_streak_resets_after_a_good_read(fake_time: FakeTime) -> None:
    """Errors separated by good reads never add up to a streak."""
    steps: list[Step] = [503, 503, "MIGRATING"] * 5 + ["SUCCESS"]
    task, _ = run_watch(steps, fake_time, max_consecutive_errors=3)
    assert task.succeeded


def test_a_gateway_page_in_a_200_is_waited_out(fake_time: FakeTime) -> None:
    """A 200 with a garbled body counts as transient for a watch, not as the end."""
    dcs = ScriptedDcs({TASK: ["RUNNING", "SUCCESS"]})
    bodies = iter([b"<html>gateway</html>", None, None])

    def handler(request: httpx.Request) -> httpx.Response:
        body = next(bodies)
        if body is not None:
            return httpx.Response(200, content=body)
        return dcs.transport().handle_request(request)

    async def run() -> MigrationTask:
        async with client_answered_by(handler) as client:
            return await watch_task(client, TASK, WatchSettings())

    assert asyncio.run(run()).succeeded


def test_observer_hears_changes_only(fake_time: FakeTime) -> None:
    """Ten identical reads make one change, not ten."""
    observer = Recorder()
    run_watch(["RUNNING"] * 10 + ["SUCCESS"], fake_time, observer)
    assert observer.changes == [(None, "RUNNING"), ("RUNNING", "SUCCESS")]


def test_progress_is_read_during_full_migration_only(fake_time: FakeTime) -> None:
    """Stats are asked for while MIGRATING/FULLMIGRATING, never in other statuses."""
    observer = Recorder()
    steps: list[Step] = ["RUNNING", "FULLMIGRATING", "FULLMIGRATING", "SUCCESS"]
    _, dcs = run_watch(steps, fake_time, observer, progress_interval_seconds=0)
    assert dcs.requests["stats"] == 2
    assert observer.progress_seen == [10.0, 10.4]


def test_progress_reads_are_spaced_out(fake_time: FakeTime) -> None:
    """Stats are read at most once per progress_interval_seconds, not on every poll."""
    steps: list[Step] = ["FULLMIGRATING"] * 9 + ["SUCCESS"]
    _, dcs = run_watch(steps, fake_time, poll_interval_seconds=15, progress_interval_seconds=60)
    assert dcs.requests["stats"] == 3  # at 0 s, 60 s and 120 s of nine polls over 120 s


def test_backoff_grows_while_nothing_changes_and_resets_on_change(fake_time: FakeTime) -> None:
    """With a cap, waits grow by the factor, stay under the cap, and drop back on a change."""
    steps: list[Step] = ["MIGRATING"] * 6 + ["INCRMIGEATING"] * 2 + ["SUCCESS"]
    run_watch(
        steps,
        fake_time,
        until="success",
        poll_interval_seconds=1,
        max_poll_interval_seconds=5,
        backoff_factor=2,
    )
    assert fake_time.sleeps == [1, 2, 4, 5, 5, 5, 1, 2]


def test_sub_second_intervals_work(fake_time: FakeTime) -> None:
    """Rehearsals poll every few milliseconds."""
    task, _ = run_watch(["MIGRATING", "SUCCESS"], fake_time, poll_interval_seconds=0.005)
    assert task.succeeded
    assert fake_time.sleeps == [0.005]


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        pytest.param({"until": "done"}, "until must be one of", id="until"),
        pytest.param({"poll_interval_seconds": 0}, "poll_interval_seconds", id="interval"),
        pytest.param({"timeout_seconds": -1}, "timeout_seconds", id="timeout"),
        pytest.param(
            {"poll_interval_seconds": 10, "max_poll_interval_seconds": 5}, "at least", id="cap"
        ),
        pytest.param({"backoff_factor": 0.5}, "backoff_factor", id="factor"),
        pytest.param({"max_consecutive_errors": 0}, "max_consecutive_errors", id="errors"),
    ],
)
def test_bad_settings_name_the_value(settings: dict[str, Any], fragment: str) -> None:
    """Nonsense settings are refused up front, naming the value."""
    with pytest.raises(DcsValidationError, match=fragment):
        WatchSettings(**settings)


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


def test_status_enum_of_the_result(fake_time: FakeTime) -> None:
    """The returned task carries the parsed enum as well as the raw spelling."""
    task, _ = run_watch(["INCRMIGEATING"], fake_time)
    assert task.status is MigrationStatus.INCRMIGRATING


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
