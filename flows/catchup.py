"""The catch-up gate's engine: has the target caught up with the source, and stayed so?

No Prefect here: `flows.gate` runs this loop in one Prefect task run and plugs in an
observer that writes logs, events and the artifact. The loop only decides:

- what one read of the stats says (`judge`): it passes when `offset` <= `max_offset` and,
  where both key counts are given, |source_dbsize - target_dbsize| <= `max_key_difference`,
  and DCS does not say the migration stopped (`is_migrating` false). A figure that is
  missing, not a number or negative never passes: the reason says which;
- that the gate passes after `settle_seconds` of passing reads in a row: one read that does
  not pass (or cannot be made) starts the window again;
- that transient read errors are ridden out until the deadline, and anything else is
  raised at once; the deadline (on the monotonic clock) raises `CutoverGateTimeout`.

DCS defines `offset` as "the difference between the data of the source and the target
Redis during incremental migration; 0: no difference" (ShowMigrationTaskStats). The
migration services teams trust cut over on "gap 0, held for a while" (Tencent DTS: gap
0 KB and lag 0 s for at least a minute), hence the settle window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from blocks.client import AsyncDcsClient
from blocks.errors import CutoverGateTimeout, DcsError, DcsValidationError, MigrationFailed
from blocks.models import MigrationTask, MigrationTaskStats
from flows import clock
from flows.polling import is_transient_or_garbled

Gate = Literal["on", "off"]
GATE_VALUES: tuple[str, ...] = get_args(Gate)
#: The one migration method whose task has an incremental sync to catch up with.
INCREMENTAL_METHOD = "incremental_migration"
# Text DCS sent where a number belongs is kept for the messages, cut to this length.
_MAX_SHOWN = 40
#: A window this close to full is full. The window's length (last read - first read) and
#: its end (first read + settle_seconds) round differently in the last bits of a float:
#: without this, the gate could sleep 0 s and read again, for ever, just short of full.
_SLACK_SECONDS = 1e-6

Figure = int | str | None


@dataclass(frozen=True)
class GateSettings:
    """When the target counts as caught up, how often to look, and for how long at most.

    Field names are the runbook's parameter names, so that an error names what to change.
    """

    gate_interval_seconds: float = 10.0
    settle_seconds: float = 60.0
    gate_timeout_seconds: float = 1800.0
    max_offset: int = 0
    #: Keys expire on both sides at their own pace: an exact match may never come.
    max_key_difference: int = 1000

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.gate_interval_seconds) and self.gate_interval_seconds > 0):
            problems.append(
                f"gate_interval_seconds must be a number of seconds more than 0, got "
                f"{self.gate_interval_seconds!r} (the default is 10)"
            )
        if not (math.isfinite(self.settle_seconds) and self.settle_seconds >= 0):
            problems.append(
                f"settle_seconds must be 0 or more seconds, got {self.settle_seconds!r} "
                f"(the default is 60: the target stays caught up for a minute)"
            )
        if not (math.isfinite(self.gate_timeout_seconds) and self.gate_timeout_seconds > 0):
            problems.append(
                f"gate_timeout_seconds must be a number of seconds more than 0, got "
                f"{self.gate_timeout_seconds!r} (the default is 1800)"
            )
        elif not self.settle_seconds < self.gate_timeout_seconds:
            problems.append(
                f"settle_seconds ({self.settle_seconds!r}) must be less than "
                f"gate_timeout_seconds ({self.gate_timeout_seconds!r}), or the gate can never "
                f"pass: raise gate_timeout_seconds or lower settle_seconds"
            )
        for name in ("max_offset", "max_key_difference"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be a whole number, 0 or more, got {value!r}")
        if problems:
            raise DcsValidationError("; ".join(problems))


def _shown(value: Figure) -> str:
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _count(name: str, value: Figure, problems: list[str]) -> int | None:
    """`value` as a usable number, or None (and why not in `problems`, if it was sent)."""
    if value is None:
        return None
    if isinstance(value, str):
        problems.append(f"{name} {_shown(value)!r} is not a number")
        return None
    if value < 0:
        problems.append(f"{name} {value} is negative")
        return None
    return value


@dataclass(frozen=True)
class Reading:
    """One read of the stats and its verdict; `error` is set when the read failed."""

    at: float  # seconds since the gate began
    offset: Figure = None
    source_dbsize: Figure = None
    target_dbsize: Figure = None
    passing: bool = False
    reason: str = ""
    error: str | None = None

    @property
    def key_difference(self) -> int | None:
        """|source - target| keys, when both counts are numbers."""
        source, target = self.source_dbsize, self.target_dbsize
        if isinstance(source, int) and isinstance(target, int):
            return abs(source - target)
        return None

    def figures(self) -> str:
        """The figures in words: 'offset 0, source 100000 keys, target 99990 keys (...)'."""
        if self.error is not None:
            return "no figures (the read failed)"
        difference = self.key_difference
        keys = f", difference {difference}" if difference is not None else ""
        return (
            f"offset {_shown(self.offset)}, source {_shown(self.source_dbsize)} keys, "
            f"target {_shown(self.target_dbsize)} keys{keys}"
        )


def judge(stats: MigrationTaskStats, settings: GateSettings, at: float) -> Reading:
    """What one read of the stats says: passing or not, and why."""
    problems: list[str] = []
    offset = _count("offset", stats.offset, problems)
    if stats.offset is None:
        problems.append("the stats carry no offset")
    elif offset is not None and offset > settings.max_offset:
        problems.append(f"offset {offset} > max_offset {settings.max_offset}")
    source = _count("source_dbsize", stats.source_dbsize, problems)
    target = _count("target_dbsize", stats.target_dbsize, problems)
    keys = "key counts not reported"
    if source is not None and target is not None:
        difference = abs(source - target)
        if difference > settings.max_key_difference:
            problems.append(
                f"key difference {difference} > max_key_difference {settings.max_key_difference}"
            )
        keys = f"key difference {difference} <= {settings.max_key_difference}"
    if stats.is_migrating is False:
        problems.append("DCS reports is_migrating false: the sync is not running")
    reason = "; ".join(problems) or f"offset {offset} <= {settings.max_offset}, {keys}"
    return Reading(
        at=at,
        offset=stats.offset,
        source_dbsize=stats.source_dbsize,
        target_dbsize=stats.target_dbsize,
        passing=not problems,
        reason=reason,
    )


@dataclass(frozen=True)
class CaughtUp:
    """How the gate passed: its last (passing) read, how long it took, how many reads."""

    reading: Reading
    waited_seconds: float
    reads: int


def skip_reason(task: MigrationTask) -> str | None:
    """Why the gate does not apply to `task`, or None when it does.

    Only a finished full migration (or backup import) is exempt: it has no incremental
    sync, so no offset to catch up on, and its stats say `is_migrating` false for ever.
    Every other task is gated, an incremental one always.
    """
    if not task.succeeded or task.migration_method == INCREMENTAL_METHOD:
        return None
    kind = task.migration_method or task.migration_type or "not incremental"
    return (
        f"{task.describe()} is a finished migration without incremental sync ({kind}): "
        f"DCS defines the offset during incremental migration only, so there is nothing to "
        f"catch up on; writes made to the source after the migration began are not on the "
        f"target"
    )


def check_gateable(task: MigrationTask) -> None:
    """Raise unless `task` is in incremental sync or finished (what the gate can judge)."""
    if task.failed:
        msg = f"{task.describe()} is in a failure status: there is nothing to cut over to"
        raise MigrationFailed(msg, task=task.masked())
    if not (task.ready_for_cutover or task.succeeded):
        msg = (
            f"{task.describe()} is not in incremental sync yet: the offset means nothing "
            f"before it; wait for it first (wait_for_migration_task with "
            f"until='ready_for_cutover'), then gate the cutover"
        )
        raise DcsValidationError(msg)


class GateObserver:
    """Hooks the gate calls; this base does nothing. `flows.gate` writes to Prefect."""

    async def read(self, reading: Reading) -> None:
        """A read was made (or failed) and judged; called for every read."""

    async def transient_error(self, error: DcsError, streak: int) -> None:
        """A read failed with an error worth riding out; `streak` counts them in a row."""

    async def recovered(self, streak: int) -> None:
        """The stats could be read again after `streak` failed reads."""


def _timeout(
    task_id: str,
    figures: Reading | None,
    last: Reading,
    settings: GateSettings,
    waited: float,
    longest: float | None,
) -> CutoverGateTimeout:
    """The gate's deadline passed: what it saw last, and what to do about it."""
    seen = figures.figures() if figures is not None else "no figures were read"
    held = (
        f"; passing reads lasted at most {longest:.0f} s in a row"
        if longest is not None
        else "; no read passed"
    )
    msg = (
        f"catch-up gate: migration task {task_id!r} did not stay caught up for "
        f"{settings.settle_seconds:g} s within gate_timeout_seconds="
        f"{settings.gate_timeout_seconds:g} (waited {waited:.0f} s): last figures {seen}; "
        f"last read: {last.reason}{held}. "
        f"No cutover was made. Check the source's write load (a burst of writes keeps the "
        f"offset up), then run again or raise gate_timeout_seconds; if only the key counts "
        f"differ (keys that expire), raise max_key_difference"
    )
    return CutoverGateTimeout(
        msg,
        task_id=task_id,
        last_offset=figures.offset if figures is not None else None,
        last_source_dbsize=figures.source_dbsize if figures is not None else None,
        last_target_dbsize=figures.target_dbsize if figures is not None else None,
        waited_seconds=round(waited, 3),
        reason=last.reason,
    )


class _Window:
    """The run of passing reads in progress, and the longest one seen."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.longest: float | None = None  # None: no read passed at all

    def take(self, reading: Reading) -> float:
        """Seconds the current run of passing reads has lasted (0 after a failing read)."""
        if not reading.passing:
            self.since = None
            return 0.0
        if self.since is None:
            self.since = reading.at
        held = reading.at - self.since
        self.longest = held if self.longest is None else max(self.longest, held)
        return held


async def wait_caught_up(
    client: AsyncDcsClient,
    task_id: str,
    settings: GateSettings,
    observer: GateObserver | None = None,
) -> CaughtUp:
    """Read the stats every `gate_interval_seconds` until they passed for `settle_seconds`."""
    time = clock.current()
    hooks = observer or GateObserver()
    began = time.monotonic()
    deadline = began + settings.gate_timeout_seconds
    window = _Window()
    streak = reads = 0
    figures: Reading | None = None  # the last read that brought figures
    while True:
        at = time.monotonic() - began
        try:
            stats = await client.show_migration_task_stats(task_id)
        except DcsError as error:
            if not is_transient_or_garbled(error):
                raise
            streak += 1
            await hooks.transient_error(error, streak)
            reading = Reading(
                at=at, reason=f"the stats could not be read: {error}", error=str(error)
            )
        else:
            if streak:
                await hooks.recovered(streak)
                streak = 0
            reading = figures = judge(stats, settings, at)
        reads += 1
        await hooks.read(reading)
        held = window.take(reading)
        if reading.passing and held >= settings.settle_seconds - _SLACK_SECONDS:
            return CaughtUp(reading, round(at, 3), reads)
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            raise _timeout(task_id, figures, reading, settings, now - began, window.longest)
        wait = settings.gate_interval_seconds
        if window.since is not None:  # read again right when the window is full
            wait = min(wait, max(0.0, began + window.since + settings.settle_seconds - now))
        await time.sleep(min(wait, remaining))


__all__ = [
    "GATE_VALUES",
    "INCREMENTAL_METHOD",
    "CaughtUp",
    "Figure",
    "Gate",
    "GateObserver",
    "GateSettings",
    "Reading",
    "check_gateable",
    "judge",
    "skip_reason",
    "wait_caught_up",
]
