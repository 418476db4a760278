"""Pydantic models of the DCS data-migration response bodies.

The service is loose about types (numbers arrive as strings, dates in three formats,
status spellings vary) and sends Redis passwords in plain text, so these models
accept every shape seen in the wild, never drop a field they do not know, and hide
secrets: passwords are `SecretStr`, and `masked()` returns a copy that is safe to log,
pickle or return from a Prefect task. A number or date that does not parse (say
`bandwidth_limit_mb: "unlimited"`) is kept as the text sent instead of failing the read:
such fields are typed `int | str | None` (or `float`, `bool`, `datetime` for `int`).

>>> task = MigrationTask.model_validate(
...     {"task_id": "a276c1ff", "status": "INCRMIGEATING", "source_instance": {"port": "6379"}}
... )
>>> task.status, task.raw_status, task.ready_for_cutover, task.source_instance.port
(<MigrationStatus.INCRMIGRATING: 'INCRMIGRATING'>, 'INCRMIGEATING', True, 6379)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import core_schema

from blocks.redaction import MASKED, is_secret_name

#: `task_status` values while the instance IPs are switched (the vocabulary is open).
EXCHANGING = "EXCHANGING"
EXCHANGE_SUCCESS = "EXCHANGE_SUCCESS"
ROLLBACK_SUCCESS = "ROLLBACK_SUCCESS"


class MigrationStatus(str, Enum):
    """The `status` of a migration task; `parse()` maps anything unlisted to UNKNOWN."""

    SUCCESS = "SUCCESS"
    MIGRATION_SUCCESS = "MIGRATION_SUCCESS"
    FAILED = "FAILED"
    MIGRATION_FAILED = "MIGRATION_FAILED"
    MIGRATING = "MIGRATING"
    FULLMIGRATING = "FULLMIGRATING"
    INCRMIGRATING = "INCRMIGRATING"
    # The live service and Huawei's Terraform provider spell it this way, the docs the
    # other: an Enum alias makes both names one member.
    INCRMIGEATING = "INCRMIGRATING"
    TERMINATED = "TERMINATED"
    TERMINATING = "TERMINATING"
    RUNNING = "RUNNING"
    CREATING = "CREATING"
    RELEASED = "RELEASED"
    ERROR = "ERROR"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        # f"{status}" says "SUCCESS" on every Python, not "MigrationStatus.SUCCESS" (3.12+).
        return self.value

    @classmethod
    def parse(cls, raw: str | None) -> MigrationStatus:
        """The status named by `raw` (any case, alias or padding); UNKNOWN, never an error."""
        if not isinstance(raw, str):
            return cls.UNKNOWN
        # Look up by name, not value, so that the INCRMIGEATING alias is found too.
        return cls.__members__.get(raw.strip().upper(), cls.UNKNOWN)


IN_PROGRESS_STATUSES = frozenset(
    {
        MigrationStatus.RUNNING,
        MigrationStatus.MIGRATING,
        MigrationStatus.FULLMIGRATING,
        MigrationStatus.TERMINATING,
        MigrationStatus.CREATING,
    }
)
SUCCEEDED_STATUSES = frozenset({MigrationStatus.SUCCESS, MigrationStatus.MIGRATION_SUCCESS})
FAILED_STATUSES = frozenset(
    {
        MigrationStatus.FAILED,
        MigrationStatus.MIGRATION_FAILED,
        MigrationStatus.TERMINATED,
        MigrationStatus.RELEASED,
        MigrationStatus.ERROR,
        MigrationStatus.DELETED,
    }
)
# Incremental sync never ends by itself: this is the moment to cut over.
READY_FOR_CUTOVER_STATUSES = frozenset({MigrationStatus.INCRMIGRATING})


class StatusMeaning(str, Enum):
    """What a `status` means to a watcher, in the words every message uses.

    Decided by the status sets above (one set per meaning); UNKNOWN for a status this
    package does not know.
    """

    READY_FOR_CUTOVER = "ready for cutover"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IN_PROGRESS = "in progress"
    UNKNOWN = "unknown status"

    def __str__(self) -> str:
        return self.value


_MEANINGS = {
    status: meaning
    for statuses, meaning in (
        (READY_FOR_CUTOVER_STATUSES, StatusMeaning.READY_FOR_CUTOVER),
        (SUCCEEDED_STATUSES, StatusMeaning.SUCCEEDED),
        (FAILED_STATUSES, StatusMeaning.FAILED),
        (IN_PROGRESS_STATUSES, StatusMeaning.IN_PROGRESS),
    )
    for status in statuses
}


class IpExchange(str, Enum):
    """Where the IP exchange stands, as `task_status` says, in the words messages use."""

    UNDER_WAY = "IP exchange under way"
    DONE = "IP exchange done"
    ROLLED_BACK = "IP exchange rolled back"

    def __str__(self) -> str:
        return self.value


# `task_status` is an open vocabulary: any other value says nothing about the exchange.
_EXCHANGES = {
    EXCHANGING: IpExchange.UNDER_WAY,
    EXCHANGE_SUCCESS: IpExchange.DONE,
    ROLLBACK_SUCCESS: IpExchange.ROLLED_BACK,
}


# --- lenient value types --------------------------------------------------------------
# Validators raise only ValueError: pydantic turns that into a ValidationError, while
# a TypeError or OverflowError would escape the parse as itself.


def _blank_as_none(value: object) -> object:
    """An empty (or blank) string means "not set" in this API."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _number(value: object) -> object:
    # Python (and so pydantic) counts True as 1; a port of True is a bug, not a number.
    if isinstance(value, bool):
        msg = f"expected a number, got {value!r}"
        raise ValueError(msg)
    return _blank_as_none(value)


def _percentage(value: object) -> object:
    value = _number(value)
    if isinstance(value, str):
        return value.removesuffix("%").rstrip() or None
    return value


_DATE_PREFIX = re.compile(r"\d{4}[-/]\d{2}[-/]\d{2}")


def _date_text(value: object) -> object:
    """Accept `2019/10/22 14:44:30` by rewriting it to ISO; leave the rest to pydantic."""
    value = _number(value)
    if isinstance(value, str):
        # Without this check pydantic would read "2019" as a Unix timestamp.
        if not _DATE_PREFIX.match(value):
            msg = f"expected a date like 2019-10-22 14:44:30, got {value!r}"
            raise ValueError(msg)
        return value[:10].replace("/", "-") + value[10:]
    return value


def _as_utc(value: datetime | None) -> datetime | None:
    """Naive times are UTC; aware ones are converted, so all compare and print alike."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 has no UTC equivalent
        msg = f"date {value.isoformat()} is out of range in UTC"
        raise ValueError(msg) from None


def _secret_or_none(value: object) -> object:
    return None if value == "" else value


def _as_sent(value: object) -> str:
    """A value that did not parse, as text: strings unchanged, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not from JSON: a Python object passed in by hand
        return str(value)


def _parsed_or_as_sent(value: object, parse: ValidatorFunctionWrapHandler) -> object:
    try:
        return parse(value)
    except ValidationError:
        return _as_sent(value)


class _OrAsSent:
    """Field metadata: validate as `parsed`; a value that fails is kept as sent, as text.

    The API reference and the official SDK type these fields as strings, so a value that
    is no number (or no date we know) is a valid answer, and a watch must not fail on a
    field it does not need: the field holds the parsed value when there is one, else the
    text. The declared type (`int | str | None`) makes every reader handle both.
    """

    def __init__(self, parsed: object) -> None:
        self.parsed = parsed

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_wrap_validator_function(
            _parsed_or_as_sent,
            handler.generate_schema(self.parsed),
            json_schema_input_schema=handler.generate_schema(source),
            # The value is either kind: serialize whichever it turned out to be.
            serialization=core_schema.simple_ser_schema("any"),
        )


_FiniteFloat = Annotated[float, AllowInfNan(False)]
# Strict: a page's total drives paging (the SDK types it int too).
_Int = Annotated[int | None, BeforeValidator(_number)]
_LenientInt = Annotated[int | str | None, _OrAsSent(_Int)]
_LenientFloat = Annotated[
    float | str | None, _OrAsSent(Annotated[_FiniteFloat | None, BeforeValidator(_number)])
]
_LenientPercent = Annotated[
    float | str | None, _OrAsSent(Annotated[_FiniteFloat | None, BeforeValidator(_percentage)])
]
_LenientBool = Annotated[
    bool | str | None, _OrAsSent(Annotated[bool | None, BeforeValidator(_blank_as_none)])
]
_LenientDatetime = Annotated[
    datetime | str | None,
    _OrAsSent(Annotated[datetime | None, BeforeValidator(_date_text), AfterValidator(_as_utc)]),
]
_Password = Annotated[SecretStr | None, BeforeValidator(_secret_or_none)]


def _none_as_empty(value: object) -> object:
    return [] if value is None else value


# A page's item list is never None, so callers can iterate it without a check.
_NoneAsEmpty = BeforeValidator(_none_as_empty)


# --- masking --------------------------------------------------------------------------

_MASKED_SECRET = SecretStr(MASKED)
_M = TypeVar("_M", bound="DcsModel")


def _masked_value(key: object, value: Any) -> Any:
    """`value` with secrets masked; containers and models are rebuilt, so nothing is shared."""
    # The common cases first: most values are None or short strings.
    if value is None:
        return None
    secret_name = isinstance(key, str) and is_secret_name(key)
    if isinstance(value, str):
        return MASKED if value and secret_name else value
    if isinstance(value, SecretStr):
        return _MASKED_SECRET if value.get_secret_value() else value
    if secret_name:
        return MASKED
    if isinstance(value, DcsModel):
        return _masked_model(value)
    if isinstance(value, list):
        return [_masked_value(None, item) for item in value]
    if isinstance(value, dict):
        return {k: _masked_value(k, v) for k, v in value.items()}
    return value  # immutable: str, int, float, bool, None, datetime, enum


def _masked_model(model: _M) -> _M:
    # A shallow copy has its own field and extra dicts; every mutable value in them is
    # then replaced by a rebuilt one. That is a deep copy at a fraction of deepcopy's cost,
    # and it leaves `model_fields_set` as it was (model_copy(update=...) would not).
    copy = model.model_copy()
    for values in (copy.__dict__, copy.model_extra or {}):
        for key, value in values.items():
            values[key] = _masked_value(key, value)
    return copy


class DcsModel(BaseModel):
    """The base of every response model: extra fields kept, `masked()` for safe copies."""

    # extra="allow": a field the service adds later is kept (in `model_extra`), not dropped.
    # coerce_numbers_to_str: ids, names and db indexes sometimes arrive as numbers.
    # populate_by_name: no field has an alias today; if one gets one, names still work.
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)

    def masked(self: _M) -> _M:
        """A deep copy with every password, and every extra field whose name looks secret
        (password, pwd, secret, token, credential), at any depth, replaced by `MASKED`."""
        return _masked_model(self)

    def has_unmasked_secrets(self) -> bool:
        """Whether `masked()` would change anything, i.e. whether this copy may leak."""
        return self.masked() != self

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # repr() ends up in logs and tracebacks: always print the masked copy, so that an
        # unknown secret-looking field cannot leak there even from an unmasked model.
        return BaseModel.__repr_args__(_masked_model(self))


# --- the shapes -----------------------------------------------------------------------


class BackupFile(DcsModel):
    """One backup file to import (Table 4, "Files")."""

    file_name: str | None = None
    size: _LenientInt = None
    update_at: _LenientDatetime = None


class BackupFiles(DcsModel):
    """The backup files of a backup-file import (Table 3, "BackupFilesBody")."""

    file_source: str | None = None
    bucket_name: str | None = None
    files: list[BackupFile] | None = None
    backup_id: str | None = None


class _RedisInstance(DcsModel):
    addrs: str | None = None
    password: _Password = None
    task_status: str | None = None
    id: str | None = None
    ip: str | None = None
    port: _LenientInt = None
    name: str | None = None
    proxy_multi_db: _LenientBool = None
    db: str | None = None  # a database index ("0") or, on some proxies, a name


class SourceInstance(_RedisInstance):
    """The source Redis of a migration (Table 5, "SourceInstanceBody")."""


class TargetInstance(_RedisInstance):
    """The target DCS instance of a migration (Table 6, "TargetInstanceBody")."""


def _parse_status(value: object) -> MigrationStatus:
    return MigrationStatus.parse(value if isinstance(value, str) else None)


def _status_text(value: object) -> str | None:
    if isinstance(value, MigrationStatus):
        return value.value
    if value is None or isinstance(value, str):
        return value
    return str(value)


class _TaskFields(DcsModel):
    """What a task's details and a list item share, including all the status logic."""

    task_id: str | None = None
    task_name: str | None = None
    description: str | None = None
    # Status design: `status` is always a MigrationStatus, so the watcher can branch on it
    # and a JSON dump only ever holds enum values; `raw_status` is a plain field beside it
    # with the text exactly as the service sent it, so a new status ("PAUSED") becomes
    # UNKNOWN without losing the word, and it travels in every dump. When the input
    # already has raw_status (one of our own dumps) it is kept, so dumps round-trip.
    status: Annotated[MigrationStatus, BeforeValidator(_parse_status)] = MigrationStatus.UNKNOWN
    raw_status: str | None = None
    migration_type: str | None = None
    migration_method: str | None = None
    ecs_tenant_private_ip: str | None = None
    created_at: _LenientDatetime = None
    released_at: _LenientDatetime = None
    version: str | None = None
    resume_mode: str | None = None
    supported_features: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_status(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "status" in data and "raw_status" not in data:
            return {**data, "raw_status": _status_text(data.get("status"))}
        return data

    @property
    def succeeded(self) -> bool:
        """The task ended well (SUCCESS, MIGRATION_SUCCESS)."""
        return self.status in SUCCEEDED_STATUSES

    @property
    def failed(self) -> bool:
        """The task ended badly, or was stopped, released or deleted."""
        return self.status in FAILED_STATUSES

    @property
    def is_terminal(self) -> bool:
        """The task will not change status by itself any more."""
        return self.succeeded or self.failed

    @property
    def ready_for_cutover(self) -> bool:
        """Incremental sync is running: traffic can be switched to the target."""
        return self.status in READY_FOR_CUTOVER_STATUSES

    @property
    def in_progress(self) -> bool:
        """The task is working towards a terminal or ready-for-cutover status."""
        return self.status in IN_PROGRESS_STATUSES

    @property
    def is_unknown_status(self) -> bool:
        """The service sent a status this package does not know (see `raw_status`)."""
        return self.status is MigrationStatus.UNKNOWN

    @property
    def meaning(self) -> StatusMeaning:
        """What the status means, in words: "ready for cutover", "succeeded", ..."""
        return _MEANINGS.get(self.status, StatusMeaning.UNKNOWN)

    @property
    def status_text(self) -> str:
        """The status to show in a log, event, artifact or terminal: as DCS sent it.

        One spelling everywhere: INCRMIGEATING stays INCRMIGEATING, though `status` is
        `MigrationStatus.INCRMIGRATING`. The enum's value only when DCS sent no status.
        """
        return self.raw_status or self.status.value

    def describe(self) -> str:
        """A short label for messages, e.g. ``migration1 (a276c1ff...) INCRMIGEATING``."""
        task_id = self.task_id or "?"
        short_id = task_id if len(task_id) <= 8 else f"{task_id[:8]}..."
        status = self.status_text
        if self.is_unknown_status and self.raw_status:
            status = f"{self.raw_status!r} ({self.meaning})"
        return f"{self.task_name or '(unnamed)'} ({short_id}) {status}"


class MigrationTask(_TaskFields):
    """The details of one migration task (show_migration_task, Table 2)."""

    backup_files: BackupFiles | None = None
    network_type: str | None = None
    source_instance: SourceInstance | None = None
    target_instance: TargetInstance | None = None
    updated_at: _LenientDatetime = None
    tenant_vpc_id: str | None = None
    tenant_subnet_id: str | None = None
    tenant_security_group_id: str | None = None
    bandwidth_limit_mb: _LenientInt = None
    task_status: str | None = None

    @property
    def ip_exchange(self) -> IpExchange | None:
        """Where the IP exchange stands; None when `task_status` says nothing about one."""
        return _EXCHANGES.get((self.task_status or "").strip().upper())

    @property
    def exchanging(self) -> bool:
        """The instance IPs are being switched (`task_status` is EXCHANGING)."""
        return self.ip_exchange is IpExchange.UNDER_WAY

    @property
    def stage(self) -> StatusMeaning | IpExchange:
        """Where the task stands, in words: the IP exchange's state once one began, else
        what the status means. After the exchange, incremental sync often goes on, so the
        status alone would still say "ready for cutover"."""
        return self.ip_exchange or self.meaning


class MigrationTaskSummary(_TaskFields):
    """One item of list_migration_tasks (the SDK's MigrationTaskList)."""

    data_source: str | None = None
    source_instance_name: str | None = None
    source_instance_id: str | None = None
    target_instance_addrs: str | None = None
    target_instance_name: str | None = None
    target_instance_id: str | None = None
    source_instance_status: str | None = None
    target_instance_status: str | None = None
    source_instance_subnet_id: str | None = None
    target_instance_subnet_id: str | None = None
    source_instance_spec_code: str | None = None
    target_instance_spec_code: str | None = None
    error_message: str | None = None

    def as_task(self) -> MigrationTask:
        """This item as a `MigrationTask`, as far as a list shows it: the shared fields,
        each instance's id and name (and the target's address) in `source_instance` and
        `target_instance`, every other list field kept as an extra field.

        >>> item = MigrationTaskSummary(task_id="t", status="FULLMIGRATING", target_instance_id="d")
        >>> task = item.as_task()
        >>> task.status, task.target_instance.id, task.source_instance.id
        (<MigrationStatus.FULLMIGRATING: 'FULLMIGRATING'>, 'd', None)
        """
        data = self.model_dump(exclude=set(_INSTANCE_FIELDS))
        for side, fields in (
            ("source_instance", _SOURCE_FIELDS),
            ("target_instance", _TARGET_FIELDS),
        ):
            data[side] = {name: getattr(self, field) for field, name in fields.items()}
        return MigrationTask.model_validate(data)


# How a list item's flat instance fields map onto the details' nested instances.
_SOURCE_FIELDS = {"source_instance_id": "id", "source_instance_name": "name"}
_TARGET_FIELDS = {
    "target_instance_id": "id",
    "target_instance_name": "name",
    "target_instance_addrs": "addrs",
}
_INSTANCE_FIELDS = {**_SOURCE_FIELDS, **_TARGET_FIELDS}


class MigrationTaskList(DcsModel):
    """A page of list_migration_tasks; `count` is the total across pages."""

    count: _Int = None
    migration_tasks: Annotated[list[MigrationTaskSummary], _NoneAsEmpty] = Field(
        default_factory=list
    )


class MigrationTaskStats(DcsModel):
    """Progress counters of a running migration (show_migration_task_stats)."""

    full_migration_progress: _LenientPercent = None  # a percentage: 45.5 means 45.5 %
    offset: _LenientInt = None
    source_dbsize: _LenientInt = None
    target_dbsize: _LenientInt = None
    target_input_kbps: _LenientFloat = None
    target_ops: _LenientFloat = None
    is_migrating: _LenientBool = None

    @property
    def progress_percent(self) -> float | None:
        """`full_migration_progress` as a number; None when absent or not a number.

        >>> MigrationTaskStats(full_migration_progress="45.5%").progress_percent
        45.5
        >>> MigrationTaskStats(full_migration_progress="n/a").progress_percent is None
        True
        """
        progress = self.full_migration_progress
        return progress if isinstance(progress, float) else None


class MigrationLog(DcsModel):
    """One line of a migration task's log."""

    created_at: _LenientDatetime = None
    log_level: str | None = None
    message: str | None = None
    log_code: str | None = None
    keyword: list[str] | None = None


class MigrationTaskLogs(DcsModel):
    """A page of list_migration_task_logs; `log_num` is the total across pages."""

    log_num: _Int = None
    migration_logs: Annotated[list[MigrationLog], _NoneAsEmpty] = Field(default_factory=list)


# --- answers to the calls that change tasks -------------------------------------------


class OnlineMigrationTaskCreated(DcsModel):
    """The answer to create_online_migration_task: the new task's id, as `instance_id`."""

    instance_id: str | None = None

    @property
    def task_id(self) -> str | None:
        """The new task's id (DCS calls it `instance_id` here, and `task_id` everywhere else)."""
        return self.instance_id


class MigrationTaskAccepted(DcsModel):
    """The answer to create_migration_task and set_online_migration_task: id, name, status."""

    id: str | None = None
    name: str | None = None
    status: Annotated[MigrationStatus, BeforeValidator(_parse_status)] = MigrationStatus.UNKNOWN
    raw_status: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_status(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "status" in data and "raw_status" not in data:
            return {**data, "raw_status": _status_text(data.get("status"))}
        return data

    @property
    def task_id(self) -> str | None:
        """The task's id (`id` in this answer)."""
        return self.id


class DeletedMigrationTasks(DcsModel):
    """The answer to delete_migration_task: the ids DCS deleted."""

    task_id_list: Annotated[list[str], _NoneAsEmpty] = Field(default_factory=list)


class MigrationTaskActionResult(DcsModel):
    """What a batch stop or restart did to one task: `result`, and an error if it failed."""

    result: str | None = None
    task_id: str | None = None
    error_msg: str | None = None
    error_code: str | None = None

    @property
    def succeeded(self) -> bool:
        """DCS accepted the action for this task (`result` is "success")."""
        return (self.result or "").strip().lower() == "success"


class MigrationTaskActionResults(DcsModel):
    """The answer to batch_stop_migration_tasks and batch_restart_online_migration_tasks."""

    migration_tasks: Annotated[list[MigrationTaskActionResult], _NoneAsEmpty] = Field(
        default_factory=list
    )

    @property
    def failed(self) -> list[MigrationTaskActionResult]:
        """The tasks DCS did not act on (each with its error code and message)."""
        return [result for result in self.migration_tasks if not result.succeeded]


__all__ = [
    "EXCHANGE_SUCCESS",
    "EXCHANGING",
    "FAILED_STATUSES",
    "IN_PROGRESS_STATUSES",
    "MASKED",
    "READY_FOR_CUTOVER_STATUSES",
    "ROLLBACK_SUCCESS",
    "SUCCEEDED_STATUSES",
    "BackupFile",
    "BackupFiles",
    "DcsModel",
    "DeletedMigrationTasks",
    "IpExchange",
    "MigrationLog",
    "MigrationStatus",
    "MigrationTask",
    "MigrationTaskAccepted",
    "MigrationTaskActionResult",
    "MigrationTaskActionResults",
    "MigrationTaskList",
    "MigrationTaskLogs",
    "MigrationTaskStats",
    "MigrationTaskSummary",
    "OnlineMigrationTaskCreated",
    "SourceInstance",
    "StatusMeaning",
    "TargetInstance",
]
