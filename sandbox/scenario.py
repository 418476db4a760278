"""What the sandbox plays: migration tasks with a scripted life, credentials, and faults.

A scenario is plain data (YAML, JSON or Python). Durations in a task's script are
*scenario* seconds; `speed` says how many of them pass per real second, so a ten-minute
migration at `speed: 60` takes ten real seconds.

>>> scenario = Scenario(tasks=[MigrationScript.incremental("t1", full_seconds=30)])
>>> [step.status for step in scenario.tasks[0].steps]
['RUNNING', 'FULLMIGRATING', 'INCRMIGEATING']
>>> load_scenario("incremental").tasks[0].task_name
'migration1'
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from sandbox.sync import StatsScript

#: The project every default scenario lives in (32 hex digits, like a real project id).
DEFAULT_PROJECT_ID = "0605767f8d00d5a52f4bc01f1b2d5ac5"
# The sandbox's own fake credentials: they open nothing but the sandbox.
DEFAULT_TOKEN = "MIIsandbox-fixed-token-accepted-by-the-dcs-sandbox"  # noqa: S105
DEFAULT_ACCESS_KEY = "SANDBOXACCESSKEY0000"
DEFAULT_SECRET_KEY = "sandbox-secret-key-0000000000000000000000"  # noqa: S105
DEFAULT_IAM_USERNAME = "sandbox-user"
DEFAULT_IAM_PASSWORD = "sandbox-password"  # noqa: S105
DEFAULT_IAM_DOMAIN_NAME = "sandbox-domain"

#: Route names, as the official SDK names the operations (faults and counters use them).
RouteName = Literal[
    "show_migration_task",
    "show_migration_task_stats",
    "list_migration_tasks",
    "list_migration_task_logs",
    "stop_migration_task",
    "exchange_instance_ip",
    "rollback_exchange_instance_ip",
    "create_token",
    "create_online_migration_task",
    "set_online_migration_task",
    "create_migration_task",
    "stop_migration_task_sync",
    "delete_migration_task",
    "batch_stop_migration_tasks",
    "batch_restart_online_migration_tasks",
]
ROUTES: tuple[RouteName, ...] = (
    "show_migration_task",
    "show_migration_task_stats",
    "list_migration_tasks",
    "list_migration_task_logs",
    "stop_migration_task",
    "exchange_instance_ip",
    "rollback_exchange_instance_ip",
    "create_token",
    "create_online_migration_task",
    "set_online_migration_task",
    "create_migration_task",
    "stop_migration_task_sync",
    "delete_migration_task",
    "batch_stop_migration_tasks",
    "batch_restart_online_migration_tasks",
)

_SCENARIO_DIR = Path(__file__).parent / "scenarios"

#: The documented values (CreateMigrationTask in the DCS API reference): the mode, and the
#: method. A test that needs DCS to send something else can put it in `extra_fields`.
MigrationType = Literal["online_migration", "backupfile_import"]
MigrationMethod = Literal["full_amount_migration", "incremental_migration"]


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate."""


class _Strict(BaseModel):
    # A typo in a scenario file should fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class Step(_Strict):
    """One status of a task's script; the last step lasts for ever (its `seconds` is ignored)."""

    status: str = Field(min_length=1)
    seconds: float | None = Field(default=None, ge=0)
    progress_to: float | None = Field(default=None, ge=0, le=100)


class Instance(BaseModel):
    """A source or target Redis as DCS describes it; extra keys are served as they are."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    name: str | None = None
    ip: str | None = None
    # DCS documents strings and sends strings or numbers: whatever the scenario says is served.
    port: str | int | None = None
    addrs: str | None = None
    password: str | None = None
    task_status: str | None = "RUNNING"
    proxy_multi_db: bool | None = False
    db: str | int | None = "0"


def _source() -> Instance:
    return Instance(
        id="86157b69-8a62-47f9-8c55-fa6ddc8927e1",
        name="dcs-source",
        ip="192.168.1.2",
        port="6379",
        addrs="192.168.1.2:6379",
        password="DCStest123",  # noqa: S106 (a fake Redis password, served in plain text)
    )


def _target() -> Instance:
    return Instance(
        id="86157b69-8a62-47f9-8c55-fa6ddc8927ee",
        name="dcs-target",
        ip="192.168.1.3",
        port=6379,
        addrs="192.168.1.3:6379",
        password="DCStarget456",  # noqa: S106
    )


class ExchangeScript(_Strict):
    """What POST exchange-ip (and rollback-ip) do: EXCHANGING for a while, then the outcome."""

    outcome: Literal["success", "failure"] = "success"
    exchanging_seconds: float = Field(default=5.0, ge=0)
    rollback_outcome: Literal["success", "failure"] = "success"


class StopScript(_Strict):
    """What POST stop does: TERMINATING for `terminating_seconds`, then TERMINATED."""

    terminating_seconds: float = Field(default=3.0, ge=0)


class NewTaskScript(_Strict):
    """How tasks created through the API live: RUNNING ("pending configuration") until an
    online task is configured, then `pending_seconds` more RUNNING, FULLMIGRATING for
    `full_seconds`, then INCRMIGEATING (incremental) or SUCCESS (full). A backup import is
    MIGRATING for `import_seconds`, then SUCCESS. A restart plays the configured life again."""

    pending_seconds: float = Field(default=2.0, ge=0)
    full_seconds: float = Field(default=30.0, ge=0)
    import_seconds: float = Field(default=30.0, ge=0)


class BackupFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    file_name: str
    size: str | int = "1048576"
    update_at: str = "2019-10-22 14:00:00"


class BackupFiles(BaseModel):
    model_config = ConfigDict(extra="allow")

    file_source: str = "self_build_obs"
    bucket_name: str | None = "sandbox-backups"
    files: list[BackupFile] = Field(default_factory=list)
    backup_id: str | None = None


class MigrationScript(_Strict):
    """One migration task and its scripted life.

    `deleted_after_seconds` deletes the task: from then on it leaves the list and every read
    is 400 DCS.4133. With `deleted_reads_success_for: N` as well, the task's detail (GET
    migration-task/{id}, and only it) still reads SUCCESS for N seconds after the deletion,
    as the live service may: Huawei's Terraform provider checks the list when the detail says
    SUCCESS for that reason (resource_huaweicloud_dcs_online_data_migration_task.go).

    >>> script = MigrationScript.full("t2", full_seconds=60)
    >>> [(s.status, s.seconds, s.progress_to) for s in script.steps]
    [('RUNNING', 2.0, None), ('FULLMIGRATING', 60.0, 100.0), ('SUCCESS', None, None)]
    """

    task_id: str = Field(min_length=1)
    task_name: str = ""
    description: str = ""
    migration_type: MigrationType = "online_migration"
    migration_method: MigrationMethod | None = "incremental_migration"
    network_type: str = "vpc"
    source_instance: Instance | None = Field(default_factory=_source)
    target_instance: Instance = Field(default_factory=_target)
    backup_files: BackupFiles | None = None
    bandwidth_limit_mb: str | int | None = "100"
    #: The top-level `task_status` before any exchange (None: the field is absent).
    task_status: str | None = None
    steps: list[Step] = Field(default_factory=lambda: [Step(status="INCRMIGEATING")], min_length=1)
    deleted_after_seconds: float | None = Field(default=None, ge=0)
    #: Seconds after the deletion during which the detail still reads SUCCESS (None: none).
    deleted_reads_success_for: float | None = Field(default=None, ge=0)
    exchange: ExchangeScript = Field(default_factory=ExchangeScript)
    stop: StopScript = Field(default_factory=StopScript)
    #: Keys drawn for the stats body (`source_dbsize`).
    source_keys: int = Field(default=100_000, ge=0)
    #: The stats during incremental sync: lag, write bursts, key difference (`sandbox.sync`).
    stats: StatsScript = Field(default_factory=StatsScript)
    #: Undocumented fields served as they are: a client must tolerate what it does not know.
    extra_fields: dict[str, Any] = Field(
        default_factory=lambda: {"sandbox_note": "served by the local DCS sandbox"}
    )

    @model_validator(mode="after")
    def _complete(self) -> MigrationScript:
        if not self.task_name:
            self.task_name = f"migration-{self.task_id}"
        endless = [step.status for step in self.steps[:-1] if step.seconds is None]
        if endless:
            msg = f"only the last step may last for ever; give `seconds` to {endless}"
            raise ValueError(msg)
        if self.deleted_reads_success_for is not None and self.deleted_after_seconds is None:
            msg = (
                f"task {self.task_id!r}: deleted_reads_success_for needs deleted_after_seconds "
                "(the deletion it follows)"
            )
            raise ValueError(msg)
        return self

    @classmethod
    def incremental(
        cls,
        task_id: str,
        *,
        pending_seconds: float = 2.0,
        full_seconds: float = 30.0,
        exchange_outcome: Literal["success", "failure"] = "success",
        exchanging_seconds: float = 5.0,
        **fields: Any,
    ) -> MigrationScript:
        """RUNNING -> FULLMIGRATING (progress to 100) -> INCRMIGEATING for ever (ready)."""
        return cls.model_validate(
            {
                "task_id": task_id,
                "steps": [
                    {"status": "RUNNING", "seconds": pending_seconds},
                    {"status": "FULLMIGRATING", "seconds": full_seconds, "progress_to": 100},
                    {"status": "INCRMIGEATING"},
                ],
                "exchange": {"outcome": exchange_outcome, "exchanging_seconds": exchanging_seconds},
                **fields,
            }
        )

    @classmethod
    def full(
        cls,
        task_id: str,
        *,
        pending_seconds: float = 2.0,
        full_seconds: float = 30.0,
        final_status: str = "SUCCESS",
        **fields: Any,
    ) -> MigrationScript:
        """RUNNING -> FULLMIGRATING (progress to 100) -> SUCCESS (a full online migration)."""
        return cls.model_validate(
            {
                "task_id": task_id,
                "migration_method": "full_amount_migration",
                "steps": [
                    {"status": "RUNNING", "seconds": pending_seconds},
                    {"status": "FULLMIGRATING", "seconds": full_seconds, "progress_to": 100},
                    {"status": final_status},
                ],
                **fields,
            }
        )

    @classmethod
    def failing(
        cls,
        task_id: str,
        *,
        pending_seconds: float = 2.0,
        fail_after_seconds: float = 10.0,
        progress: float = 40.0,
        final_status: str = "MIGRATION_FAILED",
        **fields: Any,
    ) -> MigrationScript:
        """RUNNING -> FULLMIGRATING (progress to `progress`) -> MIGRATION_FAILED."""
        return cls.model_validate(
            {
                "task_id": task_id,
                "steps": [
                    {"status": "RUNNING", "seconds": pending_seconds},
                    {
                        "status": "FULLMIGRATING",
                        "seconds": fail_after_seconds,
                        "progress_to": progress,
                    },
                    {"status": final_status},
                ],
                **fields,
            }
        )

    @classmethod
    def stopped(
        cls,
        task_id: str,
        *,
        pending_seconds: float = 2.0,
        stop_after_seconds: float = 10.0,
        terminating_seconds: float = 3.0,
        **fields: Any,
    ) -> MigrationScript:
        """Someone else stops it: RUNNING -> FULLMIGRATING -> TERMINATING -> TERMINATED."""
        return cls.model_validate(
            {
                "task_id": task_id,
                "steps": [
                    {"status": "RUNNING", "seconds": pending_seconds},
                    {"status": "FULLMIGRATING", "seconds": stop_after_seconds, "progress_to": 50},
                    {"status": "TERMINATING", "seconds": terminating_seconds},
                    {"status": "TERMINATED"},
                ],
                **fields,
            }
        )

    @classmethod
    def deleted(
        cls, task_id: str, *, deleted_after_seconds: float = 10.0, **fields: Any
    ) -> MigrationScript:
        """An incremental migration whose task is deleted: then every read is 400 DCS.4133."""
        return cls.incremental(task_id, deleted_after_seconds=deleted_after_seconds, **fields)

    @classmethod
    def unknown_status(
        cls,
        task_id: str,
        *,
        status: str = "PAUSED_FOR_UPGRADE",
        after_seconds: float = 5.0,
        unknown_seconds: float | None = None,
        then: str = "INCRMIGEATING",
        **fields: Any,
    ) -> MigrationScript:
        """RUNNING, then a status no document lists (for ever, or `unknown_seconds`), `then`."""
        steps: list[dict[str, Any]] = [
            {"status": "RUNNING", "seconds": after_seconds},
            {"status": status, "seconds": unknown_seconds},
        ]
        if unknown_seconds is not None:
            steps.append({"status": then})
        return cls.model_validate({"task_id": task_id, "steps": steps, **fields})

    @classmethod
    def unconfigured(cls, task_id: str, **fields: Any) -> MigrationScript:
        """Created online and never configured: RUNNING ("pending configuration") for ever,
        with no method and no source instance yet, as `create_online_migration_task` leaves it."""
        return cls.model_validate(
            {
                "task_id": task_id,
                "migration_method": None,
                "source_instance": None,
                "target_instance": {"task_status": None, "proxy_multi_db": None, "db": None},
                "bandwidth_limit_mb": None,
                "steps": [{"status": "RUNNING"}],
                **fields,
            }
        )

    @classmethod
    def backup_import(
        cls, task_id: str, *, import_seconds: float = 30.0, **fields: Any
    ) -> MigrationScript:
        """A backup-file import: MIGRATING (progress to 100) -> SUCCESS, no source instance."""
        return cls.model_validate(
            {
                "task_id": task_id,
                "migration_type": "backupfile_import",
                "migration_method": "full_amount_migration",
                "source_instance": None,
                "backup_files": {"files": [{"file_name": "appendonly.aof", "size": "1048576"}]},
                "steps": [
                    {"status": "MIGRATING", "seconds": import_seconds, "progress_to": 100},
                    {"status": "SUCCESS"},
                ],
                **fields,
            }
        )


class _FaultBase(_Strict):
    """When a fault fires: on a matching request, after `skip` of them, among the first
    `count` (if set), with probability `rate` (a seeded draw)."""

    rate: float = Field(default=1.0, ge=0, le=1)
    count: int | None = Field(default=None, ge=0)
    skip: int = Field(default=0, ge=0)


class _RequestFault(_FaultBase):
    routes: list[RouteName] | None = None
    #: "after": the request takes effect (an exchange happens) and only the answer is lost.
    when: Literal["before", "after"] = "before"


class ServerErrorFault(_RequestFault):
    """500 with a DCS.5000 body, or 502/503 with a gateway's HTML page."""

    kind: Literal["server_error"]
    status: Literal[500, 502, 503] = 500


class RateLimitFault(_FaultBase):
    """429 with `Retry-After: retry_after` (always before the request takes effect)."""

    kind: Literal["rate_limit"]
    routes: list[RouteName] | None = None
    retry_after: int = Field(default=1, ge=0)


class BusyFault(_FaultBase):
    """A DCS "busy, try later" error (`code`, e.g. DCS.4975), refused before acting."""

    kind: Literal["busy"]
    routes: list[RouteName] | None = None
    status: int = Field(default=400, ge=400, le=599)
    code: str = "DCS.4975"


class SlowFault(_RequestFault):
    """Wait `seconds` (real seconds) before answering."""

    kind: Literal["slow"]
    seconds: float = Field(default=5.0, ge=0)


class DropFault(_RequestFault):
    """Close the connection without an answer."""

    kind: Literal["drop"]


class HtmlFault(_RequestFault):
    """200 with an HTML page instead of JSON (a captive portal, a misrouted proxy)."""

    kind: Literal["html"]


class TokenExpiryFault(_FaultBase):
    """Matching IAM tokens expire after `seconds` (scenario seconds), whatever `expires_at` said."""

    kind: Literal["token_expiry"]
    seconds: float = Field(default=60.0, ge=0)


Fault = Annotated[
    ServerErrorFault
    | RateLimitFault
    | BusyFault
    | SlowFault
    | DropFault
    | HtmlFault
    | TokenExpiryFault,
    Field(discriminator="kind"),
]
RequestFault = ServerErrorFault | RateLimitFault | BusyFault | SlowFault | DropFault | HtmlFault
#: Faults that mean "not done": they always strike before the request takes effect.
REFUSING_FAULTS = (RateLimitFault, BusyFault)


class TemporaryKey(_Strict):
    """A temporary AK/SK: requests must carry (and sign) `X-Security-Token`."""

    access_key: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)
    security_token: str = Field(min_length=1)


class _TaskIndex:
    """`Scenario.task`'s table of tasks by id: a cache, so it never makes scenarios unequal
    (pydantic compares private attributes too)."""

    def __init__(self, tasks: list[MigrationScript] | None = None) -> None:
        self.source = tasks
        self.by_id = {task.task_id: task for task in tasks or []}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TaskIndex)

    __hash__ = None  # type: ignore[assignment]


class Scenario(_Strict):
    """Everything the sandbox serves. Every field has a default: `Scenario()` is valid.

    >>> Scenario.model_validate({"speed": 60, "tasks": [{"task_id": "t1"}]}).tasks[0].task_name
    'migration-t1'
    """

    name: str = "custom"
    description: str = ""
    project_id: str = Field(default=DEFAULT_PROJECT_ID, min_length=1)
    speed: float = Field(default=1.0, gt=0)
    seed: int = 0
    token: str | None = DEFAULT_TOKEN
    access_key: str | None = DEFAULT_ACCESS_KEY
    secret_key: str | None = DEFAULT_SECRET_KEY
    temporary_keys: list[TemporaryKey] = Field(default_factory=list)
    iam_username: str | None = DEFAULT_IAM_USERNAME
    iam_password: str | None = DEFAULT_IAM_PASSWORD
    iam_domain_name: str | None = DEFAULT_IAM_DOMAIN_NAME
    token_lifetime_seconds: float = Field(default=86400.0, gt=0)
    tasks: list[MigrationScript] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    #: The DCS instances that exist, besides those of the tasks: a migration may name them by id.
    instances: list[Instance] = Field(default_factory=lambda: [_source(), _target()])
    new_tasks: NewTaskScript = Field(default_factory=NewTaskScript)
    # `task()` looks ids up here; rebuilt whenever `tasks` is another list (model_copy).
    _index: _TaskIndex = PrivateAttr(default_factory=_TaskIndex)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        counts = Counter(task.task_id for task in self.tasks)
        duplicates = sorted(task_id for task_id, count in counts.items() if count > 1)
        if duplicates:
            msg = f"task ids must be unique, repeated: {duplicates}"
            raise ValueError(msg)
        if (self.access_key is None) != (self.secret_key is None):
            msg = "access_key and secret_key go together: set both or neither"
            raise ValueError(msg)
        return self

    def task(self, task_id: str) -> MigrationScript | None:
        """The script of `task_id`, or None (a dict lookup: a list page of N tasks is O(N))."""
        if self._index.source is not self.tasks:
            self._index = _TaskIndex(self.tasks)
        return self._index.by_id.get(task_id)

    def instance(self, instance_id: str) -> Instance | None:
        """The DCS instance `instance_id`: one of `instances`, or of a task; else None."""
        for task in self.tasks:
            for instance in (task.source_instance, task.target_instance):
                if instance is not None and instance.id == instance_id:
                    return instance
        return next((item for item in self.instances if item.id == instance_id), None)


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped in `sandbox/scenarios/`."""
    return sorted(path.stem for path in _SCENARIO_DIR.glob("*.yaml"))


def scenario_path(name: str) -> Path:
    """The file of a bundled scenario: `scenario_path("flaky")` -> `.../scenarios/flaky.yaml`."""
    stem = name.removesuffix(".yaml")
    path = _SCENARIO_DIR / f"{stem}.yaml"
    if not path.is_file():
        msg = f"no bundled scenario {name!r}; bundled: {', '.join(bundled_scenarios())}"
        raise ScenarioError(msg)
    return path


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a YAML or JSON file, or name a bundled one (`"incremental"`).

    The scenario's `name` defaults to the file's stem.
    """
    file = Path(path)
    bundled = isinstance(path, str) and path.removesuffix(".yaml") in bundled_scenarios()
    if bundled and not file.is_file():
        file = scenario_path(str(path))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        msg = (
            f"no scenario file {str(path)!r}, and no bundled scenario of that name "
            f"({', '.join(bundled_scenarios())})"
        )
        raise ScenarioError(msg) from error
    except OSError as error:
        msg = f"cannot read scenario {str(path)!r}: {error}"
        raise ScenarioError(msg) from error
    try:
        data: object = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        syntax = "JSON" if file.suffix == ".json" else "YAML"
        msg = f"scenario {str(file)!r} is not valid {syntax}: {error}"
        raise ScenarioError(msg) from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        msg = f"scenario {str(file)!r} must be a mapping, not {type(data).__name__}"
        raise ScenarioError(msg)
    data.setdefault("name", file.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        msg = f"scenario {str(file)!r} is invalid: {error}"
        raise ScenarioError(msg) from error


def as_scenario(scenario: Scenario | str | Path | None) -> Scenario:
    """A `Scenario` from a scenario, a file, a bundled name, or None (the `incremental` demo)."""
    if scenario is None:
        return load_scenario(scenario_path("incremental"))
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_IAM_DOMAIN_NAME",
    "DEFAULT_IAM_PASSWORD",
    "DEFAULT_IAM_USERNAME",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_TOKEN",
    "REFUSING_FAULTS",
    "ROUTES",
    "BackupFile",
    "BackupFiles",
    "BusyFault",
    "DropFault",
    "ExchangeScript",
    "Fault",
    "HtmlFault",
    "Instance",
    "MigrationMethod",
    "MigrationScript",
    "MigrationType",
    "NewTaskScript",
    "RateLimitFault",
    "RequestFault",
    "RouteName",
    "Scenario",
    "ScenarioError",
    "ServerErrorFault",
    "SlowFault",
    "Step",
    "StopScript",
    "TemporaryKey",
    "TokenExpiryFault",
    "as_scenario",
    "bundled_scenarios",
    "load_scenario",
    "scenario_path",
]
