"""The DCS API budget without a Prefect server: names, values, the local pace, the CLI."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta, timezone

import pytest
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse

from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError
from flows.budget import ApiBudget, Budget, api_budget, limit_name
from flows.budget_server import wait_for_next_slot
from flows.cli import EXIT_ERROR, main
from flows.clock import FakeTime, use_time

PROJECT_ID = "0605767f8d00d5a52f4bc01f1b2d5ac5"


@pytest.mark.parametrize(
    ("project_id", "name"),
    [
        pytest.param(PROJECT_ID, f"dcs-api-{PROJECT_ID}", id="hex"),
        pytest.param("eu-west_0.x", "dcs-api-eu-west_0.x", id="punctuation"),
    ],
)
def test_one_limit_per_project(project_id: str, name: str) -> None:
    """Each project has its own limit, named after it."""
    assert limit_name(project_id) == name


@pytest.mark.parametrize(
    "project_id",
    [
        pytest.param("", id="empty"),
        pytest.param("a/b", id="slash"),
        pytest.param("a&b", id="ampersand"),
        pytest.param("x" * 129, id="too-long"),
        pytest.param(None, id="none"),
    ],
)
def test_a_project_id_prefect_cannot_name_is_refused(project_id: object) -> None:
    """A project id that cannot be part of a Prefect limit name is named in a clear error."""
    with pytest.raises(DcsValidationError, match="cannot name an API budget") as caught:
        limit_name(project_id)  # type: ignore[arg-type]
    assert repr(project_id)[:20] in str(caught.value)


@pytest.mark.parametrize(
    ("rate", "burst", "problem"),
    [
        pytest.param(0, 5, "requests_per_second must be a number above 0, got 0", id="zero-rate"),
        pytest.param(-1.5, 5, "above 0, got -1.5", id="negative-rate"),
        pytest.param(math.nan, 5, "above 0, got nan", id="nan-rate"),
        pytest.param(math.inf, 5, "must be finite, got inf", id="infinite-rate"),
        pytest.param("5", 5, "above 0, got '5'", id="text-rate"),
        pytest.param(5, 0, "burst must be a whole number, 1 or more, got 0", id="zero-burst"),
        pytest.param(5, 2.5, "1 or more, got 2.5", id="fractional-burst"),
        pytest.param(5, True, "1 or more, got True", id="bool-burst"),
    ],
)
def test_bad_budget_values_are_refused(rate: object, burst: object, problem: str) -> None:
    """A rate or burst that cannot make a rate limit is refused, naming the field and value."""
    with pytest.raises(DcsValidationError, match="requests/s in bursts of") as caught:
        Budget(requests_per_second=rate, burst=burst)  # type: ignore[arg-type]
    assert problem in str(caught.value)


def test_a_budget_knows_its_busiest_second() -> None:
    """The most requests in one second is the burst plus one second of refill."""
    assert Budget(5, 5).most_in_one_second == 10
    assert Budget(2.5, 3).most_in_one_second == 5


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        pytest.param(["--per-second", "0"], "requests_per_second must be", id="zero-rate"),
        pytest.param(["--per-second", "nan"], "requests_per_second must be", id="nan-rate"),
        pytest.param(["--burst", "0"], "burst must be a whole number", id="zero-burst"),
    ],
)
def test_the_command_refuses_bad_values_before_calling_prefect(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dcs-migrate api-budget` with a bad value exits 3 with the reason, creating nothing."""
    assert main(["api-budget", PROJECT_ID, *argv]) == EXIT_ERROR
    assert problem in capsys.readouterr().err


def test_the_command_refuses_a_bad_project_id(capsys: pytest.CaptureFixture[str]) -> None:
    """`dcs-migrate api-budget` names a project id that cannot name a limit."""
    assert main(["api-budget", "a/b"]) == EXIT_ERROR
    assert "cannot name an API budget" in capsys.readouterr().err


def test_outside_prefect_the_pace_is_local_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without Prefect: a burst at once, then the rate; one warning says how to share."""
    budget = ApiBudget("p1", Budget(4, 2), shared=False)
    fake = FakeTime()

    let_through: list[float] = []

    async def five_requests() -> None:
        for _ in range(5):
            await budget.apace()
            let_through.append(fake.monotonic())

    with use_time(fake), caplog.at_level(logging.WARNING, logger="flows.budget"):
        asyncio.run(five_requests())
    assert let_through == pytest.approx([0.0, 0.0, 0.25, 0.5, 0.75])
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1
    assert "dcs-migrate api-budget p1 --per-second 4 --burst 2" in warnings[0]
    assert "prefect gcl create dcs-api-p1 --limit 2 --slot-decay-per-second 4" in warnings[0]


def test_the_sync_pace_spaces_requests_too() -> None:
    """A sync client's pace sleeps (on its injected clock) as the async one does."""
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    budget = ApiBudget("p2", Budget(2, 1), shared=False, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(3):
        budget.pace()
    assert slept == pytest.approx([0.5, 1.0])


def test_block_clients_are_paced_by_their_project_budget() -> None:
    """Both clients of a `DcsCredentials` block pace by the one budget of its project."""
    block = DcsCredentials(endpoint="https://dcs.test", project_id="p3", token="t")
    budget = api_budget("p3")
    assert block.get_client()._pace == budget.pace
    assert block.get_async_client()._pace == budget.apace
    assert block.get_async_client(pace=None)._pace is None


def test_a_new_clock_starts_a_fresh_pace() -> None:
    """Spacing read on one fake clock does not make the first request on the next one wait."""
    budget = ApiBudget("p4", Budget(1, 1), shared=False)
    first, second = FakeTime(), FakeTime()
    with use_time(first):
        for _ in range(3):
            asyncio.run(budget.apace())
    with use_time(second):
        asyncio.run(budget.apace())
    assert first.sleeps == [1.0, 1.0]
    assert second.sleeps == []


def _limit(active: int, updated: datetime | None) -> GlobalConcurrencyLimitResponse:
    return GlobalConcurrencyLimitResponse(
        name="dcs-api-x", limit=5, active_slots=active, slot_decay_per_second=5.0, updated=updated
    )


_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("active", "updated", "now", "wait"),
    [
        pytest.param(4, _AT, _AT, 0.0, id="a-slot-free"),
        pytest.param(5, _AT, _AT + timedelta(seconds=0.05), 0.15, id="due-after-the-last-write"),
        pytest.param(5, None, _AT, 0.2, id="no-timestamp"),
        pytest.param(5, _AT, _AT - timedelta(seconds=3), 0.2, id="clock-behind-the-server"),
        pytest.param(5, _AT, _AT + timedelta(seconds=3), 0.05, id="clock-ahead-of-the-server"),
    ],
)
def test_a_refused_waiter_tries_again_when_the_next_slot_is_due(
    active: int, updated: datetime | None, now: datetime, wait: float
) -> None:
    """A full limit's next slot is one slot's decay after its last write, clamped for skew."""
    assert wait_for_next_slot(_limit(active, updated), now) == pytest.approx(wait)
