"""A task's life as a pure function of its script, what was done to it, and the time.

Nothing here holds state or reads a clock: `snapshot(script, events, t)` says what DCS
would report `t` scenario seconds after the sandbox started.

>>> from sandbox.scenario import MigrationScript
>>> script = MigrationScript.incremental("t1", pending_seconds=2, full_seconds=20)
>>> snap = snapshot(script, TaskEvents(), 12.0)
>>> snap.status, snap.progress
('FULLMIGRATING', 50.0)
>>> snapshot(script, TaskEvents(ip_actions=(IpAction("exchange", 30.0),)), 31.0).task_status
'EXCHANGING'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sandbox.scenario import MigrationScript

SUCCESS_STATUSES = frozenset({"SUCCESS", "MIGRATION_SUCCESS"})
FAILURE_STATUSES = frozenset(
    {"FAILED", "MIGRATION_FAILED", "TERMINATED", "RELEASED", "ERROR", "DELETED"}
)
TERMINAL_STATUSES = SUCCESS_STATUSES | FAILURE_STATUSES
#: Both spellings of incremental sync: the live service says INCRMIGEATING.
INCREMENTAL_STATUSES = frozenset({"INCRMIGEATING", "INCRMIGRATING"})
MIGRATING_STATUSES = frozenset({"MIGRATING", "FULLMIGRATING"}) | INCREMENTAL_STATUSES
#: Where an IP exchange is accepted: incremental sync, or a finished migration.
EXCHANGEABLE_STATUSES = INCREMENTAL_STATUSES | SUCCESS_STATUSES
KNOWN_STATUSES = TERMINAL_STATUSES | MIGRATING_STATUSES | {"RUNNING", "TERMINATING", "CREATING"}

IpActionKind = Literal["exchange", "rollback"]


@dataclass(frozen=True)
class IpAction:
    """An accepted POST exchange-ip or rollback-ip, at scenario time `at`."""

    kind: IpActionKind
    at: float
    exchanged_ip: tuple[str, ...] = ()
    is_exchange_domain: bool = False


@dataclass(frozen=True)
class TaskEvents:
    """What clients did to a task: the accepted stop (its time) and IP actions, in order,
    and its deletion."""

    stop_at: float | None = None
    ip_actions: tuple[IpAction, ...] = ()
    #: The stop was synchronous (sync-stop): TERMINATED at once, no TERMINATING.
    stop_waited: bool = False
    deleted_at: float | None = None


@dataclass(frozen=True)
class Segment:
    """One status held from `start` to `end` (None: for ever), progress moving linearly."""

    status: str
    start: float
    end: float | None
    progress_from: float
    progress_to: float

    def progress_at(self, t: float) -> float:
        if self.end is None or self.end <= self.start or t >= self.end:
            return self.progress_to
        fraction = max(0.0, (t - self.start) / (self.end - self.start))
        return self.progress_from + (self.progress_to - self.progress_from) * fraction


@dataclass(frozen=True)
class TaskSnapshot:
    """What DCS reports about a task at one moment."""

    status: str
    status_since: float
    progress: float
    task_status: str | None
    deleted: bool
    addresses_swapped: bool = False
    #: Deleted, but the detail still reads SUCCESS (`deleted_reads_success_for`).
    detail_reads_success: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the task's migration log."""

    at: float
    level: Literal["INFO", "WARN", "ERROR"]
    code: str
    message: str
    keywords: tuple[str, ...] = field(default_factory=tuple)


def segments(
    script: MigrationScript, stop_at: float | None = None, *, waited: bool = False
) -> list[Segment]:
    """The status timeline; a stop at `stop_at` cuts it and appends TERMINATING (unless the
    stop was `waited` for), TERMINATED."""
    timeline: list[Segment] = []
    start, progress = 0.0, 0.0
    for index, step in enumerate(script.steps):
        last = index == len(script.steps) - 1
        end = None if last or step.seconds is None else start + step.seconds
        target = progress if step.progress_to is None else step.progress_to
        timeline.append(Segment(step.status, start, end, progress, target))
        progress = target
        if end is None:
            break
        start = end
    if stop_at is None:
        return timeline
    kept: list[Segment] = []
    for segment in timeline:
        if segment.start >= stop_at:
            break
        if segment.end is None or segment.end > stop_at:
            frozen = segment.progress_at(stop_at)
            kept.append(
                Segment(segment.status, segment.start, stop_at, segment.progress_from, frozen)
            )
            break
        kept.append(segment)
    progress = kept[-1].progress_to if kept else 0.0
    terminating = 0.0 if waited else script.stop.terminating_seconds
    if terminating > 0:
        kept.append(Segment("TERMINATING", stop_at, stop_at + terminating, progress, progress))
    kept.append(Segment("TERMINATED", stop_at + terminating, None, progress, progress))
    return kept


def _current(timeline: list[Segment], t: float) -> Segment:
    current = timeline[0]
    for segment in timeline:
        # A later segment with the same start wins: a zero-length step is already over.
        if segment.start <= t:
            current = segment
    return current


def _ip_outcome(script: MigrationScript, action: IpAction) -> str:
    outcome = (
        script.exchange.outcome if action.kind == "exchange" else script.exchange.rollback_outcome
    )
    prefix = "EXCHANGE" if action.kind == "exchange" else "ROLLBACK"
    return f"{prefix}_{'SUCCESS' if outcome == 'success' else 'FAILED'}"


def _ip_state(
    script: MigrationScript, actions: tuple[IpAction, ...], t: float
) -> tuple[str | None, bool]:
    """`task_status` at `t`, and whether the addresses are swapped (each success swaps)."""
    task_status, swapped = script.task_status, False
    duration = script.exchange.exchanging_seconds
    for action in actions:
        if action.at > t:
            break
        if t < action.at + duration:
            task_status = "EXCHANGING"
            continue
        task_status = _ip_outcome(script, action)
        if task_status.endswith("_SUCCESS"):
            swapped = not swapped
    return task_status, swapped


def snapshot(script: MigrationScript, events: TaskEvents, t: float) -> TaskSnapshot:
    """What DCS reports about the task `t` scenario seconds after the sandbox started."""
    current = _current(segments(script, events.stop_at, waited=events.stop_waited), t)
    task_status, swapped = _ip_state(script, events.ip_actions, t)
    deleted_at = script.deleted_after_seconds
    deleted = deleted_at is not None and t >= deleted_at
    if events.deleted_at is not None and t >= events.deleted_at:
        deleted = True
    lingers = script.deleted_reads_success_for
    reads_success = (
        deleted and deleted_at is not None and lingers is not None and t < deleted_at + lingers
    )
    return TaskSnapshot(
        status=current.status,
        status_since=current.start,
        progress=current.progress_at(t),
        task_status=task_status,
        deleted=deleted,
        addresses_swapped=swapped,
        detail_reads_success=reads_success,
    )


def _status_level(status: str) -> Literal["INFO", "WARN", "ERROR"]:
    if status in FAILURE_STATUSES - {"TERMINATED"}:
        return "ERROR"
    if status not in KNOWN_STATUSES or status == "TERMINATED":
        return "WARN"
    return "INFO"


def history(script: MigrationScript, events: TaskEvents, t: float) -> list[HistoryEntry]:
    """The task's log up to `t`, oldest first: status changes, stop and IP actions."""
    entries = [
        HistoryEntry(
            segment.start,
            _status_level(segment.status),
            f"MIGRATION_{segment.status}",
            f"migration task status changed to {segment.status}",
            (segment.status,),
        )
        for segment in segments(script, events.stop_at, waited=events.stop_waited)
        if segment.start <= t and (segment.end is None or segment.end > segment.start)
    ]
    if events.stop_at is not None and events.stop_at <= t:
        entries.append(HistoryEntry(events.stop_at, "INFO", "STOP_REQUESTED", "stop requested"))
    for action in events.ip_actions:
        if action.at > t:
            break
        verb = "IP exchange" if action.kind == "exchange" else "IP rollback"
        entries.append(
            HistoryEntry(action.at, "INFO", f"{action.kind.upper()}_REQUESTED", f"{verb} requested")
        )
        done = action.at + script.exchange.exchanging_seconds
        if done <= t:
            outcome = _ip_outcome(script, action)
            level: Literal["INFO", "ERROR"] = "INFO" if outcome.endswith("SUCCESS") else "ERROR"
            entries.append(HistoryEntry(done, level, outcome, f"{verb}: {outcome}", (outcome,)))
    return sorted(entries, key=lambda entry: entry.at)


__all__ = [
    "EXCHANGEABLE_STATUSES",
    "FAILURE_STATUSES",
    "INCREMENTAL_STATUSES",
    "KNOWN_STATUSES",
    "MIGRATING_STATUSES",
    "SUCCESS_STATUSES",
    "TERMINAL_STATUSES",
    "HistoryEntry",
    "IpAction",
    "IpActionKind",
    "Segment",
    "TaskEvents",
    "TaskSnapshot",
    "history",
    "segments",
    "snapshot",
]
