"""Request bodies of the calls that create, configure, stop and delete migration tasks.

Each model checks every value before anything is sent, and `DcsValidationError` names the
field and the fix. Redis passwords are `SecretStr`: `repr`, `str` and `model_dump` show
them masked, and only `wire()`, the body the client sends, holds them in plain text. The
field names and shapes are those of the official SDK's models (huaweicloudsdkdcs 3.1.219:
`CreateOnlineMigrationTaskBody`, `SetOnlineMigrationTaskBody`, `ConfigMigrationInstanceBody`,
`CreateMigrationTaskBody`, `BackupFilesBody`, `DeleteMigrateTaskRequest`,
`BatchStopMigrationTasksBody`, `BatchRestartOnlineMigrationTasksBody`).

>>> body = parse_request(
...     ConfigureOnlineMigration, "set_online_migration_task",
...     migration_method="incremental", resume_mode="auto", bandwidth_limit_mb=100,
...     source_instance={"addrs": "192.168.1.2:6379", "password": "hunter2"},
...     target_instance={"id": "86157b69"},
... )
>>> body.source_instance
RedisEndpoint(id=None, addrs='192.168.1.2:6379', password=SecretStr('**********'))
>>> body.wire()["source_instance"]["password"], body.wire()["bandwidth_limit_mb"]
('hunter2', '100')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationError,
    model_validator,
)

from blocks.errors import DcsValidationError

#: The largest `bandwidth_limit_mb` the API reference allows (MB/s; "1 to 10,240").
MAX_BANDWIDTH_LIMIT_MB = 10240
#: The most task ids one batch restart may name (the API reference's limit).
MAX_BATCH_TASKS = 50

_IDENTIFIER = re.compile(r"[!-~]{1,128}")
_HOST_PORT = re.compile(r"(?P<host>[^\s:,]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")
_M = TypeVar("_M", bound="RequestModel")


class MigrationMethod(str, Enum):
    """How an online migration copies: once (`full`), or once and then continuously."""

    FULL = "full_amount_migration"
    INCREMENTAL = "incremental_migration"

    def __str__(self) -> str:
        return self.value


class ResumeMode(str, Enum):
    """Whether DCS reconnects by itself after a network failure (`auto`) or waits for you."""

    AUTO = "auto"
    MANUAL = "manual"

    def __str__(self) -> str:
        return self.value


_METHOD_ALIASES = {
    "full": MigrationMethod.FULL,
    "incremental": MigrationMethod.INCREMENTAL,
    **{method.value: method for method in MigrationMethod},
}


def _method(value: object) -> object:
    if isinstance(value, MigrationMethod):
        return value
    if isinstance(value, str) and value.strip().lower() in _METHOD_ALIASES:
        return _METHOD_ALIASES[value.strip().lower()]
    msg = (
        f"must be one of 'full' ({MigrationMethod.FULL.value}) or 'incremental' "
        f"({MigrationMethod.INCREMENTAL.value}: full, then incremental), got {value!r}"
    )
    raise ValueError(msg)


def _resume_mode(value: object) -> object:
    if isinstance(value, ResumeMode):
        return value
    if isinstance(value, str) and value.strip().lower() in {mode.value for mode in ResumeMode}:
        return ResumeMode(value.strip().lower())
    msg = f"must be 'auto' (reconnect by itself) or 'manual', got {value!r}"
    raise ValueError(msg)


def _identifier(value: object) -> object:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        msg = (
            f"must be an id of 1 to 128 printable ASCII characters without spaces, got {value!r}; "
            "copy it exactly as the console or API shows it"
        )
        raise ValueError(msg)
    return value


def _text(value: object) -> object:
    if not isinstance(value, str) or not value.strip():
        msg = f"must be non-empty text, got {value!r}"
        raise ValueError(msg)
    return value


def _addresses(value: object) -> object:
    """`host:port`, or several of them joined by commas (a self-built Redis Cluster)."""
    parts = value.split(",") if isinstance(value, str) else []
    for part in parts:
        match = _HOST_PORT.fullmatch(part.strip())
        if match is None or not 1 <= int(match.group("port")) <= 65535:
            break
    else:
        if parts:
            return ",".join(part.strip() for part in parts)
    msg = f"must be host:port (e.g. 192.168.1.2:6379; several joined by commas), got {value!r}"
    raise ValueError(msg)


def _bandwidth(value: object) -> object:
    if value is None:  # no limit
        return None
    # bool is an int to Python, and "100" is a string: both are mistakes in a config.
    number = isinstance(value, int) and not isinstance(value, bool)
    if number and 1 <= value <= MAX_BANDWIDTH_LIMIT_MB:  # type: ignore[operator]
        return value
    msg = (
        f"must be a positive integer of MB/s from 1 to {MAX_BANDWIDTH_LIMIT_MB} "
        f"(or None for no limit), got {value!r}"
    )
    raise ValueError(msg)


def _password(value: object) -> object:
    if value is None or isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        return SecretStr(value)
    # Never echo the value: it is meant to be a password.
    msg = f"must be a string (or SecretStr), got {type(value).__name__}"
    raise ValueError(msg)


_Id = Annotated[str, BeforeValidator(_identifier)]
_Text = Annotated[str, BeforeValidator(_text)]
_Addrs = Annotated[str, BeforeValidator(_addresses)]
_RedisPassword = Annotated[SecretStr | None, BeforeValidator(_password)]


class RequestModel(BaseModel):
    """A request body: unknown fields refused (a typo is a mistake), frozen once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    def wire(self) -> dict[str, Any]:
        """The JSON body as sent: unset fields left out, passwords in plain text."""
        raise NotImplementedError


class RedisEndpoint(RequestModel):
    """A Redis to migrate from or to: a DCS instance by `id`, or any Redis by `addrs`.

    Exactly one of the two (`ConfigMigrationInstanceBody` in the SDK). `password` only
    when the Redis has one.
    """

    id: _Id | None = None
    addrs: _Addrs | None = None
    password: _RedisPassword = None

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> RedisEndpoint:
        if (self.id is None) == (self.addrs is None):
            msg = (
                "give exactly one of id (a DCS instance) or addrs (host:port of any Redis), "
                f"not {'both' if self.id is not None else 'neither'}"
            )
            raise ValueError(msg)
        return self

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.id is not None:
            body["id"] = self.id
        if self.addrs is not None:
            body["addrs"] = self.addrs
        if self.password is not None:
            body["password"] = self.password.get_secret_value()
        return body

    def secrets(self) -> tuple[str, ...]:
        """The password, to cut out of any error text that might quote it."""
        return () if self.password is None else (self.password.get_secret_value(),)


class CreateOnlineMigration(RequestModel):
    """`POST /v2/{project_id}/migration/instance`: a new online task, in the network given."""

    name: _Text
    description: str | None = None
    vpc_id: _Id
    subnet_id: _Id
    security_group_id: _Id

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ConfigureOnlineMigration(RequestModel):
    """`POST /v2/{project_id}/migration/{task_id}/task`: what a created online task does."""

    migration_method: Annotated[MigrationMethod, BeforeValidator(_method)]
    resume_mode: Annotated[ResumeMode, BeforeValidator(_resume_mode)]
    bandwidth_limit_mb: Annotated[int | None, BeforeValidator(_bandwidth)] = None
    source_instance: RedisEndpoint
    target_instance: RedisEndpoint

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "migration_method": self.migration_method.value,
            "resume_mode": self.resume_mode.value,
        }
        if self.bandwidth_limit_mb is not None:
            # The SDK types it as a string, and sends it so.
            body["bandwidth_limit_mb"] = str(self.bandwidth_limit_mb)
        body["source_instance"] = self.source_instance.wire()
        body["target_instance"] = self.target_instance.wire()
        return body

    def secrets(self) -> tuple[str, ...]:
        return (*self.source_instance.secrets(), *self.target_instance.secrets())


class BackupFile(RequestModel):
    """One file in an OBS bucket to import (`Files` in the SDK)."""

    file_name: _Text
    #: Bytes, or the console's text such as "0.09KB"; sent as a string.
    size: int | str | None = None
    #: When the file last changed, as the OBS console shows it.
    update_at: str | None = None

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"file_name": self.file_name}
        if self.size is not None:
            body["size"] = str(self.size)
        if self.update_at is not None:
            body["update_at"] = self.update_at
        return body


def _file(value: object) -> object:
    return {"file_name": value} if isinstance(value, str) else value


class CreateBackupImport(RequestModel):
    """`POST /v2/{project_id}/migration-task`: import backup files into a DCS instance.

    From files in an OBS bucket (`bucket_name` and `files`), or from a backup record of
    another instance (`backup_id`): one source, not both.
    """

    task_name: _Text
    description: str | None = None
    target_instance: RedisEndpoint
    bucket_name: _Text | None = None
    files: list[BackupFile] | None = None
    backup_id: _Id | None = None

    @model_validator(mode="before")
    @classmethod
    def _file_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("files"), list | tuple):
            return {**data, "files": [_file(item) for item in data["files"]]}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> CreateBackupImport:
        from_obs = self.bucket_name is not None or self.files is not None
        if from_obs and self.backup_id is not None:
            msg = "give bucket_name and files (an OBS import) or backup_id, not both"
            raise ValueError(msg)
        if not from_obs and self.backup_id is None:
            msg = "give bucket_name and files (an OBS import) or backup_id (a backup record)"
            raise ValueError(msg)
        if from_obs and (self.bucket_name is None or not self.files):
            msg = "an OBS import needs both bucket_name and at least one file in files"
            raise ValueError(msg)
        if self.target_instance.id is None:
            msg = "target_instance must be a DCS instance given by id (an import has no addrs)"
            raise ValueError(msg)
        return self

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task_name": self.task_name}
        if self.description is not None:
            body["description"] = self.description
        body["migration_type"] = "backupfile_import"
        # An import is one copy: the API takes no other method for it.
        body["migration_method"] = MigrationMethod.FULL.value
        if self.backup_id is not None:
            body["backup_files"] = {"file_source": "backup_record", "backup_id": self.backup_id}
        else:
            body["backup_files"] = {
                "file_source": "self_build_obs",
                "bucket_name": self.bucket_name,
                "files": [file.wire() for file in self.files or []],
            }
        body["target_instance"] = self.target_instance.wire()
        return body

    def secrets(self) -> tuple[str, ...]:
        return self.target_instance.secrets()


def _unique_ids(limit: int | None) -> AfterValidator:
    def check(ids: list[str]) -> list[str]:
        if not ids:
            msg = "must name at least one migration task id"
            raise ValueError(msg)
        if limit is not None and len(ids) > limit:
            msg = f"names {len(ids)} tasks; send at most {limit} per call"
            raise ValueError(msg)
        repeated = sorted({task_id for task_id in ids if ids.count(task_id) > 1})
        if repeated:
            msg = f"names {repeated} more than once; name each task once"
            raise ValueError(msg)
        return ids

    return AfterValidator(check)


def _id_list(value: object) -> object:
    # A lone string is a sequence of letters: "abc" must not become ["a", "b", "c"].
    if isinstance(value, str) or not isinstance(value, Sequence):
        msg = f"must be a list of task ids, got {type(value).__name__} {value!r}"
        raise ValueError(msg)
    return list(value)


class DeleteTasks(RequestModel):
    """`DELETE /v2/{project_id}/migration-tasks/delete` (`DeleteMigrateTaskRequest`)."""

    task_id_list: Annotated[list[_Id], BeforeValidator(_id_list), _unique_ids(None)]

    def wire(self) -> dict[str, Any]:
        return {"task_id_list": list(self.task_id_list)}


class StopTasks(RequestModel):
    """`POST /v2/{project_id}/migration-task/batch-stop`."""

    migration_tasks: Annotated[list[_Id], BeforeValidator(_id_list), _unique_ids(None)]

    def wire(self) -> dict[str, Any]:
        return {"migration_tasks": list(self.migration_tasks)}


class RestartTasks(RequestModel):
    """`POST /v2/{project_id}/migration-tasks/batch-restart` (at most 50 tasks)."""

    migration_tasks: Annotated[list[_Id], BeforeValidator(_id_list), _unique_ids(MAX_BATCH_TASKS)]

    def wire(self) -> dict[str, Any]:
        return {"migration_tasks": list(self.migration_tasks)}


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def parse_request(model: type[_M], operation: str, /, **values: Any) -> _M:
    """`model` checked from `values`, or a `DcsValidationError` naming each bad field and
    the fix (never a password: inputs are not quoted)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            where = _where(error["loc"])
            text = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                text = "is required"
            elif error["type"] == "extra_forbidden":
                text = "is not a field of this request; check its spelling"
            problems.append(f"{where}: {text}" if where else text)
        msg = f"{operation}: " + "; ".join(problems)
        raise DcsValidationError(msg) from None


__all__ = [
    "MAX_BANDWIDTH_LIMIT_MB",
    "MAX_BATCH_TASKS",
    "BackupFile",
    "ConfigureOnlineMigration",
    "CreateBackupImport",
    "CreateOnlineMigration",
    "DeleteTasks",
    "MigrationMethod",
    "RedisEndpoint",
    "RequestModel",
    "RestartTasks",
    "ResumeMode",
    "StopTasks",
    "parse_request",
]
