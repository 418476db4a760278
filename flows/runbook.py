"""`migration_runbook`: wait -> notify -> gate -> (approval -> gate) -> cutover -> verify -> notify.

The catch-up gate (`flows.gate`) stands in front of every cutover: DCS shows incremental
sync as soon as it runs, not when the target has caught up. With an approval, the gate
runs before it (the approver sees the figures) and, in full, again just before the
cutover (the offset can grow while a person decides).

Run it by hand from the Prefect UI (every parameter is typed and described, so the UI
shows a form), on a schedule, from an automation, or as a subflow of a bigger runbook.
On any failure it notifies, then re-raises, so the run ends Failed with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import Flow, flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.objects import State as PrefectState
from prefect.logging.loggers import flow_run_logger
from pydantic import BaseModel, Field

from blocks.errors import DcsError
from blocks.models import MigrationTask
from flows import clock
from flows.approval import APPROVAL_POLL_SECONDS, Approval
from flows.automatic import reason_to_stand_down, runbook_run_name
from flows.catchup import Gate, GateSettings
from flows.credentials import DEFAULT_BLOCK_NAME, BlockName, load_credentials
from flows.cutover import check_cutover_deployment
from flows.gate import GateResult
from flows.handover import (
    EXCHANGE_POLL_SECONDS,
    Cutover,
    CutoverPlan,
    gate_and_approve,
    read_after_cutover,
    switch,
    verified,
)
from flows.notify import check_notification_blocks, notify_migration
from flows.polling import Until, WatchSettings
from flows.timeline import RunTimeline, add_row, recording
from flows.wait import watch_migration_task


class RunbookSummary(BaseModel):
    """What the runbook did, secret-free (it is persisted as the run's result)."""

    task_id: str
    task_name: str | None
    status: str | None = Field(description="The task's status after the cutover, as sent.")
    task_status: str | None
    cutover: Cutover
    approved_by_comment: str | None = None
    waited_seconds: float
    cutover_deployment_run: str | None = None
    stood_down: str | None = Field(
        default=None, description="Why an automatic run did nothing (another run has the task)."
    )
    caught_up: GateResult | None = Field(
        default=None,
        description="The catch-up gate's last pass before the cutover (None: none ran).",
    )


def stop_on_cancel(flow: Flow[..., Any], flow_run: FlowRun, state: PrefectState) -> None:
    """The runbook's cancellation hook: stop the DCS migration only if the run asked to.

    It runs in whatever process handles the cancellation (a worker, the runner), so all
    it knows comes from the flow run's parameters: the task id and the block name.
    """
    logger = flow_run_logger(flow_run)
    parameters = flow_run.parameters
    task_id = parameters.get("task_id")
    if not parameters.get("stop_migration_on_cancel"):
        logger.warning(
            "run cancelled: DCS migration task %s keeps running (stop_migration_on_cancel "
            "is off); stop it in the DCS console if that is what you want",
            task_id,
        )
        return
    block = load_credentials(parameters.get("credentials", DEFAULT_BLOCK_NAME))
    with block.get_client() as client:
        task = client.stop_migration_task(str(task_id))
    logger.warning("run cancelled: stopped DCS migration task %s (%s)", task_id, task.describe())


@flow(
    name="dcs-migration-runbook",
    flow_run_name=runbook_run_name,  # runbook-<task_id>, or auto-cutover-<task_id>
    on_cancellation=[stop_on_cancel],
)
async def migration_runbook(
    task_id: str,
    credentials: BlockName = DEFAULT_BLOCK_NAME,
    until: Until = "auto",
    poll_interval_seconds: float = 15.0,
    timeout_seconds: float = 86400.0,
    cutover: Cutover = "none",
    cutover_deployment: str | None = None,
    cutover_parameters: dict[str, Any] | None = None,
    exchanged_ip: list[str] | None = None,
    is_exchange_domain: bool | None = None,
    force_cutover: bool = False,
    require_approval: bool = False,
    approval_timeout_seconds: int = 3600,
    notification_blocks: list[str] | None = None,
    strict_notifications: bool = False,
    stop_migration_on_cancel: bool = False,
    automatic: bool = False,
    gate: Gate = "on",
    gate_interval_seconds: float = 10.0,
    settle_seconds: float = 60.0,
    gate_timeout_seconds: float = 1800.0,
    max_offset: int = 0,
    max_key_difference: int = 1000,
    heartbeat_seconds: float = 600.0,
    configure_grace_seconds: float | None = 300.0,
) -> RunbookSummary:
    """Wait for a DCS migration, then cut over and tell people.

    Args:
        task_id: The migration task's ID, as the DCS console shows it.
        credentials: Name of the DcsCredentials block (a name, never the secrets).
        until: "auto" (success, failure or ready for cutover), "success", or
            "ready_for_cutover".
        poll_interval_seconds: Seconds between two looks at the task (an IP exchange is
            followed at this pace too, and at least every 5 seconds).
        timeout_seconds: Give up waiting after this many seconds.
        cutover: "none", "exchange_ip" (swap the instances' IPs), or "deployment" (run
            your own cutover deployment).
        cutover_deployment: With cutover="deployment": "flow-name/deployment-name".
        cutover_parameters: Parameters for the cutover deployment (default: the task_id).
        exchanged_ip: With cutover="exchange_ip": the IPs to exchange (DCS default if empty).
        is_exchange_domain: With cutover="exchange_ip": also exchange the domain names.
        force_cutover: Exchange IPs even if an exchange was already requested for this task.
        require_approval: Pause before the cutover until someone approves it in the UI.
        approval_timeout_seconds: Fail if nobody answers the approval within this time.
        notification_blocks: Notification blocks as "block-type/block-name".
        strict_notifications: Fail the run if a notification cannot be sent.
        stop_migration_on_cancel: Stop the DCS migration when this run is cancelled
            (default: the migration keeps running, and the log says so).
        automatic: Set by the cutover-on-ready automation: the run is named
            auto-cutover-<task_id>, and does nothing if the task has a cutover record or
            another runbook scheduled, running or paused for it.
        gate: "on": no cutover until the target has caught up with the source (the
            catch-up gate); "off" cuts over as soon as the task is ready (logged as a
            warning: writes not yet copied to the target would be lost).
        gate_interval_seconds: Seconds between two reads of the task's stats by the gate.
        settle_seconds: How long every read must show the target caught up, in a row
            (one read that does not restarts the window).
        gate_timeout_seconds: Hold the cutover and fail (CutoverGateTimeout) if the target
            has not stayed caught up within this many seconds.
        max_offset: The largest stats offset that counts as caught up (DCS: 0 means no
            difference between source and target).
        max_key_difference: The largest |source keys - target keys| that counts as caught
            up (keys expire on both sides, so an exact match may never come).
        heartbeat_seconds: While the watch goes on, a log line this often saying so, with
            the status and progress (0: none).
        configure_grace_seconds: Fail (MigrationNotConfigured) if the task is still RUNNING,
            which DCS calls pending configuration, this many seconds after the wait
            began: configure it with set_online_migration_task or in the DCS console
            (empty: wait for it until the timeout).
    """
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
    logger = get_run_logger()
    if require_approval and cutover == "none":
        # The manual deployment asks for approval by default; a watch alone has none to ask.
        logger.info("require_approval is on, but cutover is 'none': there is nothing to approve")
    if automatic and (reason := await reason_to_stand_down(task_id)):
        logger.warning("automatic cutover of migration task %s stands down: %s", task_id, reason)
        return RunbookSummary(
            task_id=task_id,
            task_name=None,
            status=None,
            task_status=None,
            cutover=cutover,
            waited_seconds=0.0,
            stood_down=reason,
        )
    blocks_ = notification_blocks or []
    time = clock.current()
    started: datetime = time.now()
    began = time.monotonic()
    last: MigrationTask | None = None
    # What a failure notification says happened: the cutover once it has begun.
    failure = "failed"

    async def tell(event: str, task: MigrationTask, detail: str | None = None) -> None:
        await notify_migration(
            task,
            event=event,
            notification_blocks=blocks_,
            strict=strict_notifications,
            started_at=started,
            ended_at=clock.current().now(),
            detail=detail,
        )

    async with recording(RunTimeline(task_id)):
        try:
            # Before waiting for hours: a typo in a block name fails now, not at the first
            # message.
            await check_notification_blocks(blocks_)
            if plan.cutover_deployment is not None:
                await check_cutover_deployment(plan.cutover_deployment)
            # The watch as a task of this run, not a subflow: its log lines, progress and
            # timeline show on the run a person opens.
            watch = WatchSettings(
                until=until,
                poll_interval_seconds=poll_interval_seconds,
                timeout_seconds=timeout_seconds,
                heartbeat_seconds=heartbeat_seconds or None,
                configure_grace_seconds=configure_grace_seconds,
            )
            last = await watch_migration_task(task_id, credentials, watch)
            waited = time.monotonic() - began
            await tell("ready for cutover" if last.ready_for_cutover else "succeeded", last)
            comment = None
            deployment_run = None
            caught_up = None
            if cutover != "none":
                caught_up, comment = await gate_and_approve(last, credentials, plan)
                failure = "cutover failed"
                switched, deployment_run = await switch(task_id, credentials, plan)
                last = switched or last
                last = await read_after_cutover(task_id, credentials)
                verified(last, cutover)
                await tell("cutover done", last)
        except Exception as error:
            logger.error("runbook for migration task %s failed: %s", task_id, error)
            add_row(failure, last, f"{type(error).__name__}: {error}")
            if last is None:
                last = MigrationTask(task_id=task_id)
            try:
                await tell(failure, last, detail=f"{type(error).__name__}: {error}")
            except (
                DcsError
            ) as notify_error:  # strict notifications: the first error stays the story
                logger.error("and the failure notification failed too: %s", notify_error)
            raise
    return RunbookSummary(
        task_id=task_id,
        task_name=last.task_name,
        status=last.raw_status,
        task_status=last.task_status,
        cutover=cutover,
        approved_by_comment=comment,
        waited_seconds=round(waited, 3),
        cutover_deployment_run=deployment_run,
        caught_up=caught_up,
    )


__all__ = [
    "APPROVAL_POLL_SECONDS",
    "EXCHANGE_POLL_SECONDS",
    "Approval",
    "Cutover",
    "RunbookSummary",
    "migration_runbook",
    "stop_on_cancel",
]
