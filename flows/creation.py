"""The online migration task of `migrate_instance`: found or created, then configured, once.

No Prefect here. A run that is retried, resumed or started again must never leave two
tasks migrating the same data, so the task's *name* is its identity:

- `find_or_create` first lists the tasks of that name. One whose instances are the ones
  asked for ("ours"), or one with no instances yet and still RUNNING ("pending": created,
  the configuration not sent or lost) is the task: no second one is created. A task of
  that name for other instances is refused (another migration owns the name).
- A create whose POST failed without a clear answer (no answer, a 5xx, a garbled 2xx)
  may have created the task: it is looked up the same way, and either found and reported
  (`Found.recovered`) or the error is raised saying that no such task is listed, so a new
  run is safe (it looks up by name again first).
- `configure_if_needed` configures only a task that shows no instances yet, and after an
  unclear failure reads the task to see whether the configuration took.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from blocks.client import AsyncDcsClient
from blocks.errors import (
    DcsError,
    DcsServerError,
    DcsTransportError,
    DcsUnexpectedResponse,
    DcsValidationError,
    MigrationNotCreated,
)
from blocks.models import MigrationStatus, MigrationTask, MigrationTaskSummary
from blocks.requests import (
    ConfigureOnlineMigration,
    CreateOnlineMigration,
    RedisEndpoint,
    parse_request,
)
from flows import clock
from flows.polling import is_transient_or_garbled, read_task

Match = Literal["ours", "pending", "other"]

#: How long a look-up by name rides out transient answers (as a watch would).
LOOKUP_PATIENCE_SECONDS = 300.0
LOOKUP_INTERVAL_SECONDS = 5.0


def ambiguous(error: DcsError) -> bool:
    """Whether a failed non-idempotent POST may still have acted on DCS."""
    if isinstance(error, DcsTransportError):
        return error.transient  # not transient: never sent as it was
    return isinstance(error, DcsServerError | DcsUnexpectedResponse)


def endpoint(side: str, instance_id: str | None, addrs: str | None) -> RedisEndpoint:
    """The source or target as the flow's parameters give it, checked; no password yet."""
    if (instance_id is None) == (addrs is None):
        how = "both" if instance_id is not None else "neither"
        msg = (
            f"give exactly one of {side}_instance_id (a DCS instance) or "
            f"{side}_instance_addrs (host:port of any Redis), not {how}"
        )
        raise DcsValidationError(msg)
    try:
        return parse_request(RedisEndpoint, f"{side}_instance", id=instance_id, addrs=addrs)
    except DcsValidationError as error:
        text = str(error).replace(f"{side}_instance: id:", f"{side}_instance_id:")
        raise DcsValidationError(
            text.replace(f"{side}_instance: addrs:", f"{side}_instance_addrs:")
        ) from None


def describe(endpoint: RedisEndpoint) -> str:
    return f"instance {endpoint.id}" if endpoint.id is not None else f"Redis {endpoint.addrs}"


@dataclass(frozen=True)
class TaskSpec:
    """The task `migrate_instance` wants: its name, network, instances and method.

    Built by `spec(...)`, which checks every value before anything is sent. Passwords
    are not part of it: they come from Secret blocks, at configuration time only.
    """

    create: CreateOnlineMigration
    configure: ConfigureOnlineMigration

    @property
    def name(self) -> str:
        return self.create.name

    @property
    def source(self) -> RedisEndpoint:
        return self.configure.source_instance

    @property
    def target(self) -> RedisEndpoint:
        return self.configure.target_instance

    def with_passwords(
        self, source: SecretStr | None, target: SecretStr | None
    ) -> ConfigureOnlineMigration:
        """The configuration to send, with the passwords (masked in every repr)."""
        return self.configure.model_copy(
            update={
                "source_instance": self.source.model_copy(update={"password": source}),
                "target_instance": self.target.model_copy(update={"password": target}),
            }
        )


def spec(
    *,
    task_name: str,
    description: str | None,
    vpc_id: str,
    subnet_id: str,
    security_group_id: str,
    source: RedisEndpoint,
    target: RedisEndpoint,
    migration_method: str,
    resume_mode: str,
    bandwidth_limit_mb: int | None,
) -> TaskSpec:
    """The wanted task, checked: a `DcsValidationError` names each bad field and the fix."""
    if source.wire() == target.wire():
        msg = f"source and target are the same {describe(source)}: migrate to another instance"
        raise DcsValidationError(msg)
    create = parse_request(
        CreateOnlineMigration,
        "migrate_instance",
        name=task_name,
        description=description,
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        security_group_id=security_group_id,
    )
    configure = parse_request(
        ConfigureOnlineMigration,
        "migrate_instance",
        migration_method=migration_method,
        resume_mode=resume_mode,
        bandwidth_limit_mb=bandwidth_limit_mb,
        source_instance=source,
        target_instance=target,
    )
    return TaskSpec(create, configure)


def _same(wanted: RedisEndpoint, shown_id: str | None, shown_addrs: str | None) -> bool:
    if wanted.id is not None:
        return shown_id == wanted.id
    return (shown_addrs or "").replace(" ", "") == (wanted.addrs or "").replace(" ", "")


def match(summary: MigrationTaskSummary, wanted: TaskSpec) -> Match:
    """What a listed task of the wanted name is to this run (see the module docstring)."""
    source_id, source_addrs = summary.source_instance_id, summary.data_source
    target_id, target_addrs = summary.target_instance_id, summary.target_instance_addrs
    if not any((source_id, source_addrs, target_id, target_addrs)):
        return "pending" if summary.status == MigrationStatus.RUNNING else "other"
    if _same(wanted.source, source_id, source_addrs) and _same(
        wanted.target, target_id, target_addrs
    ):
        return "ours"
    return "other"


@dataclass(frozen=True)
class Found:
    """The task of this migration: its id, whether this run created it, and, when its
    create failed without a clear answer, that error's text."""

    task_id: str
    created: bool
    recovered: str | None = None


async def _named(client: AsyncDcsClient, name: str) -> list[MigrationTaskSummary]:
    """Every listed task named exactly `name` (DCS's name search matches a part)."""
    time = clock.current()
    deadline = time.monotonic() + LOOKUP_PATIENCE_SECONDS
    while True:
        try:
            return [
                summary
                async for summary in client.iter_migration_tasks(name=name)
                if summary.task_name == name and summary.task_id
            ]
        except DcsError as error:
            if not is_transient_or_garbled(error) or time.monotonic() >= deadline:
                raise
        await time.sleep(LOOKUP_INTERVAL_SECONDS)


async def find(client: AsyncDcsClient, wanted: TaskSpec) -> str | None:
    """The id of this migration's task if DCS lists it; refuses a name taken by another."""
    named = await _named(client, wanted.name)
    matches = {summary.task_id: match(summary, wanted) for summary in named}
    for kind in ("ours", "pending"):
        ids = sorted(str(task_id) for task_id, seen in matches.items() if seen == kind)
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            msg = (
                f"{len(ids)} migration tasks named {wanted.name!r} ({', '.join(ids)}) could "
                f"each be this migration's: delete the extra ones in the DCS console "
                f"(delete_migration_task), then run again"
            )
            raise DcsValidationError(msg)
    if matches:
        others = ", ".join(sorted(str(task_id) for task_id in matches))
        msg = (
            f"a migration task named {wanted.name!r} ({others}) already exists for other "
            f"instances than {describe(wanted.source)} -> {describe(wanted.target)}: "
            f"choose another task_name, or delete that task"
        )
        raise DcsValidationError(msg)
    return None


async def find_or_create(client: AsyncDcsClient, wanted: TaskSpec) -> Found:
    """This migration's task: the one DCS lists, or a new one (created at most once)."""
    task_id = await find(client, wanted)
    if task_id is not None:
        return Found(task_id, created=False)
    request = wanted.create
    try:
        created = await client.create_online_migration_task(
            request.name,
            vpc_id=request.vpc_id,
            subnet_id=request.subnet_id,
            security_group_id=request.security_group_id,
            description=request.description,
        )
    except DcsError as error:
        if not ambiguous(error):
            raise
        task_id = await find(client, wanted)
        if task_id is None:
            msg = (
                f"creating migration task {wanted.name!r} failed without a clear answer "
                f"({error}), and no task of that name is listed: none was created, and "
                f"running migrate_instance again is safe (it looks the task up by name "
                f"before creating one)"
            )
            raise MigrationNotCreated(msg, task_name=wanted.name, cause=str(error)) from error
        return Found(task_id, created=True, recovered=str(error))
    if not created.task_id:
        # A 2xx without the id: the task exists, so find it rather than guess.
        task_id = await find(client, wanted)
        if task_id is None:
            msg = (
                f"create_online_migration_task answered without a task id, and no task "
                f"named {wanted.name!r} is listed: check the DCS console before running again"
            )
            raise DcsUnexpectedResponse(
                msg, status_code=200, operation="create_online_migration_task"
            )
        return Found(task_id, created=True, recovered="the answer named no task id")
    return Found(created.task_id, created=True)


def configured(task: MigrationTask) -> bool:
    """Whether the task shows its instances: configured, by this run or before."""
    shown = [task.source_instance, task.target_instance]
    return any(side is not None and (side.id or side.addrs) for side in shown)


async def configure_if_needed(
    client: AsyncDcsClient,
    task_id: str,
    wanted: TaskSpec,
    passwords: tuple[SecretStr | None, SecretStr | None],
) -> bool:
    """Configure the task unless it already is; True when this call configured it."""
    if configured(await read_task(client, task_id)):
        return False
    body = wanted.with_passwords(*passwords)
    try:
        await client.set_online_migration_task(
            task_id,
            migration_method=body.migration_method,
            resume_mode=body.resume_mode,
            bandwidth_limit_mb=body.bandwidth_limit_mb,
            source_instance=body.source_instance,
            target_instance=body.target_instance,
        )
    except DcsError as error:
        if not ambiguous(error) or not configured(await read_task(client, task_id)):
            raise
    return True


__all__ = [
    "LOOKUP_PATIENCE_SECONDS",
    "Found",
    "TaskSpec",
    "ambiguous",
    "configure_if_needed",
    "configured",
    "describe",
    "endpoint",
    "find",
    "find_or_create",
    "match",
    "spec",
]
