"""The polling engine: watch one or many DCS migration tasks until they are done.

No Prefect here: `flows.wait` wraps these loops in one Prefect task run each and plugs in
an observer that writes logs, events and artifacts. The loops only decide:

- when a task is done (`is_done`): SUCCESS always; ready for cutover (incremental sync)
  when `until` is "auto" or "ready_for_cutover"; with `until="success"` an incremental
  sync counts as still in progress;
- that a failure status raises `MigrationFailed`, the deadline `MigrationTimeout` (on the
  monotonic clock, never a sum of sleeps), a missing task `MigrationTaskNotFound` at once;
- that a detail reading SUCCESS is believed only once the list shows the task too: DCS
  keeps answering SUCCESS for a deleted task's detail for a while (Huawei's Terraform
  provider checks the list for the same reason), so a task the list no longer shows is
  deleted, `MigrationTaskNotFound`, never a success (`confirm_listed`);
- that transient (or garbled) answers are read again, and only a streak of
  `max_consecutive_errors` of them fails the watch (`MigrationUnreachable`);
- that a task still `RUNNING` ("pending configuration": created, never configured)
  `configure_grace_seconds` after the watch began ends it (`MigrationNotConfigured`),
  rather than a wait to the deadline that never says why;
- when to call the observer: on a change of status, never on an unchanged poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from pydantic import ValidationError

from blocks.client import AsyncDcsClient
from blocks.errors import (
    DcsError,
    DcsUnexpectedResponse,
    DcsValidationError,
    MigrationFailed,
    MigrationNotConfigured,
    MigrationTaskNotFound,
    MigrationTimeout,
    MigrationUnreachable,
)
from blocks.models import MigrationStatus, MigrationTask, MigrationTaskStats, MigrationTaskSummary
from blocks.settings import DcsSettings
from flows import clock

Until = Literal["auto", "success", "ready_for_cutover"]
UNTIL_VALUES: tuple[str, ...] = get_args(Until)
#: Statuses during which `show_migration_task_stats` reports a full-migration progress.
T = TypeVar("T")

_PROGRESS_STATUSES = frozenset({MigrationStatus.MIGRATING, MigrationStatus.FULLMIGRATING})


def open_client(settings: DcsSettings, **options: Any) -> AsyncDcsClient:
    """An async client whose retry waits follow the same (injectable) time as the polls."""
    time = clock.current()
    return settings.get_async_client(sleep=time.sleep, clock=time.monotonic, **options)


def is_done(task: MigrationTask | MigrationTaskSummary, until: Until) -> bool:
    """Whether a (non-failed) task has reached what the watch waits for."""
    if task.succeeded:
        return True
    return task.ready_for_cutover and until != "success"


def is_transient_or_garbled(error: DcsError) -> bool:
    """Whether a failed read is worth trying again later, for a flow that waits anyway.

    More than `error.transient`: a garbled answer (`DcsUnexpectedResponse`), which the
    client does not repeat at once, is as worth waiting out as a 502 for a flow that waits
    (and bounds its streaks).
    """
    return error.transient or isinstance(error, DcsUnexpectedResponse)


async def confirm_listed(client: AsyncDcsClient, task: MigrationTask) -> None:
    """Raise `MigrationTaskNotFound` if a task whose detail reads SUCCESS is not listed.

    One list request by the task's name (a few when names are shared), made only when the
    detail says SUCCESS, and not when the list already showed the task this round.
    """
    if not task.succeeded:
        return
    async for page in client.iter_migration_task_pages(name=task.task_name or None):
        if any(summary.task_id == task.task_id for summary in page.migration_tasks):
            return
    msg = (
        f"migration task {task.task_id!r} ({task.task_name}) was deleted: its detail still "
        f"reads {task.raw_status}, as DCS answers for a while after a deletion, but the "
        f"list of tasks no longer shows it"
    )
    raise MigrationTaskNotFound(
        msg, status_code=200, operation="list_migration_tasks", task_id=task.task_id
    )


async def patiently(
    call: Callable[[], Awaitable[T]],
    *,
    patience_seconds: float = 600.0,
    interval_seconds: float = 5.0,
) -> T:
    """`call()`, riding out transient or garbled answers as a watch does, for a while.

    The reads a runbook makes outside a watch (before and after the cutover) need the same
    patience: one gateway page must not fail a migration that is fine.
    """
    time = clock.current()
    deadline = time.monotonic() + patience_seconds
    while True:
        try:
            return await call()
        except DcsError as error:
            if not is_transient_or_garbled(error) or time.monotonic() >= deadline:
                raise
        await time.sleep(interval_seconds)


async def read_task(
    client: AsyncDcsClient,
    task_id: str,
    *,
    patience_seconds: float = 600.0,
    interval_seconds: float = 5.0,
) -> MigrationTask:
    """One read of a task, patiently (see `patiently`)."""
    return await patiently(
        lambda: client.show_migration_task(task_id),
        patience_seconds=patience_seconds,
        interval_seconds=interval_seconds,
    )


async def read_stats(client: AsyncDcsClient, task_id: str) -> MigrationTaskStats:
    """One read of a task's stats, patiently (see `patiently`)."""
    return await patiently(lambda: client.show_migration_task_stats(task_id))


@dataclass(frozen=True)
class WatchSettings:
    """How to watch: what to wait for, how often to look, and for how long at most.

    With `max_poll_interval_seconds` set, the interval grows by `backoff_factor` after
    each poll that saw no change, up to that cap, and drops back on a change.
    """

    until: Until = "auto"
    poll_interval_seconds: float = 15.0
    timeout_seconds: float = 86400.0
    max_poll_interval_seconds: float | None = None
    backoff_factor: float = 1.5
    max_consecutive_errors: int = 20
    track_progress: bool = True
    #: Stats are a second request: read them at most this often, not on every poll.
    progress_interval_seconds: float = 60.0
    #: Tell the observer the watch goes on this often while nothing ends it (None: never),
    #: so a days-long wait is not a silent log.
    heartbeat_seconds: float | None = 600.0
    #: A task still RUNNING ("pending configuration") this long after the watch began was
    #: never configured: the watch ends with `MigrationNotConfigured` (None: never).
    configure_grace_seconds: float | None = 300.0

    def __post_init__(self) -> None:
        problems = []
        if self.until not in UNTIL_VALUES:
            problems.append(f"until must be one of {', '.join(UNTIL_VALUES)}, got {self.until!r}")
        if not self.poll_interval_seconds > 0:
            problems.append(
                f"poll_interval_seconds must be more than 0, got {self.poll_interval_seconds!r}"
            )
        if not self.timeout_seconds > 0:
            problems.append(f"timeout_seconds must be more than 0, got {self.timeout_seconds!r}")
        cap = self.max_poll_interval_seconds
        if cap is not None and not cap >= self.poll_interval_seconds:
            problems.append(
                f"max_poll_interval_seconds ({cap!r}) must be at least "
                f"poll_interval_seconds ({self.poll_interval_seconds!r})"
            )
        if not self.backoff_factor >= 1:
            problems.append(f"backoff_factor must be at least 1, got {self.backoff_factor!r}")
        if self.max_consecutive_errors < 1:
            problems.append(
                f"max_consecutive_errors must be at least 1, got {self.max_consecutive_errors!r}"
            )
        if self.heartbeat_seconds is not None and not self.heartbeat_seconds > 0:
            problems.append(
                f"heartbeat_seconds must be more than 0 (or None for no heartbeat), "
                f"got {self.heartbeat_seconds!r}"
            )
        grace = self.configure_grace_seconds
        if grace is not None and not grace > 0:
            problems.append(
                f"configure_grace_seconds must be more than 0 (or None to wait for a task "
                f"left pending configuration until the deadline), got {grace!r}"
            )
        if problems:
            raise DcsValidationError("; ".join(problems))

    def interval(self, unchanged_polls: int) -> float:
        """Seconds to wait after `unchanged_polls` polls in a row saw no change."""
        if self.max_poll_interval_seconds is None:
            return self.poll_interval_seconds
        grown = self.poll_interval_seconds * self.backoff_factor ** min(unchanged_polls, 64)
        return min(grown, self.max_poll_interval_seconds)


class WatchObserver:
    """Hooks the loops call; this base does nothing. `flows.wait` writes to Prefect."""

    async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
        """The task's status changed (or was seen for the first time)."""

    async def progress(self, task: MigrationTask, stats: MigrationTaskStats) -> None:
        """A full migration reported its progress."""

    async def transient_error(self, task_id: str, error: DcsError, streak: int) -> None:
        """A poll failed with a transient or garbled answer; `streak` counts them in a row."""

    async def notice(self, message: str) -> None:
        """Something worth a warning happened to the watch as a whole."""

    async def heartbeat(self, task_id: str, last: MigrationTask | None, waited: float) -> None:
        """The watch of one task goes on: `waited` seconds so far, `last` its last read."""

    async def ended(self, outcome: Outcome) -> None:
        """A fan-out watch is over for one task (the others go on): act on it at once."""


def _failed(task: MigrationTask) -> MigrationFailed:
    msg = (
        f"migration task {task.task_id!r} ({task.task_name or 'unnamed'}) ended in status "
        f"{task.status_text}" + (f" (task_status {task.task_status})" if task.task_status else "")
    )
    return MigrationFailed(msg, task=task.masked())


def _timeout(task_id: str, last: MigrationTask | None, settings: WatchSettings) -> MigrationTimeout:
    status = last.raw_status if last is not None else None
    msg = (
        f"migration task {task_id!r} was still {status or 'unread'} after "
        f"{settings.timeout_seconds:g} s of watching (until={settings.until!r}); "
        f"the migration itself keeps running on DCS"
    )
    return MigrationTimeout(
        msg,
        task_id=task_id,
        last_status=status,
        timeout_seconds=settings.timeout_seconds,
        last_task=last.masked() if last is not None else None,
    )


def _unreachable(
    task_id: str, last: MigrationTask | None, streak: int, error: DcsError
) -> MigrationUnreachable:
    status = last.raw_status if last is not None else None
    msg = (
        f"migration task {task_id!r} could not be read for {streak} polls in a row "
        f"(last status seen: {status or 'none'}); last error: {error}"
    )
    return MigrationUnreachable(
        msg, task_id=task_id, last_status=status, consecutive_errors=streak, last_error=str(error)
    )


def _not_configured(task: MigrationTask, grace: float, waited: float) -> MigrationNotConfigured:
    msg = (
        f"migration task {task.task_id!r} ({task.task_name or 'unnamed'}) is still RUNNING "
        f"(pending configuration) {waited:g} s after the watch began "
        f"(configure_grace_seconds={grace:g}): it was created but never configured. "
        f"Configure it (source and target instance, migration method) with "
        f"set_online_migration_task or in the DCS console, then watch it again "
        f"(or run migrate_instance, which configures the task it creates)"
    )
    return MigrationNotConfigured(
        msg,
        task_id=str(task.task_id),
        grace_seconds=grace,
        waited_seconds=waited,
        last_task=task.masked(),
    )


class _TaskWatch:
    """The state of one task's watch: what was seen, and whether it is settled."""

    def __init__(self, task_id: str, settings: WatchSettings, observer: WatchObserver) -> None:
        self.task_id = task_id
        self.settings = settings
        self.observer = observer
        self.last: MigrationTask | None = None
        self.streak = 0
        self.unchanged = 0
        self.began = clock.current().monotonic()

    async def seen(self, task: MigrationTask) -> bool:
        """Take in a fresh read; True when the watch is over (raises on failure)."""
        self.streak = 0
        if self.last is None or task.raw_status != self.last.raw_status:
            await self.observer.changed(self.last, task)
            self.unchanged = 0
        else:
            self.unchanged += 1
        self.last = task
        if task.failed:
            raise _failed(task)
        self.check_configured()
        return is_done(task, self.settings.until)

    def check_configured(self) -> None:
        """Raise `MigrationNotConfigured` if the task is still pending configuration past
        the grace (the fan-out calls this on a round whose list shows no change, too)."""
        grace = self.settings.configure_grace_seconds
        if grace is None or self.last is None or self.last.status != MigrationStatus.RUNNING:
            return
        waited = clock.current().monotonic() - self.began
        if waited >= grace:
            raise _not_configured(self.last, grace, waited)

    async def failed_read(self, error: DcsError) -> None:
        """Take in a failed read: re-raise what is permanent or ends a long streak."""
        if not is_transient_or_garbled(error):
            raise error
        self.streak += 1
        await self.observer.transient_error(self.task_id, error, self.streak)
        if self.streak >= self.settings.max_consecutive_errors:
            raise _unreachable(self.task_id, self.last, self.streak, error) from error

    def changed_in(self, listed: dict[str, MigrationTaskSummary]) -> bool:
        """Whether the listed tasks show this task as new, changed or missing."""
        summary = listed.get(self.task_id)
        return self.last is None or summary is None or summary.raw_status != self.last.raw_status

    def timeout(self) -> MigrationTimeout:
        return _timeout(self.task_id, self.last, self.settings)


async def watch_task(
    client: AsyncDcsClient,
    task_id: str,
    settings: WatchSettings,
    observer: WatchObserver | None = None,
) -> MigrationTask:
    """Poll one task until it is done; the final task (masked), or one of the errors above."""
    time = clock.current()
    state = _TaskWatch(task_id, settings, observer or WatchObserver())
    began = time.monotonic()
    deadline = began + settings.timeout_seconds
    next_progress = began
    beat = settings.heartbeat_seconds
    next_beat = began + beat if beat is not None else float("inf")
    while True:
        try:
            task = await client.show_migration_task(task_id)
            await confirm_listed(client, task)
        except DcsError as error:
            await state.failed_read(error)
        else:
            if await state.seen(task):
                return task
            progressing = settings.track_progress and task.status in _PROGRESS_STATUSES
            if progressing and time.monotonic() >= next_progress:
                next_progress = time.monotonic() + settings.progress_interval_seconds
                await _report_progress(client, state, task)
        if beat is not None and time.monotonic() >= next_beat:
            next_beat = time.monotonic() + beat
            await state.observer.heartbeat(task_id, state.last, time.monotonic() - began)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise state.timeout()
        await time.sleep(min(settings.interval(state.unchanged), remaining))


async def _report_progress(client: AsyncDcsClient, state: _TaskWatch, task: MigrationTask) -> None:
    # Progress is a nicety: a failed stats read never disturbs the watch itself.
    try:
        stats = await client.show_migration_task_stats(state.task_id)
    except DcsError:
        return
    await state.observer.progress(task, stats)


@dataclass(frozen=True)
class Outcome:
    """How one task of a fan-out watch ended: its final task, or the error that ended it."""

    task_id: str
    task: MigrationTask | None = None
    error: DcsError | None = None

    @property
    def ok(self) -> bool:
        """Whether the task reached what the watch waited for."""
        return self.error is None


class RateLimiter:
    """At most `per_second` acquisitions per second, spaced evenly, on the injected clock."""

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            msg = f"max_requests_per_second must be more than 0, got {per_second!r}"
            raise DcsValidationError(msg)
        self._spacing = 1.0 / per_second
        self._next = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        time = clock.current()
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._spacing
        if slot > now:
            await time.sleep(slot - now)


def _unique(task_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        msg = "task_ids is empty; pass at least one migration task id"
        raise DcsValidationError(msg)
    return ids


async def watch_tasks(
    client: AsyncDcsClient,
    task_ids: Iterable[str],
    settings: WatchSettings,
    observer: WatchObserver | None = None,
    *,
    max_concurrency: int = 10,
    max_requests_per_second: float = 20.0,
    page_size: int = 100,
    list_threshold: int = 5,
) -> dict[str, Outcome]:
    """Watch many tasks at once over one client; one task's end never stops the others.

    With `list_threshold` or more tasks still pending, each round reads every status from
    the list endpoint (one request per page of `page_size`) and fetches a task's details
    only when its status changed, as soon as the page showing it arrives (those a page
    shows finished first); the first look at
    a task in progress is its list item (`MigrationTaskSummary.as_task`), so no detail
    read at all until it changes. With fewer, it fetches each pending task's details.
    Each read is taken in (and the observer told) as soon as it arrives. Rounds start one
    interval apart, however long a round takes, so a change is listed at most one interval
    (plus the list's own time) after it happened.
    At most `max_concurrency` requests are in flight, and at most
    `max_requests_per_second` start per second.
    """
    if max_concurrency < 1:
        msg = f"max_concurrency must be at least 1, got {max_concurrency!r}"
        raise DcsValidationError(msg)
    fan_out = _FanOut(
        client,
        _unique(task_ids),
        settings,
        observer or WatchObserver(),
        limiter=RateLimiter(max_requests_per_second),
        slots=asyncio.Semaphore(max_concurrency),
        page_size=page_size,
        list_threshold=list_threshold,
    )
    return await fan_out.run()


class _FanOut:
    """One fan-out watch in progress: rounds one interval apart until no task is pending.

    A round lists the tasks a page at a time and starts reading the tasks each page shows
    changed as soon as that page arrives (`_list_and_read`), or reads every pending task
    (`_start`); each answer is taken in as it arrives (`_take`).
    """

    def __init__(
        self,
        client: AsyncDcsClient,
        task_ids: list[str],
        settings: WatchSettings,
        observer: WatchObserver,
        *,
        limiter: RateLimiter,
        slots: asyncio.Semaphore,
        page_size: int,
        list_threshold: int,
    ) -> None:
        self.client = client
        self.settings = settings
        self.observer = observer
        self.limiter = limiter
        self.slots = slots
        self.page_size = page_size
        self.list_threshold = list_threshold
        self.watches = {task_id: _TaskWatch(task_id, settings, observer) for task_id in task_ids}
        self.outcomes: dict[str, Outcome] = {}
        #: False once listing was refused for good: every round reads each task instead.
        self.use_list = True
        self.list_streak = 0
        #: This round's list: a detail reading SUCCESS of a task it shows needs no check.
        self.listed: dict[str, MigrationTaskSummary] = {}
        self.time = clock.current()

    async def run(self) -> dict[str, Outcome]:
        """Rounds until every task has its outcome (or the deadline); outcomes in the ids' order."""
        deadline = self.time.monotonic() + self.settings.timeout_seconds
        while pending := self._pending():
            round_started = self.time.monotonic()
            await self._round(pending)
            remaining = deadline - self.time.monotonic()
            if remaining <= 0:
                await self._time_out()
                break
            await self._wait_for_next_round(round_started, remaining)
        return {task_id: self.outcomes[task_id] for task_id in self.watches}

    def _pending(self) -> list[str]:
        return [task_id for task_id in self.watches if task_id not in self.outcomes]

    # -- one round ------------------------------------------------------------------------

    async def _round(self, pending: list[str]) -> None:
        """Read what this round needs, taking in each read as it arrives."""
        self.listed = {}
        reads: dict[asyncio.Future[tuple[str, MigrationTask | DcsError]], str] = {}
        try:
            if self.use_list and len(pending) >= self.list_threshold:
                await self._list_and_read(pending, reads)
            else:
                self._start(pending, reads)
            for arrival in asyncio.as_completed(list(reads)):
                await self._take(*await arrival)
        finally:
            for unfinished in reads:
                unfinished.cancel()
            await asyncio.gather(*reads, return_exceptions=True)

    async def _list_and_read(
        self,
        pending: list[str],
        reads: dict[asyncio.Future[tuple[str, MigrationTask | DcsError]], str],
    ) -> None:
        """List every task, a page per request, each page paced; the changed tasks a page
        shows are read as soon as it arrives, those it shows finished first. First looks
        come from the list; the tasks no page showed are read once all pages are in."""
        waiting = set(pending)
        pages = self.client.iter_migration_task_pages(
            page_size=self.page_size, pace=self.limiter.acquire
        )
        try:
            async with aclosing(pages):
                async for page in pages:
                    shown = {s.task_id: s for s in page.migration_tasks if s.task_id is not None}
                    self.listed.update(shown)
                    here = waiting & shown.keys()
                    on_page = [task_id for task_id in pending if task_id in here]
                    waiting -= here
                    self._start(await self._sort_out(shown, on_page), reads)
                    await self._take_arrived(reads)
        except DcsError as error:
            self._start(await self._list_failed(error, [t for t in pending if t in waiting]), reads)
            return
        self.list_streak = 0
        self._start(await self._sort_out(self.listed, [t for t in pending if t in waiting]), reads)

    async def _list_failed(self, error: DcsError, pending: list[str]) -> list[str]:
        """What to read after the list failed: each task when listing is refused, else
        nothing this round (a streak of failed lists ends every pending watch)."""
        if not is_transient_or_garbled(error):
            # Credentials that may read tasks but not list them (403): read each one.
            self.use_list = False
            await self.observer.notice(
                f"cannot list migration tasks ({error}); reading each task instead"
            )
            return pending
        self.list_streak += 1
        await self.observer.transient_error("(list of tasks)", error, self.list_streak)
        if self.list_streak >= self.settings.max_consecutive_errors:
            await self._list_unreachable(error, pending)
        return []

    async def _sort_out(
        self, listed: dict[str, MigrationTaskSummary], pending: list[str]
    ) -> list[str]:
        """Take in first looks from the list; the changed tasks to read, finished first."""
        to_read = []
        for task_id in pending:
            watch = self.watches[task_id]
            if watch.last is None and (first := _first_look(listed, task_id, self.settings)):
                await self._take(task_id, first)
            elif watch.changed_in(listed):
                to_read.append(task_id)
            else:
                watch.unchanged += 1
                # No read this round, so nothing else would notice a task left pending.
                try:
                    watch.check_configured()
                except DcsError as error:
                    await self._end(Outcome(task_id, task=watch.last, error=error))
        to_read.sort(key=lambda task_id: not _ends_watch(listed.get(task_id), self.settings))
        return to_read

    # -- reading, and taking in what arrives ----------------------------------------------

    def _start(
        self,
        task_ids: list[str],
        reads: dict[asyncio.Future[tuple[str, MigrationTask | DcsError]], str],
    ) -> None:
        """Start reading the details of `task_ids`; each waits for its slot and the limit."""
        for task_id in task_ids:
            reads[asyncio.ensure_future(self._read(task_id))] = task_id

    async def _take_arrived(
        self, reads: dict[asyncio.Future[tuple[str, MigrationTask | DcsError]], str]
    ) -> None:
        """Take in the reads that have arrived so far (between two list pages)."""
        for arrived in [read for read in reads if read.done()]:
            del reads[arrived]
            await self._take(*arrived.result())

    async def _read(self, task_id: str) -> tuple[str, MigrationTask | DcsError]:
        async with self.slots:
            await self.limiter.acquire()
            try:
                task = await self.client.show_migration_task(task_id)
                if self.use_list and task_id not in self.listed:
                    await confirm_listed(self.client, task)
            except DcsError as error:
                return task_id, error
            return task_id, task

    async def _take(self, task_id: str, result: MigrationTask | DcsError) -> None:
        """Take in one read; a task whose watch it ends gets its outcome."""
        watch = self.watches[task_id]
        try:
            if isinstance(result, DcsError):
                await watch.failed_read(result)
            elif await watch.seen(result):
                await self._end(Outcome(task_id, task=result))
        except DcsError as error:
            await self._end(Outcome(task_id, task=watch.last, error=error))

    async def _end(self, outcome: Outcome) -> None:
        self.outcomes[outcome.task_id] = outcome
        await self.observer.ended(outcome)

    # -- the ends of a round --------------------------------------------------------------

    async def _wait_for_next_round(self, round_started: float, remaining: float) -> None:
        """Sleep until one interval after this round started (never past the deadline)."""
        pending = self._pending()
        if not pending:
            return
        fastest = min(self.watches[task_id].unchanged for task_id in pending)
        until_next = self.settings.interval(fastest) - (self.time.monotonic() - round_started)
        await self.time.sleep(max(0.0, min(until_next, remaining)))

    async def _time_out(self) -> None:
        for task_id in self._pending():
            watch = self.watches[task_id]
            await self._end(Outcome(task_id, task=watch.last, error=watch.timeout()))

    async def _list_unreachable(self, error: DcsError, pending: list[str]) -> None:
        msg = (
            f"the list of migration tasks could not be read for {self.list_streak} "
            f"rounds in a row; last error: {error}"
        )
        for task_id in pending:
            last = self.watches[task_id].last
            fatal = MigrationUnreachable(
                msg,
                task_id=task_id,
                last_status=last.raw_status if last else None,
                consecutive_errors=self.list_streak,
                last_error=str(error),
            )
            await self._end(Outcome(task_id, task=last, error=fatal))


def _first_look(
    listed: dict[str, MigrationTaskSummary], task_id: str, settings: WatchSettings
) -> MigrationTask | None:
    """The list item as a first look at a task in progress; None: read its details instead
    (not listed, no status, finished, or an item that does not make a valid task)."""
    summary = listed.get(task_id)
    if summary is None or summary.raw_status is None or _ends_watch(summary, settings):
        return None
    try:
        return summary.as_task()
    except ValidationError:
        return None


def _ends_watch(summary: MigrationTaskSummary | None, settings: WatchSettings) -> bool:
    """Whether a listed task looks finished (failed, or done), so is worth reading first."""
    return summary is not None and (summary.failed or is_done(summary, settings.until))


__all__ = [
    "UNTIL_VALUES",
    "Outcome",
    "RateLimiter",
    "Until",
    "WatchObserver",
    "WatchSettings",
    "confirm_listed",
    "is_done",
    "is_transient_or_garbled",
    "open_client",
    "patiently",
    "read_stats",
    "read_task",
    "watch_task",
    "watch_tasks",
]
