"""`migrate_instance`: a whole online migration as one flow, from "migrate A to B" to verified.

create (or find) -> configure -> wait, with progress -> catch-up gate -> (approval -> gate)
-> cutover -> verify -> (rollback) -> (stop the sync), with a notification at each stage.

The task's name is its identity: a retried, resumed or repeated run finds the task it
created (same name, same instances) and never creates a second one, nor configures it
twice, nor exchanges IPs twice (`flows.creation`, `flows.cutover`). Redis passwords come
from Prefect `Secret` blocks named in the parameters, loaded inside the run: never a
parameter value, never logged. Every parameter is checked before anything is sent.

```python
import asyncio

from flows.migrate import migrate_instance

summary = asyncio.run(
    migrate_instance(
        task_name="orders-to-dcs",
        vpc_id="...", subnet_id="...", security_group_id="...",
        source_instance_addrs="10.0.0.5:6379", source_password_secret="orders-redis",
        target_instance_id="86157b69-...", target_password_secret="orders-dcs",
        notification_blocks=["slack-webhook/ops"],
    )
)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn

from prefect import flow, get_run_logger
from prefect.blocks.system import Secret
from pydantic import BaseModel, Field, SecretStr

from blocks.errors import CutoverFailed, DcsError, DcsValidationError
from blocks.models import EXCHANGE_SUCCESS, MigrationTask, MigrationTaskStats
from flows import clock
from flows.catchup import Gate, GateSettings
from flows.creation import TaskSpec, configure_if_needed, endpoint, find_or_create, spec
from flows.credentials import DEFAULT_BLOCK_NAME, BlockName, aload_credentials
from flows.cutover import check_cutover_deployment, rollback_instance_ip
from flows.gate import GateResult
from flows.handover import (
    CUTOVER_WORDS,
    Cutover,
    CutoverPlan,
    gate_and_approve,
    read_after_cutover,
    switch,
    verified,
)
from flows.notify import check_notification_blocks, notify_migration
from flows.polling import WatchSettings, open_client, read_stats
from flows.saved_blocks import aload_block
from flows.timeline import RunTimeline, add_row, recording
from flows.wait import watch_migration_task

Method = Literal["full", "incremental"]
Resume = Literal["auto", "manual"]


class MigrationSummary(BaseModel):
    """What `migrate_instance` did, secret-free (it is persisted as the run's result)."""

    task_id: str
    task_name: str
    created: bool = Field(description="This run created the task (False: it found it).")
    configured: bool = Field(description="This run configured the task.")
    status: str | None = Field(description="The task's status at the end, as sent.")
    task_status: str | None
    cutover: Cutover
    approved_by_comment: str | None = None
    waited_seconds: float
    cutover_deployment_run: str | None = None
    caught_up: GateResult | None = None
    stats_after_cutover: MigrationTaskStats | None = None
    sync_stopped: bool = False


@dataclass
class _Run:
    """The run as it goes: what the failure notification says, and about which task."""

    wanted: TaskSpec
    credentials: str
    notification_blocks: list[str]
    strict: bool
    started: datetime
    failure: str = "failed"
    task: MigrationTask | None = None

    async def tell(self, event: str, task: MigrationTask, detail: str | None = None) -> None:
        await notify_migration(
            task,
            event=event,
            notification_blocks=self.notification_blocks,
            strict=self.strict,
            started_at=self.started,
            ended_at=clock.current().now(),
            detail=detail,
        )


def _check_choices(
    cutover: Cutover,
    migration_method: Method,
    rollback_on_failed_verify: bool,
    stop_sync_after_cutover: bool,
) -> None:
    if rollback_on_failed_verify and cutover != "exchange_ip":
        msg = (
            f"rollback_on_failed_verify undoes an IP exchange: it needs cutover='exchange_ip', "
            f"got cutover={cutover!r}"
        )
        raise DcsValidationError(msg)
    if stop_sync_after_cutover and cutover == "none":
        msg = "stop_sync_after_cutover needs a cutover: set cutover, or turn it off"
        raise DcsValidationError(msg)
    if stop_sync_after_cutover and migration_method != "incremental":
        msg = (
            "stop_sync_after_cutover stops the incremental sync, and migration_method "
            "'full' has none: turn it off, or use migration_method='incremental'"
        )
        raise DcsValidationError(msg)


async def _check_blocks(credentials: str, cutover_deployment: str | None) -> None:
    """The credentials block loads and the cutover deployment exists: checked now, not late."""
    try:
        await aload_credentials(credentials)
    except DcsValidationError as error:
        raise DcsValidationError(f"credentials: {error}") from None
    if cutover_deployment is not None:
        try:
            await check_cutover_deployment(cutover_deployment)
        except DcsValidationError as error:
            raise DcsValidationError(f"cutover_deployment: {error}") from None


def _check_secret_name(name: str | None, parameter: str) -> None:
    if name is not None and (not isinstance(name, str) or not name.strip()):
        msg = (
            f"{parameter} must be the name of a Prefect Secret block holding the Redis "
            f"password (or empty when it has none), got {name!r}"
        )
        raise DcsValidationError(msg)


async def _password(name: str | None, parameter: str) -> SecretStr | None:
    """The password in the Secret block `name` (never logged, masked in every repr)."""
    if name is None:
        return None
    block = await aload_block(Secret, name, what=f"Secret block ({parameter})")
    value = block.value
    # Prefect keeps it as its own secret type (not always pydantic's SecretStr).
    reveal = getattr(value, "get_secret_value", None)
    text = reveal() if callable(reveal) else value
    if not isinstance(text, str) or not text:
        msg = f"{parameter}: the Secret block {name!r} must hold the Redis password as text"
        raise DcsValidationError(msg)
    return SecretStr(text)


async def _create_and_configure(
    run: _Run, passwords: tuple[SecretStr | None, SecretStr | None]
) -> tuple[str, bool, bool]:
    """The task's id, whether this run created it and whether it configured it."""
    logger = get_run_logger()
    async with open_client(await aload_credentials(run.credentials)) as client:
        found = await find_or_create(client, run.wanted)
        task = MigrationTask(task_id=found.task_id, task_name=run.wanted.name)
        run.task = task
        if found.recovered is not None:
            detail = (
                f"the create request failed without a clear answer ({found.recovered}), "
                f"but DCS lists task {found.task_id}: this run goes on with it"
            )
            logger.warning("%s", detail)
            add_row("created (recovered)", task, detail)
            await run.tell("task created", task, detail)
        elif found.created:
            logger.info("created migration task %s (%s)", found.task_id, run.wanted.name)
            add_row("created", task, f"task {found.task_id}")
            await run.tell("task created", task)
        else:
            logger.info(
                "migration task %s (%s) exists already: no second one is created",
                found.task_id,
                run.wanted.name,
            )
            add_row("found", task, "created by an earlier run")
        configured = await configure_if_needed(client, found.task_id, run.wanted, passwords)
    if configured:
        add_row("configured", task, f"{run.wanted.configure.migration_method.value}")
        await run.tell("task configured", task)
    return found.task_id, found.created, configured


async def _verify(
    run: _Run, task_id: str, plan: CutoverPlan, rollback: bool
) -> tuple[MigrationTask, MigrationTaskStats]:
    """Verify the cutover (a fresh read, then the stats); roll back an exchange that fails."""
    try:
        task = await read_after_cutover(task_id, run.credentials)
        run.task = task
        verified(task, plan.cutover)
        async with open_client(await aload_credentials(run.credentials)) as client:
            try:  # a passing outage is ridden out: a blip must not roll back a good exchange
                stats = await read_stats(client, task_id)
            except DcsError as error:
                msg = (
                    f"after {CUTOVER_WORDS[plan.cutover]}, the stats of migration task "
                    f"{task_id!r} could not be read: {error}"
                )
                raise CutoverFailed(msg) from error
    except CutoverFailed as error:
        if not rollback:
            raise
        await _roll_back(run, task_id, plan, error)
    return task, stats


async def _roll_back(run: _Run, task_id: str, plan: CutoverPlan, failed: CutoverFailed) -> NoReturn:
    """Undo the exchange that did not verify (at most once), then fail saying how it ended."""
    logger = get_run_logger()
    logger.error("verification failed (%s): rolling the IP exchange back", failed)
    try:
        run.task = await rollback_instance_ip(
            task_id, run.credentials, poll_interval_seconds=plan.poll_interval_seconds
        )
    except DcsError as error:
        run.failure = "verification failed, rollback failed"
        msg = (
            f"{failed}; rolling the IP exchange back failed too ({error}): the addresses may "
            f"still be exchanged, check the source and target instances in the DCS console"
        )
        raise CutoverFailed(msg) from error
    run.failure = "verification failed, rolled back"
    add_row("rolled back", run.task, str(failed))
    msg = (
        f"{failed}; the IP exchange was rolled back (task_status "
        f"{run.task.task_status}): applications reach the source again. Find out why the "
        f"verification failed before cutting over again (exchange_instance_ip with force=True)"
    )
    raise CutoverFailed(msg) from failed


async def _stop_sync(run: _Run, task_id: str, task: MigrationTask) -> bool:
    if task.failed or task.succeeded:
        get_run_logger().info("incremental sync of %s is over already", task.describe())
        return False
    async with open_client(await aload_credentials(run.credentials)) as client:
        await client.stop_migration_task_sync(task_id)
    add_row("sync stopped", task, "stop_migration_task_sync")
    await run.tell("sync stopped", task)
    return True


@flow(name="dcs-migrate-instance", flow_run_name="migrate-{task_name}")
async def migrate_instance(
    task_name: str,
    vpc_id: str,
    subnet_id: str,
    security_group_id: str,
    source_instance_id: str | None = None,
    source_instance_addrs: str | None = None,
    source_password_secret: str | None = None,
    target_instance_id: str | None = None,
    target_instance_addrs: str | None = None,
    target_password_secret: str | None = None,
    migration_method: Method = "incremental",
    resume_mode: Resume = "auto",
    bandwidth_limit_mb: int | None = None,
    description: str | None = None,
    credentials: BlockName = DEFAULT_BLOCK_NAME,
    poll_interval_seconds: float = 15.0,
    timeout_seconds: float = 86400.0,
    configure_grace_seconds: float | None = 300.0,
    heartbeat_seconds: float = 600.0,
    cutover: Cutover = "exchange_ip",
    cutover_deployment: str | None = None,
    cutover_parameters: dict[str, Any] | None = None,
    exchanged_ip: list[str] | None = None,
    is_exchange_domain: bool | None = None,
    force_cutover: bool = False,
    require_approval: bool = False,
    approval_timeout_seconds: int = 3600,
    rollback_on_failed_verify: bool = False,
    stop_sync_after_cutover: bool = False,
    notification_blocks: list[str] | None = None,
    strict_notifications: bool = False,
    gate: Gate = "on",
    gate_interval_seconds: float = 10.0,
    settle_seconds: float = 60.0,
    gate_timeout_seconds: float = 1800.0,
    max_offset: int = 0,
    max_key_difference: int = 1000,
) -> MigrationSummary:
    """Migrate a Redis into a DCS instance online, then cut over and verify: the whole way.

    Args:
        task_name: The migration task's name: its identity. A run started again with the
            same name and instances finds the task instead of creating a second one.
        vpc_id: The VPC the migration task runs in (the target instance's VPC).
        subnet_id: The subnet of the migration task, in that VPC.
        security_group_id: The security group of the migration task.
        source_instance_id: The source, a DCS instance by id (or source_instance_addrs).
        source_instance_addrs: The source, any Redis as host:port (several joined by
            commas for a self-built cluster).
        source_password_secret: Name of the Prefect Secret block holding the source's
            password (empty: none). Never the password itself.
        target_instance_id: The target DCS instance by id (or target_instance_addrs).
        target_instance_addrs: The target as host:port.
        target_password_secret: Name of the Secret block holding the target's password.
        migration_method: "incremental" (full, then incremental sync until the cutover)
            or "full" (one copy).
        resume_mode: "auto" (DCS reconnects by itself after a network failure) or "manual".
        bandwidth_limit_mb: Cap the migration at this many MB/s (1-10240; empty: no cap).
        description: The task's description in the DCS console.
        credentials: Name of the DcsCredentials block (a name, never the secrets).
        poll_interval_seconds: Seconds between two looks at the task.
        timeout_seconds: Give up waiting for the migration after this many seconds.
        configure_grace_seconds: Fail (MigrationNotConfigured) if the task is still
            pending configuration this long after the wait began.
        heartbeat_seconds: While the wait goes on, a log line this often (0: none).
        cutover: "exchange_ip" (swap the instances' IPs, exactly once), "deployment"
            (run your own cutover deployment) or "none" (stop once ready).
        cutover_deployment: With cutover="deployment": "flow-name/deployment-name".
        cutover_parameters: Parameters for the cutover deployment (default: the task_id).
        exchanged_ip: With cutover="exchange_ip": the IPs to exchange (DCS default if empty).
        is_exchange_domain: With cutover="exchange_ip": also exchange the domain names.
        force_cutover: Exchange IPs even if an exchange was already requested for the task.
        require_approval: Pause before the cutover until someone approves it in the UI.
        approval_timeout_seconds: Fail if nobody answers the approval within this time.
        rollback_on_failed_verify: If the IP exchange does not verify, roll it back (once).
        stop_sync_after_cutover: Stop the incremental sync once the cutover is verified.
        notification_blocks: Notification blocks as "block-type/block-name".
        strict_notifications: Fail the run if a notification cannot be sent.
        gate: "on": no cutover until the target has caught up with the source; "off" cuts
            over as soon as the task is ready (writes not yet copied would be lost).
        gate_interval_seconds: Seconds between two reads of the stats by the gate.
        settle_seconds: How long every read must show the target caught up, in a row.
        gate_timeout_seconds: Hold the cutover and fail (CutoverGateTimeout) if the target
            has not stayed caught up within this many seconds.
        max_offset: The largest stats offset that counts as caught up (0: no difference).
        max_key_difference: The largest |source keys - target keys| that counts as caught
            up (keys expire on both sides, so an exact match may never come).
    """
    # Everything is checked before the first request: a typo fails now, not mid-migration.
    wanted = spec(
        task_name=task_name,
        description=description,
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        security_group_id=security_group_id,
        source=endpoint("source", source_instance_id, source_instance_addrs),
        target=endpoint("target", target_instance_id, target_instance_addrs),
        migration_method=migration_method,
        resume_mode=resume_mode,
        bandwidth_limit_mb=bandwidth_limit_mb,
    )
    _check_secret_name(source_password_secret, "source_password_secret")
    _check_secret_name(target_password_secret, "target_password_secret")
    _check_choices(cutover, migration_method, rollback_on_failed_verify, stop_sync_after_cutover)
    watch = WatchSettings(
        until="auto",
        poll_interval_seconds=poll_interval_seconds,
        timeout_seconds=timeout_seconds,
        heartbeat_seconds=heartbeat_seconds or None,
        configure_grace_seconds=configure_grace_seconds,
    )
    plan = CutoverPlan(
        cutover=cutover,
        gate=gate,
        gate_settings=GateSettings(
            gate_interval_seconds=gate_interval_seconds,
            settle_seconds=settle_seconds,
            gate_timeout_seconds=gate_timeout_seconds,
            max_offset=max_offset,
            max_key_difference=max_key_difference,
        ),
        require_approval=require_approval,
        approval_timeout_seconds=approval_timeout_seconds,
        cutover_deployment=cutover_deployment,
        cutover_parameters=cutover_parameters,
        exchanged_ip=exchanged_ip,
        is_exchange_domain=is_exchange_domain,
        force_cutover=force_cutover,
        poll_interval_seconds=poll_interval_seconds,
    )
    blocks_ = notification_blocks or []
    await check_notification_blocks(blocks_)
    await _check_blocks(credentials, cutover_deployment)
    passwords = (
        await _password(source_password_secret, "source_password_secret"),
        await _password(target_password_secret, "target_password_secret"),
    )
    time = clock.current()
    run = _Run(wanted, credentials, blocks_, strict_notifications, time.now())
    async with recording(RunTimeline(task_name)):
        try:
            return await _migrate(
                run, passwords, watch, plan, stop_sync_after_cutover, rollback_on_failed_verify
            )
        except Exception as error:
            await _failed(run, error)
            raise


async def _migrate(
    run: _Run,
    passwords: tuple[SecretStr | None, SecretStr | None],
    watch: WatchSettings,
    plan: CutoverPlan,
    stop_sync: bool,
    rollback: bool,
) -> MigrationSummary:
    """The stages, in order; `_Run` keeps what a failure notification needs."""
    time = clock.current()
    began = time.monotonic()
    task_id, created, configured = await _create_and_configure(run, passwords)
    if not created and (done := await _cut_over_before(run, task_id, plan)) is not None:
        return done
    last = await watch_migration_task(task_id, run.credentials, watch)
    run.task = last
    waited = time.monotonic() - began
    await run.tell("ready for cutover" if last.ready_for_cutover else "succeeded", last)
    summary = MigrationSummary(
        task_id=task_id,
        task_name=run.wanted.name,
        created=created,
        configured=configured,
        status=last.raw_status,
        task_status=last.task_status,
        cutover=plan.cutover,
        waited_seconds=round(waited, 3),
    )
    if plan.cutover == "none":
        return summary
    caught_up, comment = await gate_and_approve(last, run.credentials, plan)
    run.failure = "cutover failed"
    switched, deployment_run = await switch(task_id, run.credentials, plan)
    run.task = switched or last
    last, stats = await _verify(run, task_id, plan, rollback)
    await run.tell("cutover done", last)
    sync_stopped = await _stop_sync(run, task_id, last) if stop_sync else False
    return summary.model_copy(
        update={
            "status": last.raw_status,
            "task_status": last.task_status,
            "approved_by_comment": comment,
            "cutover_deployment_run": deployment_run,
            "caught_up": caught_up,
            "stats_after_cutover": stats,
            "sync_stopped": sync_stopped,
        }
    )


async def _cut_over_before(run: _Run, task_id: str, plan: CutoverPlan) -> MigrationSummary | None:
    """The summary of a migration an earlier run already exchanged (verified again), or None.

    After its exchange (and a stopped sync) the task may read TERMINATED, which a watch
    would take for a failure: a repeated run reports the migration done instead.
    """
    if plan.cutover != "exchange_ip":
        return None
    task = await read_after_cutover(task_id, run.credentials)
    if (task.task_status or "").upper() != EXCHANGE_SUCCESS:
        return None
    run.task = task
    get_run_logger().info("the IP exchange of %s was done by an earlier run", task.describe())
    verified(task, plan.cutover)
    return MigrationSummary(
        task_id=task_id,
        task_name=run.wanted.name,
        created=False,
        configured=False,
        status=task.raw_status,
        task_status=task.task_status,
        cutover=plan.cutover,
        waited_seconds=0.0,
    )


async def _failed(run: _Run, error: Exception) -> None:
    """Log, add the row and send the failure notification; its own failure is logged."""
    logger = get_run_logger()
    logger.error("migration %s failed: %s", run.wanted.name, error)
    add_row(run.failure, run.task, f"{type(error).__name__}: {error}")
    task = run.task or MigrationTask(task_name=run.wanted.name)
    try:
        await run.tell(run.failure, task, detail=f"{type(error).__name__}: {error}")
    except DcsError as notify_error:  # strict notifications: the first error stays the story
        logger.error("and the failure notification failed too: %s", notify_error)


__all__ = ["MigrationSummary", "migrate_instance"]
