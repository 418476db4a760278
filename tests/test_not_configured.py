"""`RUNNING` read right: a task left pending configuration ends the watch with
`MigrationNotConfigured` after `configure_grace_seconds`, alone or in a fan-out, on fake time."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from blocks.errors import (
    DcsValidationError,
    MigrationError,
    MigrationNotConfigured,
    MigrationTimeout,
)
from blocks.models import MigrationTask
from flows.clock import FakeTime, use_time
from flows.polling import Outcome, WatchObserver, WatchSettings, watch_task, watch_tasks
from tests.polling_support import client_for
from tests.scripted import PASSWORD, ScriptedDcs, Step

TASK = "5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """Time that moves only when the engine sleeps."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


def watch(steps: list[Step], **settings: Any) -> MigrationTask:
    dcs = ScriptedDcs({TASK: steps})
    fake = FakeTime()

    async def run() -> MigrationTask:
        with use_time(fake):
            async with client_for(dcs, fake) as client:
                return await watch_task(client, TASK, WatchSettings(**settings))

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("grace", "interval", "ends_at"),
    [
        pytest.param(300.0, 15.0, 300.0, id="default-grace-15s-polls"),
        pytest.param(60.0, 25.0, 75.0, id="grace-between-two-polls"),
    ],
)
def test_a_task_left_pending_configuration_ends_the_watch(
    fake_time: FakeTime, grace: float, interval: float, ends_at: float
) -> None:
    """RUNNING for ever ends at the first read past the grace, naming the task and the fix."""
    dcs = ScriptedDcs({TASK: ["RUNNING"]})
    settings = WatchSettings(poll_interval_seconds=interval, configure_grace_seconds=grace)

    async def run() -> MigrationTask:
        async with client_for(dcs, fake_time) as client:
            return await watch_task(client, TASK, settings)

    with pytest.raises(MigrationNotConfigured) as raised:
        asyncio.run(run())
    error = raised.value
    assert isinstance(error, MigrationError)
    assert fake_time.monotonic() == ends_at
    assert (error.task_id, error.grace_seconds, error.waited_seconds) == (TASK, grace, ends_at)
    text = str(error)
    for fragment in (TASK, "pending configuration", "set_online_migration_task", "DCS console"):
        assert fragment in text
    assert error.last_task is not None
    assert PASSWORD not in repr(error.last_task.model_dump())


def test_a_task_configured_within_the_grace_is_watched_to_the_end(fake_time: FakeTime) -> None:
    """RUNNING for 285 s (20 reads at 15 s) is pending, not abandoned: the watch goes on."""
    dcs = ScriptedDcs({TASK: ["RUNNING"] * 20 + ["FULLMIGRATING", "INCRMIGEATING"]})

    async def run() -> MigrationTask:
        async with client_for(dcs, fake_time) as client:
            return await watch_task(client, TASK, WatchSettings(poll_interval_seconds=15))

    assert asyncio.run(run()).ready_for_cutover


def test_no_grace_waits_to_the_deadline(fake_time: FakeTime) -> None:
    """configure_grace_seconds=None keeps the old behaviour: a timeout, not a verdict."""
    with pytest.raises(MigrationTimeout):
        watch(["RUNNING"], timeout_seconds=900, configure_grace_seconds=None)


def test_other_in_progress_statuses_are_not_judged(fake_time: FakeTime) -> None:
    """Only RUNNING means pending configuration: a long FULLMIGRATING times out as before."""
    with pytest.raises(MigrationTimeout):
        watch(["FULLMIGRATING"], timeout_seconds=900, configure_grace_seconds=60)


@pytest.mark.parametrize(
    "list_threshold", [pytest.param(5, id="by-list"), pytest.param(99, id="by-detail")]
)
def test_fan_out_ends_only_the_unconfigured_task(fake_time: FakeTime, list_threshold: int) -> None:
    """In a fan-out, the task left pending fails at the grace; the others go on to the end."""
    pending = "pending-config"
    dcs = ScriptedDcs(
        {
            pending: ["RUNNING"],
            **{f"ok-{n}": ["FULLMIGRATING"] * 30 + ["INCRMIGEATING"] for n in range(5)},
        },
        advance_on_list=list_threshold == 5,
    )
    settings = WatchSettings(poll_interval_seconds=15, configure_grace_seconds=120)
    told: dict[str, Outcome] = {}

    class Told(WatchObserver):
        async def ended(self, outcome: Outcome) -> None:
            told[outcome.task_id] = outcome

    async def run() -> dict[str, Any]:
        async with client_for(dcs, fake_time) as client:
            return await watch_tasks(
                client, list(dcs.scripts), settings, Told(), list_threshold=list_threshold
            )

    outcomes = asyncio.run(run())
    error = outcomes[pending].error
    assert isinstance(error, MigrationNotConfigured)
    # The observer hears every end as it happens (a fleet starts the next step on it).
    assert told == outcomes
    assert pending in str(error)
    # At the grace, not once the other tasks are done and the list is no longer read.
    assert error.waited_seconds == pytest.approx(120, abs=1)  # plus the rate limit's spacing
    assert all(outcomes[f"ok-{n}"].ok for n in range(5))


@pytest.mark.parametrize("grace", [pytest.param(0, id="zero"), pytest.param(-5.0, id="negative")])
def test_a_bad_grace_names_the_field(grace: float) -> None:
    """A grace of 0 or less is refused before any request, naming the field and the way out."""
    with pytest.raises(DcsValidationError, match="configure_grace_seconds must be more than 0"):
        WatchSettings(configure_grace_seconds=grace)


def test_the_error_pickles_with_its_attributes() -> None:
    """Prefect persists a failed state by pickling: the error survives it whole."""
    error = MigrationNotConfigured(
        "pending", task_id="t", grace_seconds=300.0, waited_seconds=300.0, last_task=None
    )
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is MigrationNotConfigured
    assert vars(clone) == vars(error)
