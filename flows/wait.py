"""Wait for DCS migration tasks in Prefect: one task run per watch, however many polls.

`wait_for_migration_task` watches one task, `wait_for_migration_tasks` many at once. Both
are flows, so they run on their own, as subflows of a runbook, or as a deployment. All
polling happens inside ONE Prefect task run (a task run per poll costs ~7x the CPU and a
database row each); Prefect hears about a watch only when something changes:

- a log line and a `dcs.migration.status-changed` event per change of status, plus
  `dcs.migration.ready-for-cutover` / `.succeeded` / `.failed` / `.timed-out`;
- a progress artifact while a full migration reports its progress (updated on each whole
  percent), and a table artifact of the status timeline when the watch ends. Artifacts are
  reports: a write the Prefect API refuses or never answers is a warning, not a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.logging.loggers import LoggingAdapter
from pydantic import BaseModel, Field

from blocks.credentials import DcsCredentials
from blocks.errors import DcsError, MigrationTimeout
from blocks.models import MigrationTask, MigrationTaskStats
from flows import clock
from flows.credentials import DEFAULT_BLOCK_NAME, BlockName, aload_credentials
from flows.events import emit_timed_out, emit_transition
from flows.polling import (
    Outcome,
    Until,
    WatchObserver,
    WatchSettings,
    open_client,
    watch_task,
    watch_tasks,
)
from flows.timeline import add_row, artifact_key


class PrefectObserver(WatchObserver):
    """Writes a watch's changes to Prefect: logs, events and artifacts; nothing per poll."""

    def __init__(
        self,
        project_id: str,
        logger: logging.Logger | LoggingAdapter,
        on_end: Callable[[Outcome], Awaitable[None]] | None = None,
    ) -> None:
        self.project_id = project_id
        self.logger = logger
        self.on_end = on_end
        self.timeline: list[dict[str, Any]] = []
        self._unknown_warned: set[str] = set()
        self._progress: dict[str, tuple[UUID, int]] = {}

    async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
        old = previous.status_text if previous is not None else None
        new = task.status_text
        self.logger.info(
            "migration task %s (%s): %s -> %s%s",
            task.task_name or "?",
            task.task_id,
            old or "(first look)",
            new,
            f", task_status {task.task_status}" if task.task_status else "",
        )
        if task.is_unknown_status and new not in self._unknown_warned:
            self._unknown_warned.add(new)
            self.logger.warning(
                "migration task %s reports status %r, which this package does not know; "
                "it is treated as still in progress",
                task.task_id,
                new,
            )
        emit_transition(task, old, self.project_id, "watch")
        add_row("watch", task, f"from {old}" if old else "first look")
        await self._full_migration_done(task)
        self.timeline.append(
            {
                "task_id": task.task_id,
                "task_name": task.task_name,
                "at": clock.current().now().isoformat(timespec="seconds"),
                "from": old,
                "to": new,
                "task_status": task.task_status,
            }
        )

    async def progress(self, task: MigrationTask, stats: MigrationTaskStats) -> None:
        if stats.progress_percent is None or task.task_id is None:
            return
        percent = max(0.0, min(100.0, stats.progress_percent))
        known = self._progress.get(task.task_id)
        key = artifact_key("migration-progress", task.task_id)
        try:
            if known is None:
                description = (
                    f"Full migration progress of DCS task {task.task_name or task.task_id}"
                )
                artifact_id = await acreate_progress_artifact(
                    percent, key=key, description=description
                )
                self._progress[task.task_id] = (artifact_id, int(percent))
            elif int(percent) != known[1]:
                await aupdate_progress_artifact(known[0], percent)
                self._progress[task.task_id] = (known[0], int(percent))
        except httpx.HTTPError as error:
            # Not remembered: the next change of percent tries again.
            self._unwritten(key, error)

    async def _full_migration_done(self, task: MigrationTask) -> None:
        """A progress artifact reads 100% once the full migration is over: its last stats
        read, a minute before the status moved on, may have said 99."""
        known = self._progress.get(task.task_id or "")
        if known is not None and known[1] < 100 and (task.ready_for_cutover or task.succeeded):
            await aupdate_progress_artifact(known[0], 100.0)
            self._progress[str(task.task_id)] = (known[0], 100)

    async def heartbeat(self, task_id: str, last: MigrationTask | None, waited: float) -> None:
        known = self._progress.get(task_id)
        self.logger.info(
            "still watching migration task %s after %d min: %s%s",
            task_id,
            waited // 60,
            last.describe() if last is not None else "not read yet",
            f", full migration {known[1]}%" if known is not None else "",
        )

    async def transient_error(self, task_id: str, error: DcsError, streak: int) -> None:
        # Log the start of a streak, then only as it doubles: a long outage is a few lines.
        if streak & (streak - 1) == 0:
            self.logger.warning(
                "reading migration task %s failed (%d in a row), still watching: %s",
                task_id,
                streak,
                error,
            )

    async def notice(self, message: str) -> None:
        self.logger.warning("%s", message)

    async def ended(self, outcome: Outcome) -> None:
        if self.on_end is not None:
            await self.on_end(outcome)

    async def publish_timeline(self, key: str, description: str) -> None:
        """The status timeline as a table artifact (once, at the end of a watch)."""
        if self.timeline:
            try:
                await acreate_table_artifact(self.timeline, key=key, description=description)
            except httpx.HTTPError as error:
                self._unwritten(key, error)

    def _unwritten(self, key: str, error: httpx.HTTPError) -> None:
        # An artifact is a report: the watch's outcome is known without it, and a Prefect
        # server that is down (restarting, upgraded) must not fail a watch of hours.
        self.logger.warning(
            "could not write artifact %s to the Prefect API, the watch goes on: %s", key, error
        )


def _settings(
    until: Until,
    poll_interval_seconds: float,
    timeout_seconds: float,
    max_poll_interval_seconds: float | None,
    max_consecutive_errors: int,
    configure_grace_seconds: float | None,
    track_progress: bool = True,
) -> WatchSettings:
    return WatchSettings(
        until=until,
        poll_interval_seconds=poll_interval_seconds,
        timeout_seconds=timeout_seconds,
        max_poll_interval_seconds=max_poll_interval_seconds,
        max_consecutive_errors=max_consecutive_errors,
        track_progress=track_progress,
        configure_grace_seconds=configure_grace_seconds,
    )


@task(name="watch-migration-task", task_run_name="watch-{task_id}", cache_policy=NO_CACHE)
async def watch_migration_task(
    task_id: str,
    credentials: str | DcsCredentials,
    settings: WatchSettings,
) -> MigrationTask:
    """Poll one migration task until `settings` say it is done: one task run, many polls."""
    logger = get_run_logger()
    block = await aload_credentials(credentials)
    observer = PrefectObserver(block.project_id, logger)
    try:
        async with open_client(block) as client:
            final = await watch_task(client, task_id, settings, observer)
    except MigrationTimeout as timeout:
        last = timeout.last_task
        emit_timed_out(
            task_id,
            last.task_name if last else None,
            timeout.last_status,
            block.project_id,
            settings.timeout_seconds,
        )
        raise
    finally:
        await observer.publish_timeline(
            artifact_key("migration-timeline", task_id), f"Status timeline of DCS task {task_id}"
        )
    logger.info("migration task %s: done waiting (%s)", task_id, final.describe())
    return final


class WatchResult(BaseModel):
    """How one task of `wait_for_migration_tasks` ended (secret-free, safe to persist)."""

    task_id: str
    ok: bool = Field(description="The task reached what the watch waited for.")
    status: str | None = Field(default=None, description="The last status seen, as DCS sent it.")
    task: MigrationTask | None = Field(default=None, description="The last task seen, masked.")
    error_type: str | None = Field(default=None, description="The error class, if it failed.")
    error: str | None = Field(default=None, description="The error message, if it failed.")

    @classmethod
    def of(cls, outcome: Outcome) -> WatchResult:
        """The result of one outcome of the polling engine."""
        task_ = outcome.task.masked() if outcome.task is not None else None
        return cls(
            task_id=outcome.task_id,
            ok=outcome.ok,
            status=task_.raw_status if task_ is not None else None,
            task=task_,
            error_type=type(outcome.error).__name__ if outcome.error else None,
            error=str(outcome.error) if outcome.error else None,
        )


@task(name="watch-migration-tasks", cache_policy=NO_CACHE)
async def watch_migration_tasks(
    task_ids: list[str],
    credentials: str | DcsCredentials,
    settings: WatchSettings,
    max_concurrency: int = 10,
    max_requests_per_second: float = 20.0,
    on_end: Callable[[Outcome], Awaitable[None]] | None = None,
) -> dict[str, WatchResult]:
    """Poll many migration tasks at once over one client: one task run for all of them.

    `on_end` hears each task's outcome as soon as its watch ends, while the others go on
    (the fleet cuts a task over then, not once all are ready). It runs inside the watch:
    hand the outcome on (to a queue), do not act in it.
    """
    logger = get_run_logger()
    block = await aload_credentials(credentials)
    observer = PrefectObserver(block.project_id, logger, on_end)
    try:
        async with open_client(block, max_connections=max_concurrency) as client:
            outcomes = await watch_tasks(
                client,
                task_ids,
                settings,
                observer,
                max_concurrency=max_concurrency,
                max_requests_per_second=max_requests_per_second,
            )
    finally:
        await observer.publish_timeline(
            "dcs-migration-timeline-many", f"Status timeline of {len(task_ids)} DCS tasks"
        )
    results = {task_id: WatchResult.of(outcome) for task_id, outcome in outcomes.items()}
    for result in results.values():
        if isinstance(result_error := outcomes[result.task_id].error, MigrationTimeout):
            last = result_error.last_task
            emit_timed_out(
                result.task_id,
                last.task_name if last else None,
                result_error.last_status,
                block.project_id,
                settings.timeout_seconds,
            )
    done = sum(result.ok for result in results.values())
    logger.info(
        "watched %d migration tasks: %d done, %d not", len(results), done, len(results) - done
    )
    return results


@flow(name="wait-for-migration-task", flow_run_name="wait-for-{task_id}")
async def wait_for_migration_task(
    task_id: str,
    credentials: BlockName = DEFAULT_BLOCK_NAME,
    until: Until = "auto",
    poll_interval_seconds: float = 15.0,
    timeout_seconds: float = 86400.0,
    max_poll_interval_seconds: float | None = None,
    max_consecutive_errors: int = 20,
    configure_grace_seconds: float | None = 300.0,
) -> MigrationTask:
    """Wait for a DCS migration task to finish, or to be ready for cutover.

    Returns the final task (Redis passwords masked). Raises `MigrationFailed` on a failure
    status, `MigrationTimeout` at the deadline, `MigrationTaskNotFound` at once if the
    task does not exist, `MigrationUnreachable` after too many failed polls in a row, and
    `MigrationNotConfigured` when the task is still RUNNING (pending configuration) after
    `configure_grace_seconds`.

    Args:
        task_id: The migration task's ID, as the DCS console shows it.
        credentials: Name of the saved DcsCredentials block (a name, never the block).
        until: "auto" stops at success, failure or ready for cutover; "success" treats an
            incremental sync as still in progress; "ready_for_cutover" stops at
            incremental sync (or success).
        poll_interval_seconds: Seconds between two looks at the task.
        timeout_seconds: Give up (MigrationTimeout) after this many seconds.
        max_poll_interval_seconds: If set, the interval grows while nothing changes, up to this.
        max_consecutive_errors: Fail after this many failed polls in a row.
        configure_grace_seconds: Fail (MigrationNotConfigured) if the task is still RUNNING,
            which DCS calls pending configuration, this many seconds after the watch
            began: configure it with set_online_migration_task or in the DCS console
            (empty: wait for it until the timeout).
    """
    settings = _settings(
        until,
        poll_interval_seconds,
        timeout_seconds,
        max_poll_interval_seconds,
        max_consecutive_errors,
        configure_grace_seconds,
    )
    return await watch_migration_task(task_id, credentials, settings)


@flow(name="wait-for-migration-tasks")
async def wait_for_migration_tasks(
    task_ids: list[str],
    credentials: BlockName = DEFAULT_BLOCK_NAME,
    until: Until = "auto",
    poll_interval_seconds: float = 15.0,
    timeout_seconds: float = 86400.0,
    max_poll_interval_seconds: float | None = None,
    max_consecutive_errors: int = 20,
    max_concurrency: int = 10,
    max_requests_per_second: float = 20.0,
    configure_grace_seconds: float | None = 300.0,
) -> dict[str, WatchResult]:
    """Wait for many DCS migration tasks at once; one task's end never stops the others.

    Returns a `WatchResult` per task id: `ok`, the last status and task (masked), and the
    error that ended its watch, if any. The flow itself succeeds even when tasks failed.

    Args:
        task_ids: The migration tasks' IDs.
        credentials: Name of the saved DcsCredentials block (a name, never the block).
        until: "auto", "success" or "ready_for_cutover" (see wait_for_migration_task).
        poll_interval_seconds: Seconds between two rounds of looks.
        timeout_seconds: Give up on the tasks still pending after this many seconds.
        max_poll_interval_seconds: If set, the interval grows while nothing changes, up to this.
        max_consecutive_errors: A task fails after this many failed reads in a row.
        max_concurrency: At most this many requests in flight at once.
        max_requests_per_second: At most this many requests started per second.
        configure_grace_seconds: A task still RUNNING (pending configuration) this many
            seconds after the watch began fails with MigrationNotConfigured (empty: never).
    """
    settings = _settings(
        until,
        poll_interval_seconds,
        timeout_seconds,
        max_poll_interval_seconds,
        max_consecutive_errors,
        configure_grace_seconds,
        track_progress=False,
    )
    return await watch_migration_tasks(
        task_ids, credentials, settings, max_concurrency, max_requests_per_second
    )


__all__ = [
    "PrefectObserver",
    "WatchResult",
    "artifact_key",
    "wait_for_migration_task",
    "wait_for_migration_tasks",
    "watch_migration_task",
    "watch_migration_tasks",
]
