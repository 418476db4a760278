"""`migration_sensor`: one quick look at many migration tasks, a Prefect event per change.

Meant for a schedule every 1-5 minutes. Each run lists the project's migration tasks a page
at a time (one request per page, details only for watched tasks missing from the list),
compares each status with the one recorded by the previous run, emits the events of
`flows.events` for every change, records the new statuses and exits: no run waits for a
migration, so no worker slot is held while one runs for days. Automations on
`dcs.migration.ready-for-cutover`, `.succeeded` or `.failed` take it from there.

How it keeps state, and why:

- The last status of each task lives in a Prefect Variable (default
  `dcs-migration-sensor-state`) as a JSON object `{task_id: raw_status}`: status strings
  only, never a secret. Prefect caps a Variable's value at 5,000 characters (about 90 tasks),
  so a larger state continues in `<name>--2`, `<name>--3`, ... Use one Variable per sensor
  deployment, and let only one run of it go at a time (a deployment `concurrency_limit: 1`):
  two runs reading the same state would both emit the same change.
- The first time a task is seen, its transition is emitted with `old_status` None. Then an
  automation fires for a task that was already ready for cutover (or finished) when the
  sensor was first deployed, rather than staying silent until its next change. To start
  without that burst, scope the sensor with `task_ids` or `name_filter`.
- Events go out first, the record is written after. A DCS error in the middle of a check
  (after the client's own retries) still emits and records the changes of the tasks that
  were seen, leaves every other task's record as it was, and then fails the run; the next
  run catches up. So no change is lost or emitted twice, unless the process dies between
  emitting and recording: then the next run emits those changes again (at least once).
  Tasks outside the selection keep their record untouched.
- A watched task that is missing from the list is looked up by id; if DCS says it does not
  exist (DCS.4133) its status becomes DELETED, which is a failure status: one
  `status-changed` + `failed`, whatever the status before. A listed id keeps its DELETED
  record (so it costs no request next time); a task watched by `name_filter`, or as one of
  all, is forgotten once its deletion was announced: it can never come back to the list.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.types import MAX_VARIABLE_NAME_LENGTH, MAX_VARIABLE_VALUE_LENGTH
from prefect.variables import Variable

from blocks.client import AsyncDcsClient, validate_path_parameter
from blocks.credentials import DcsCredentials
from blocks.errors import DcsError, DcsValidationError, MigrationTaskNotFound
from blocks.models import MigrationStatus, MigrationTask, MigrationTaskSummary
from blocks.retry import RetryPolicy
from flows import clock
from flows.credentials import DEFAULT_BLOCK_NAME, BlockName, aload_credentials
from flows.events import emit_transition
from flows.polling import confirm_listed

DEFAULT_STATE_VARIABLE = "dcs-migration-sensor-state"
#: Tasks per list request.
PAGE_SIZE = 100
#: A sensor runs again in minutes: give up on a request sooner than a watcher would, and
#: let the next run catch up, rather than hold a worker slot through an outage.
SENSOR_RETRY = RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=5.0, max_elapsed_seconds=20)
#: Room left under Prefect's limit on a Variable's value, for any difference in encoding.
_PART_BUDGET = MAX_VARIABLE_VALUE_LENGTH - 200
_PART_SEPARATOR = "--"
# Leaves room for the `--N` suffix of the continuation Variables.
_MAX_STATE_VARIABLE_LENGTH = MAX_VARIABLE_NAME_LENGTH - 10
_VARIABLE_NAME = re.compile(r"[a-z0-9_-]+")
_DELETED = MigrationStatus.DELETED.value

AnyTask = MigrationTask | MigrationTaskSummary


# --- what to watch --------------------------------------------------------------------


@dataclass(frozen=True)
class _Selection:
    """The tasks a sensor watches: listed ids, names matching a glob, or all."""

    task_ids: tuple[str, ...] | None = None
    name_filter: str | None = None

    def wants(self, item: AnyTask) -> bool:
        if self.task_ids is not None:
            return item.task_id in self.task_ids
        if self.name_filter is not None:
            return fnmatchcase(item.task_name or "", self.name_filter)
        return True

    def describe(self) -> str:
        """A short label for messages, as `MigrationTask.describe()` is for a task."""
        if self.task_ids is not None:
            return f"{len(self.task_ids)} listed task(s)"
        if self.name_filter is not None:
            return f"tasks named like {self.name_filter!r}"
        return "every task of the project"


def _selection(task_ids: list[str] | None, name_filter: str | None) -> _Selection:
    if task_ids is not None and name_filter is not None:
        msg = (
            f"give task_ids or name_filter, not both (got task_ids={task_ids!r} and "
            f"name_filter={name_filter!r})"
        )
        raise DcsValidationError(msg)
    if task_ids is not None:
        if not task_ids:
            msg = (
                "task_ids is an empty list, so there is nothing to watch; leave it unset "
                "(None) to watch every task of the project"
            )
            raise DcsValidationError(msg)
        for task_id in task_ids:
            validate_path_parameter("task_id", task_id)
        return _Selection(task_ids=tuple(dict.fromkeys(task_ids)))
    if name_filter is not None and not name_filter.strip():
        msg = (
            f"name_filter {name_filter!r} is blank and would match no task; leave it unset "
            f"(None) to watch every task of the project"
        )
        raise DcsValidationError(msg)
    return _Selection(name_filter=name_filter)


def _check_state_variable(name: str) -> None:
    if not _VARIABLE_NAME.fullmatch(name) or len(name) > _MAX_STATE_VARIABLE_LENGTH:
        msg = (
            f"state_variable {name!r} is not a valid Prefect Variable name: use lowercase "
            f"letters, digits, '-' and '_', at most {_MAX_STATE_VARIABLE_LENGTH} characters"
        )
        raise DcsValidationError(msg)


# --- the record of last statuses, in Prefect Variables ---------------------------------


def _part_name(name: str, number: int) -> str:
    return name if number == 1 else f"{name}{_PART_SEPARATOR}{number}"


def _entry_size(task_id: str, status: str) -> int:
    # As Prefect measures it: compact JSON, UTF-8 bytes, plus a comma.
    text = json.dumps({task_id: status}, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode()) - 2 + 1


def _split(state: dict[str, str]) -> list[dict[str, str]]:
    """`state` in parts that each fit in one Variable; always at least one part."""
    parts: list[dict[str, str]] = [{}]
    size = 2
    for task_id, status in sorted(state.items()):
        entry = _entry_size(task_id, status)
        if parts[-1] and size + entry > _PART_BUDGET:
            parts.append({})
            size = 2
        parts[-1][task_id] = status
        size += entry
    return parts


@dataclass
class _Record:
    """The statuses recorded by the previous run, and how many Variables hold them."""

    name: str
    statuses: dict[str, str] = field(default_factory=dict)
    parts: int = 0


async def _load_record(name: str) -> _Record:
    record = _Record(name)
    while True:
        part_name = _part_name(name, record.parts + 1)
        value = await Variable.aget(part_name)
        if value is None:
            return record
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            msg = (
                f"Prefect Variable {part_name!r} does not hold a JSON object of task id -> "
                f"status, so it was not written by this sensor; pick another state_variable, "
                f"or delete it (`prefect variable unset {part_name}`) to start afresh"
            )
            raise DcsValidationError(msg)
        record.parts += 1
        # After an interrupted write the first parts are the newest: they win.
        for task_id, status in value.items():
            record.statuses.setdefault(task_id, status)


async def _save_record(record: _Record, statuses: dict[str, str]) -> None:
    parts = _split(statuses)
    for number, part in enumerate(parts, start=1):
        await Variable.aset(
            _part_name(record.name, number), part, tags=["dcs-migration-sensor"], overwrite=True
        )
    for number in range(len(parts) + 1, record.parts + 1):
        await Variable.aunset(_part_name(record.name, number))


# --- one look at DCS ------------------------------------------------------------------


@dataclass
class _Look:
    """What one check saw: tasks by id, ids DCS no longer knows, and what stopped it."""

    seen: dict[str, AnyTask] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    error: DcsError | None = None


async def _look(client: AsyncDcsClient, selection: _Selection, recorded: dict[str, str]) -> _Look:
    look = _Look()
    listed: set[str] = set()
    wanted = set(selection.task_ids or ())
    try:
        items = client.iter_migration_tasks(page_size=PAGE_SIZE)
        async with aclosing(items):
            async for item in items:
                if item.task_id is None:
                    continue
                listed.add(item.task_id)
                if selection.wants(item):
                    look.seen[item.task_id] = item
                if wanted and wanted <= look.seen.keys():
                    break  # every listed id found: no need for the remaining pages
        # A task can be missing because it was deleted, or because a deletion shifted the
        # pages between two requests: ask for it by id before calling it deleted.
        if selection.task_ids is not None:
            missing = [i for i in selection.task_ids if i not in look.seen]
        else:
            missing = [i for i in recorded if i not in listed]
        for task_id in missing:
            if recorded.get(task_id) == _DELETED:
                look.deleted.append(task_id)
                continue
            try:
                details = await client.show_migration_task(task_id)
                await confirm_listed(client, details)  # a deleted task may read SUCCESS
            except MigrationTaskNotFound:
                look.deleted.append(task_id)
                continue
            if selection.wants(details):
                look.seen[task_id] = details
    except DcsError as exc:
        look.error = exc
    return look


def _deleted_task(task_id: str) -> MigrationTaskSummary:
    return MigrationTaskSummary.model_validate({"task_id": task_id, "status": _DELETED})


def _transitions(look: _Look, recorded: dict[str, str]) -> Iterable[tuple[AnyTask, str | None]]:
    for task_id, item in look.seen.items():
        if recorded.get(task_id) != item.status_text:
            yield item, recorded.get(task_id)
    for task_id in look.deleted:
        if recorded.get(task_id) != _DELETED:
            yield _deleted_task(task_id), recorded.get(task_id)


def _next_record(look: _Look, recorded: dict[str, str], selection: _Selection) -> dict[str, str]:
    """The record after this look: tasks not seen keep their last recorded status."""
    statuses = dict(recorded)
    statuses.update({task_id: item.status_text for task_id, item in look.seen.items()})
    for task_id in look.deleted:
        if selection.task_ids is None:
            statuses.pop(task_id, None)  # it will never be listed again
        else:
            statuses[task_id] = _DELETED  # it will be asked for again: answer from here
    return statuses


def _transition_line(item: AnyTask, old_status: str | None) -> str:
    before = old_status if old_status is not None else "(first seen)"
    line = (
        f"migration task {item.task_name or '?'} ({item.task_id}): {before} -> {item.status_text}"
    )
    if item.is_unknown_status:
        line += " (a status this package does not know)"
    return line


# No cache: every scheduled run must ask DCS. No retries: the next scheduled run is the retry.
@task(name="check-migration-statuses", cache_policy=NO_CACHE)
async def check_migration_statuses(
    credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME,
    task_ids: list[str] | None = None,
    name_filter: str | None = None,
    state_variable: str = DEFAULT_STATE_VARIABLE,
) -> dict[str, str]:
    """The whole check of `migration_sensor` as one task run; returns {task_id: status}.

    `credentials` is the name of a saved `DcsCredentials` block, or a block; the other
    arguments are those of `migration_sensor`.
    """
    selection = _selection(task_ids, name_filter)
    _check_state_variable(state_variable)
    block = await aload_credentials(credentials)
    logger = get_run_logger()
    record = await _load_record(state_variable)
    time = clock.current()
    client = block.get_async_client(retry=SENSOR_RETRY, sleep=time.sleep, clock=time.monotonic)
    async with client:
        look = await _look(client, selection, record.statuses)

    changes = list(_transitions(look, record.statuses))
    for item, old_status in changes:
        emit_transition(item, old_status, block.project_id, "sensor")
        # A status DCS added later is worth a look, once: on the change to it.
        level = logging.WARNING if item.is_unknown_status else logging.INFO
        logger.log(level, _transition_line(item, old_status))
    statuses = _next_record(look, record.statuses, selection)
    if statuses != record.statuses:
        await _save_record(record, statuses)

    seen = {task_id: item.status_text for task_id, item in look.seen.items()}
    seen.update(dict.fromkeys(look.deleted, _DELETED))
    if look.error is not None:
        then = (
            "the next run catches up"
            if look.error.transient
            else "this will not pass by itself: fix the cause"
        )
        logger.warning(
            f"check of {selection.describe()} stopped after {len(seen)} task(s) seen "
            f"({len(changes)} change(s) emitted and recorded); the other tasks keep their "
            f"recorded status, and {then}: {look.error}"
        )
        raise look.error
    logger.info(
        f"checked {selection.describe()}: {len(seen)} task(s) seen, {len(changes)} change(s)"
    )
    return seen


@flow(name="dcs-migration-sensor")
async def migration_sensor(
    task_ids: list[str] | None = None,
    name_filter: str | None = None,
    credentials: BlockName = DEFAULT_BLOCK_NAME,
    state_variable: str = DEFAULT_STATE_VARIABLE,
) -> dict[str, str]:
    """Check DCS migration tasks once and emit a Prefect event for each change of status.

    For a schedule every 1-5 minutes: one look, then exit. Each change emits
    `dcs.migration.status-changed` plus `ready-for-cutover`, `succeeded` or `failed` when the
    new status calls for it (see `flows.events`), and logs one line. A task seen for the
    first time counts as a change from None. Returns the status of every task it saw.

    Args:
        task_ids: The migration task ids to watch. Leave unset to watch by name_filter, or
            every task of the project.
        name_filter: Watch the tasks whose name matches this shell-style pattern, e.g.
            "prod-*" (case-sensitive; * ? [abc] [!abc]). Not together with task_ids.
        credentials: The name of the DCS Credentials block to use.
        state_variable: The Prefect Variable in which the sensor keeps each task's last
            status between runs; give each sensor deployment its own.

    Example:
        ```python
        from flows.sensor import migration_sensor

        migration_sensor.serve(
            name="prod-sensor", interval=120, parameters={"name_filter": "prod-*"}
        )
        ```
    """
    selection = _selection(task_ids, name_filter)
    _check_state_variable(state_variable)
    block = await aload_credentials(credentials)
    return await check_migration_statuses(
        block,
        task_ids=list(selection.task_ids) if selection.task_ids is not None else None,
        name_filter=selection.name_filter,
        state_variable=state_variable,
    )


__all__ = [
    "DEFAULT_STATE_VARIABLE",
    "PAGE_SIZE",
    "SENSOR_RETRY",
    "check_migration_statuses",
    "migration_sensor",
]
