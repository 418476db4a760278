"""What comes after the wait, shared by `migration_runbook`, `migrate_instance` and the fleet.

`gate_and_approve`: the catch-up gate, an optional approval (then the gate again, in full);
`switch`: the cutover itself (the IP exchange, exactly once, or the team's cutover
deployment); `check_cut_over`: what the task must show after it. The steps (`run_gate`,
`approval_form`, `exchange_ip`) serve `migration_fleet` too, which asks its own approvals
(per task or per wave) between them. They add rows to the run's timeline where one is
recorded; the flows notify and decide what a failure means to them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect import get_run_logger

from blocks.errors import CutoverFailed, DcsError, DcsValidationError
from blocks.models import EXCHANGE_SUCCESS, MigrationTask, MigrationTaskStats
from flows.approval import approval_description, ask_approval
from flows.catchup import GATE_VALUES, Gate, GateSettings
from flows.credentials import aload_credentials
from flows.cutover import CUTOVER_FAILURE_STATUSES, exchange_instance_ip, run_cutover_deployment
from flows.gate import GateResult, gate_cutover
from flows.polling import open_client, read_task
from flows.timeline import add_row

Cutover = Literal["none", "exchange_ip", "deployment"]

#: The longest wait between two reads while an IP exchange is followed.
EXCHANGE_POLL_SECONDS = 5.0

CUTOVER_WORDS = {"exchange_ip": "the IP exchange", "deployment": "the cutover deployment"}
#: The gate's first pass, when a person is asked: the approval form shows its figures.
STAGE_BEFORE_APPROVAL = "before approval"


@dataclass(frozen=True)
class CutoverPlan:
    """How to cut over once the task is ready: the flows' parameters, checked."""

    cutover: Cutover
    gate: Gate = "on"
    gate_settings: GateSettings = field(default_factory=GateSettings)
    require_approval: bool = False
    approval_timeout_seconds: int = 3600
    cutover_deployment: str | None = None
    cutover_parameters: dict[str, Any] | None = None
    exchanged_ip: list[str] | None = None
    is_exchange_domain: bool | None = None
    force_cutover: bool = False
    poll_interval_seconds: float = 15.0

    def __post_init__(self) -> None:
        check_cutover(self.cutover, self.cutover_deployment, self.gate)
        self._check_options()

    def _check_options(self) -> None:
        """Refuse an option the chosen cutover would ignore, or one it could not use."""
        if self.cutover_parameters and self.cutover != "deployment":
            msg = (
                f"cutover_parameters are for cutover='deployment' (the cutover deployment's "
                f"parameters), and cutover is {self.cutover!r}: leave them empty"
            )
            raise DcsValidationError(msg)
        exchange_only = {
            "exchanged_ip": bool(self.exchanged_ip),
            "is_exchange_domain": self.is_exchange_domain is True,
            "force_cutover": self.force_cutover,
        }
        for name, given in exchange_only.items():
            if given and self.cutover != "exchange_ip":
                msg = (
                    f"{name} is an option of the IP exchange (cutover='exchange_ip'), and "
                    f"cutover is {self.cutover!r}: leave it empty, or set cutover='exchange_ip'"
                )
                raise DcsValidationError(msg)
        for address in self.exchanged_ip or []:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                msg = (
                    f"exchanged_ip must list IP addresses of the instances (e.g. "
                    f"'192.168.1.2'), got {address!r}; leave it empty to let DCS exchange "
                    "the default ones"
                )
                raise DcsValidationError(msg) from None
        timeout = self.approval_timeout_seconds
        if isinstance(timeout, bool) or not timeout > 0:
            msg = (
                f"approval_timeout_seconds must be more than 0 seconds, got {timeout!r} "
                "(the default is 3600: an hour to answer)"
            )
            raise DcsValidationError(msg)


def check_cutover(cutover: Cutover, cutover_deployment: str | None, gate: Gate) -> None:
    """Refuse a cutover that cannot be carried out as asked, naming the parameter."""
    if cutover not in ("none", *CUTOVER_WORDS):
        msg = f"cutover must be 'none', 'exchange_ip' or 'deployment', got {cutover!r}"
        raise DcsValidationError(msg)
    if gate not in GATE_VALUES:
        msg = f"gate must be 'on' or 'off', got {gate!r}"
        raise DcsValidationError(msg)
    if cutover == "deployment" and not cutover_deployment:
        msg = "cutover='deployment' needs cutover_deployment ('flow-name/deployment-name')"
        raise DcsValidationError(msg)
    if cutover != "deployment" and cutover_deployment:
        msg = f"cutover_deployment {cutover_deployment!r} is set but cutover is {cutover!r}"
        raise DcsValidationError(msg)


def stage_before(cutover: Cutover) -> str:
    """The gate's last pass, as its logs and events name it: "before the IP exchange"."""
    return f"before {CUTOVER_WORDS[cutover]}"


async def approval_form(task: MigrationTask, credentials: str, gate: GateResult | None) -> str:
    """The approval form's text: the gate's figures, or (gate off) one fresh read of the stats."""
    stats: MigrationTaskStats | DcsError | None = None
    if gate is None:
        try:
            async with open_client(await aload_credentials(credentials)) as client:
                stats = await client.show_migration_task_stats(str(task.task_id))
        except DcsError as error:  # the form says so; the person decides
            stats = error
    return approval_description(task, gate, stats)


async def _approve(
    task: MigrationTask, credentials: str, timeout_seconds: int, gate: GateResult | None
) -> str:
    """Ask a person, showing what `approval_form` shows."""
    return await ask_approval(task, timeout_seconds, await approval_form(task, credentials, gate))


async def run_gate(
    task: MigrationTask, credentials: str, settings: GateSettings, stage: str
) -> GateResult:
    """One pass of the catch-up gate (`gate_cutover`), with a row on the timeline."""
    result = await gate_cutover(task, credentials, settings, stage)
    add_row("catch-up gate", None, result.describe())
    return result


async def gate_and_approve(
    task: MigrationTask, credentials: str, plan: CutoverPlan
) -> tuple[GateResult | None, str | None]:
    """The gate's last pass and the approver's comment: gate -> (approval -> gate again)."""
    action = CUTOVER_WORDS[plan.cutover]
    timeout = plan.approval_timeout_seconds
    if plan.gate == "off":
        get_run_logger().warning(
            "the catch-up gate is off (gate='off'): %s of migration task %s does not wait for "
            "the target to catch up with the source; writes not yet copied to it would be lost",
            action,
            task.task_id,
        )
        comment = (
            await _approve(task, credentials, timeout, None) if plan.require_approval else None
        )
        return None, comment
    comment = None
    if plan.require_approval:
        first = await run_gate(task, credentials, plan.gate_settings, STAGE_BEFORE_APPROVAL)
        comment = await _approve(task, credentials, timeout, first)
    # Again after an approval, in full: the offset can grow while a person decides.
    stage = stage_before(plan.cutover)
    return await run_gate(task, credentials, plan.gate_settings, stage), comment


async def exchange_ip(task_id: str, credentials: str, plan: CutoverPlan) -> MigrationTask:
    """The IP exchange as `plan` asks (at most one request per task), followed to success."""
    return await exchange_instance_ip(
        task_id,
        credentials,
        exchanged_ip=plan.exchanged_ip,
        is_exchange_domain=plan.is_exchange_domain,
        # An exchange takes seconds: follow it at least this closely.
        poll_interval_seconds=min(plan.poll_interval_seconds, EXCHANGE_POLL_SECONDS),
        force=plan.force_cutover,
    )


async def switch(
    task_id: str, credentials: str, plan: CutoverPlan
) -> tuple[MigrationTask | None, str | None]:
    """The cutover itself: the task after an IP exchange, or the deployment run's name."""
    if plan.cutover == "exchange_ip":
        return await exchange_ip(task_id, credentials, plan), None
    run = await run_cutover_deployment(
        str(plan.cutover_deployment), plan.cutover_parameters or {"task_id": task_id}
    )
    add_row("cutover deployment", None, f"flow run {run.name} completed")
    return None, run.name


def check_cut_over(task: MigrationTask, cutover: Cutover) -> None:
    """The task after the cutover must not have failed, and an exchange must show success."""
    # Not `task.failed`: a cutover often stops incremental sync, and TERMINATED is fine then.
    if task.status in CUTOVER_FAILURE_STATUSES:
        msg = f"after the cutover, {task.describe()} is in a failure status"
        raise CutoverFailed(msg)
    if cutover == "exchange_ip" and (task.task_status or "").upper() != EXCHANGE_SUCCESS:
        msg = (
            f"after the IP exchange, {task.describe()} shows task_status "
            f"{task.task_status!r}, not {EXCHANGE_SUCCESS}"
        )
        raise CutoverFailed(msg)


async def read_after_cutover(task_id: str, credentials: str) -> MigrationTask:
    """A fresh read of the task once the cutover is done (riding out a passing outage)."""
    async with open_client(await aload_credentials(credentials)) as client:
        task = await read_task(client, task_id)
    get_run_logger().info(
        "after the cutover: %s, task_status %s", task.describe(), task.task_status
    )
    return task


def verified(task: MigrationTask, cutover: Cutover) -> None:
    """`check_cut_over`, and the timeline says so."""
    check_cut_over(task, cutover)
    add_row("verified", task, f"{CUTOVER_WORDS[cutover]} done")


__all__ = [
    "CUTOVER_WORDS",
    "EXCHANGE_POLL_SECONDS",
    "STAGE_BEFORE_APPROVAL",
    "Cutover",
    "CutoverPlan",
    "approval_form",
    "check_cut_over",
    "check_cutover",
    "exchange_ip",
    "gate_and_approve",
    "read_after_cutover",
    "run_gate",
    "stage_before",
    "switch",
    "verified",
]
