"""The polling engine, without Prefect, watching one task: every status path, deadlines,
streaks, progress, backoff and settings. Many tasks at once: `test_polling_fanout.py`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

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
from flows.clock import FakeTime, use_time
from flows.polling import WatchObserver, WatchSettings, watch_task
from tests.polling_support import client_answered_by, client_for
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


def test_a_deleted_task_whose_detail_reads_success_is_not_a_success(fake_time: FakeTime) -> None:
    """DCS answers SUCCESS for a deleted task's detail a while: the list decides, not found."""
    dcs = ScriptedDcs({TASK: ["MIGRATING", "SUCCESS"]}, progress=[50.0], unlisted={TASK})
    observer = Recorder()

    async def run() -> MigrationTask:
        async with client_for(dcs, fake_time) as client:
            return await watch_task(client, TASK, WatchSettings(), observer)

    with pytest.raises(MigrationTaskNotFound, match="deleted: its detail still reads SUCCESS"):
        asyncio.run(run())
    assert dcs.requests["list"] == 1
    assert "SUCCESS" not in str(observer.changes)  # no success was ever reported


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
    bodies = iter([b"<html>gateway</html>"])  # then DCS answers every request

    def handler(request: httpx.Request) -> httpx.Response:
        body = next(bodies, None)
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


def test_status_enum_of_the_result(fake_time: FakeTime) -> None:
    """The returned task carries the parsed enum as well as the raw spelling."""
    task, _ = run_watch(["INCRMIGEATING"], fake_time)
    assert task.status is MigrationStatus.INCRMIGRATING
