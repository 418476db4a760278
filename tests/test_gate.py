"""The catch-up gate's engine, without Prefect: the settle window, what never passes, errors,
the deadline, its settings, and which tasks it applies to."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import TokenAuth
from blocks.client import AsyncDcsClient
from blocks.errors import (
    CutoverGateTimeout,
    DcsAuthError,
    DcsError,
    DcsValidationError,
    MigrationFailed,
    MigrationTaskNotFound,
)
from blocks.models import MigrationTask
from blocks.retry import RetryPolicy
from flows.catchup import (
    CaughtUp,
    GateObserver,
    GateSettings,
    Reading,
    check_gateable,
    skip_reason,
    wait_caught_up,
)
from flows.clock import FakeTime, use_time
from tests.fakes import CAUGHT_UP, StatsStep
from tests.fakes import FakeDcs as ScriptedDcs

TASK = "a276c1ffa0a54c2597fc824b917db317"
LAGGING = {**CAUGHT_UP, "offset": "5120"}


class Recorder(GateObserver):
    """Remembers every hook call."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.streaks: list[int] = []
        self.recovered_after: list[int] = []

    async def read(self, reading: Reading) -> None:
        self.readings.append(reading)

    async def transient_error(self, error: DcsError, streak: int) -> None:
        self.streaks.append(streak)

    async def recovered(self, streak: int) -> None:
        self.recovered_after.append(streak)


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """Time that moves only when the gate sleeps."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


def gate(
    stats: list[StatsStep], fake: FakeTime, observer: GateObserver | None = None, **settings: Any
) -> tuple[CaughtUp, ScriptedDcs]:
    """Run the gate over scripted stats; one attempt per read (the gate's own riding out)."""
    dcs = ScriptedDcs({TASK: ["INCRMIGEATING"]}, stats=stats)

    async def run() -> CaughtUp:
        async with AsyncDcsClient(
            "https://dcs.example.test",
            "project-1",
            TokenAuth(SecretStr("t")),
            transport=dcs.transport(),
            retry=RetryPolicy(max_attempts=1),
            sleep=fake.sleep,
            clock=fake.monotonic,
        ) as client:
            return await wait_caught_up(client, TASK, GateSettings(**settings), observer)

    return asyncio.run(run()), dcs


def test_passes_only_after_settle_seconds_of_passing_reads(fake_time: FakeTime) -> None:
    """Caught up from the first read: it still reads every 10 s until 60 s have passed."""
    passed, dcs = gate([CAUGHT_UP], fake_time)
    assert (passed.waited_seconds, passed.reads) == (60.0, 7)
    assert fake_time.sleeps == [10.0] * 6
    assert dcs.requests["stats"] == 7
    assert passed.reading.passing
    assert passed.reading.offset == 0


def test_a_single_failing_read_restarts_the_window(fake_time: FakeTime) -> None:
    """Passing at 0-20 s, one lagging read at 30 s: the window starts again at 40 s."""
    recorder = Recorder()
    stats: list[StatsStep] = [CAUGHT_UP] * 3 + [LAGGING] + [CAUGHT_UP]
    passed, _ = gate(stats, fake_time, recorder)
    assert passed.waited_seconds == 100.0  # 40 s + 60 s
    assert passed.reads == 11
    assert [r.passing for r in recorder.readings[:5]] == [True, True, True, False, True]


def test_reads_again_when_the_window_is_full_not_an_interval_later(fake_time: FakeTime) -> None:
    """Read every 25 s with a 60 s window: the last read comes at 60 s, not at 75 s."""
    passed, _ = gate([CAUGHT_UP], fake_time, gate_interval_seconds=25)
    assert fake_time.sleeps == [25.0, 25.0, 10.0]
    assert passed.waited_seconds == 60.0


class Bounded(Recorder):
    """Stops a gate that reads too often: a loop that sleeps 0 s would never end."""

    async def read(self, reading: Reading) -> None:
        await super().read(reading)
        assert len(self.readings) <= 20, "the gate keeps reading without waiting"


@pytest.mark.parametrize("start", [23.604808973743452, 46.30073578150215, 25.900849171547357])
def test_a_window_full_to_the_last_bit_of_a_float_passes(fake_time: FakeTime, start: float) -> None:
    """Started at an odd instant, the window's end and its length round differently: still
    it passes at 60 s, in 7 reads, instead of reading again and again 0 s apart."""
    fake_time.elapsed = start
    passed, _ = gate([CAUGHT_UP], fake_time, Bounded())
    assert passed.reads == 7
    assert passed.waited_seconds == pytest.approx(60.0)


def test_settle_0_passes_at_the_first_passing_read(fake_time: FakeTime) -> None:
    """settle_seconds=0: one passing read is enough, and nothing sleeps."""
    passed, _ = gate([LAGGING, CAUGHT_UP], fake_time, settle_seconds=0)
    assert (passed.reads, passed.waited_seconds) == (2, 10.0)


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        pytest.param({}, "the stats carry no offset", id="no-offset"),
        pytest.param({**CAUGHT_UP, "offset": None}, "no offset", id="offset-null"),
        pytest.param({**CAUGHT_UP, "offset": "n/a"}, "offset 'n/a' is not a number", id="text"),
        pytest.param({**CAUGHT_UP, "offset": "-1"}, "offset -1 is negative", id="negative"),
        pytest.param({**CAUGHT_UP, "offset": "5120"}, "offset 5120 > max_offset 0", id="lag"),
        pytest.param(
            {**CAUGHT_UP, "source_dbsize": "lots"}, "source_dbsize 'lots' is not", id="keys-text"
        ),
        pytest.param(
            {**CAUGHT_UP, "target_dbsize": "-3"}, "target_dbsize -3 is negative", id="keys-neg"
        ),
        pytest.param(
            {**CAUGHT_UP, "target_dbsize": "900"},
            "key difference 100 > max_key_difference 10",
            id="keys-apart",
        ),
        pytest.param({**CAUGHT_UP, "is_migrating": False}, "is_migrating false", id="sync-stopped"),
    ],
)
def test_missing_or_unparseable_or_lagging_stats_never_pass(
    fake_time: FakeTime, stats: dict[str, Any], reason: str
) -> None:
    """Such a read is 'not passing' with the reason said, until the deadline holds the cutover."""
    recorder = Recorder()
    with pytest.raises(CutoverGateTimeout, match=reason):
        gate([stats], fake_time, recorder, gate_timeout_seconds=300, max_key_difference=10)
    assert not any(reading.passing for reading in recorder.readings)
    assert all(reason in reading.reason for reading in recorder.readings)


@pytest.mark.parametrize(
    ("stats", "max_key_difference"),
    [
        pytest.param({"offset": "0"}, 0, id="no-key-counts"),
        pytest.param({"offset": 0, "source_dbsize": 1000}, 0, id="one-key-count"),
        pytest.param({**CAUGHT_UP, "target_dbsize": "997"}, 3, id="three-keys-expired"),
        pytest.param({**CAUGHT_UP, "target_dbsize": "1003"}, 3, id="target-has-more"),
    ],
)
def test_key_counts_are_judged_only_when_both_are_given(
    fake_time: FakeTime, stats: dict[str, Any], max_key_difference: int
) -> None:
    """Offset 0 passes when a key count is missing, or the difference is within the max."""
    passed, _ = gate([stats], fake_time, max_key_difference=max_key_difference)
    assert passed.waited_seconds == 60.0


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(503, id="gateway-503"),
        pytest.param(500, id="dcs-5000"),
        pytest.param(429, id="rate-limited"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
    ],
)
def test_transient_errors_are_ridden_out_and_restart_the_window(
    fake_time: FakeTime, failure: StatsStep
) -> None:
    """Two failed reads at 20-30 s: counted as a streak, then readable again; 40 s + 60 s."""
    recorder = Recorder()
    passed, _ = gate([CAUGHT_UP, CAUGHT_UP, failure, failure, CAUGHT_UP], fake_time, recorder)
    assert recorder.streaks == [1, 2]
    assert recorder.recovered_after == [2]
    assert passed.waited_seconds == 100.0
    failed = [reading for reading in recorder.readings if reading.error is not None]
    assert len(failed) == 2
    assert not any(reading.passing for reading in failed)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(401, DcsAuthError, id="credentials-refused"),
        pytest.param(404, MigrationTaskNotFound, id="task-gone"),
    ],
)
def test_a_permanent_error_fails_the_gate_at_once(
    fake_time: FakeTime, status: int, error: type[DcsError]
) -> None:
    """A refused credential or a deleted task is not waited out: one read, that error."""
    with pytest.raises(error):
        gate([CAUGHT_UP, status], fake_time)
    assert fake_time.elapsed == 10.0  # the first read, one interval, the failing read


def test_the_timeout_names_the_task_the_figures_and_what_to_do(fake_time: FakeTime) -> None:
    """A target that never catches up: no pass, and the error tells the whole story."""
    stats = {"offset": "5120", "source_dbsize": "100000", "target_dbsize": "99990"}
    with pytest.raises(CutoverGateTimeout) as raised:
        gate([stats], fake_time)
    held = raised.value
    assert (held.task_id, held.last_offset) == (TASK, 5120)
    assert (held.last_source_dbsize, held.last_target_dbsize) == (100000, 99990)
    assert held.waited_seconds == 1800.0
    assert fake_time.elapsed == 1800.0
    message = str(held)
    for fragment in (
        TASK,
        "offset 5120, source 100000 keys, target 99990 keys, difference 10",
        "offset 5120 > max_offset 0",
        "within gate_timeout_seconds=1800 (waited 1800 s)",
        "no read passed",
        "No cutover was made",
        "write load",
        "raise gate_timeout_seconds",
        "max_key_difference",
    ):
        assert fragment in message


def test_a_burst_during_the_window_times_out_with_the_longest_run_said(
    fake_time: FakeTime,
) -> None:
    """Caught up for 30 s, then lagging to the deadline: held, and says it held 30 s at most."""
    with pytest.raises(CutoverGateTimeout, match="lasted at most 30 s in a row"):
        gate([CAUGHT_UP] * 4 + [LAGGING], fake_time, gate_timeout_seconds=120)


def test_a_timeout_after_failed_reads_keeps_the_last_figures(fake_time: FakeTime) -> None:
    """An outage to the deadline: the figures are the last ones read, the reason the error."""
    with pytest.raises(CutoverGateTimeout) as raised:
        gate([LAGGING, 503], fake_time, gate_timeout_seconds=120)
    assert raised.value.last_offset == 5120
    assert "could not be read" in raised.value.reason


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        pytest.param({"gate_interval_seconds": 0}, "gate_interval_seconds must be", id="int-0"),
        pytest.param({"gate_interval_seconds": -5}, "gate_interval_seconds must be", id="int-neg"),
        pytest.param(
            {"gate_interval_seconds": math.nan}, "gate_interval_seconds must be", id="int-nan"
        ),
        pytest.param({"settle_seconds": -1}, "settle_seconds must be 0 or more", id="settle-neg"),
        pytest.param({"gate_timeout_seconds": 0}, "gate_timeout_seconds must be", id="timeout-0"),
        pytest.param(
            {"gate_timeout_seconds": math.inf}, "gate_timeout_seconds must be", id="timeout-inf"
        ),
        pytest.param(
            {"settle_seconds": 600, "gate_timeout_seconds": 300},
            "settle_seconds (600) must be less than gate_timeout_seconds (300)",
            id="settle-beyond-timeout",
        ),
        pytest.param({"max_offset": -1}, "max_offset must be a whole number", id="offset-neg"),
        pytest.param(
            {"max_key_difference": 2.5}, "max_key_difference must be a whole", id="keys-fraction"
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_field(settings: dict[str, Any], fragment: str) -> None:
    """Each bad value is refused before any request, with the parameter's name and the fix."""
    with pytest.raises(DcsValidationError, match=re.escape(fragment)):
        GateSettings(**settings)


def test_the_defaults_are_the_documented_ones() -> None:
    """10 s between reads, a minute caught up, half an hour at most, offset 0, 1000 keys."""
    assert GateSettings() == GateSettings(10.0, 60.0, 1800.0, 0, 1000)


def task(status: str, method: str | None = None, kind: str | None = None) -> MigrationTask:
    return MigrationTask(task_id=TASK, status=status, migration_method=method, migration_type=kind)


@pytest.mark.parametrize(
    ("migration", "applies"),
    [
        pytest.param(task("INCRMIGEATING", "incremental_migration"), True, id="incremental"),
        pytest.param(task("INCRMIGRATING"), True, id="incremental-no-method"),
        pytest.param(task("SUCCESS", "incremental_migration"), True, id="incremental-success"),
        pytest.param(task("SUCCESS", "full_amount_migration"), False, id="full-success"),
        pytest.param(task("SUCCESS", None, "backupfile_import"), False, id="backup-import"),
    ],
)
def test_only_a_finished_migration_without_incremental_sync_skips_the_gate(
    migration: MigrationTask, applies: bool
) -> None:
    """Incremental tasks are always gated; a finished full migration says why it is not."""
    reason = skip_reason(migration)
    assert (reason is None) is applies
    if reason is not None:
        assert "during incremental migration only" in reason


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param("MIGRATION_FAILED", MigrationFailed, id="failed"),
        pytest.param("FULLMIGRATING", DcsValidationError, id="still-full"),
        pytest.param("INCRMIGEATING", None, id="incremental"),
        pytest.param("SUCCESS", None, id="finished"),
    ],
)
def test_what_the_gate_can_judge_on_its_own(status: str, error: type[DcsError] | None) -> None:
    """On its own, the gate refuses a failed task or one not yet in incremental sync."""
    if error is None:
        check_gateable(task(status))
    else:
        with pytest.raises(error, match=r"incremental sync|failure status"):
            check_gateable(task(status))
