"""The pause for a person's approval before a cutover, and what the approval form says.

The Prefect UI shows the form's description above the Approve switch: it names the task,
its source and target instances, its status and the latest stats (the catch-up gate's
figures, or one read of the stats when the gate is off), so the approver decides on what
DCS says now and not on memory.
"""

from __future__ import annotations

from typing import cast

from prefect import get_run_logger
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from blocks.errors import CutoverRejected, DcsError
from blocks.models import MigrationTask, MigrationTaskStats, SourceInstance, TargetInstance
from flows.gate import GateResult
from flows.timeline import add_row, publish_now

#: Seconds between two checks whether a paused runbook was resumed (Prefect's poll).
APPROVAL_POLL_SECONDS = 5.0


class Approval(RunInput):
    """The form the Prefect UI shows when the runbook pauses for approval."""

    approve: bool = Field(description="Cut over now? Leave unticked to reject.")
    comment: str = Field(default="", description="Why, for the log and the notification.")


def describe_instance(instance: SourceInstance | TargetInstance | None) -> str:
    """An instance as a person knows it: name, id and address, whichever DCS gave."""
    if instance is None:
        return "not given"
    address = instance.addrs or (
        f"{instance.ip}:{instance.port}" if instance.ip and instance.port else instance.ip
    )
    named = " ".join(
        part
        for part in (instance.name, f"({instance.id})" if instance.id else None)
        if part is not None
    )
    text = " at ".join(part for part in (named, address) if part)
    return text or "not given"


def describe_stats(stats: MigrationTaskStats) -> str:
    """The figures a cutover turns on, as DCS sent them."""
    return (
        f"offset {stats.offset}, source {stats.source_dbsize} keys, "
        f"target {stats.target_dbsize} keys"
    )


def approval_description(
    task: MigrationTask, gate: GateResult | None, stats: MigrationTaskStats | DcsError | None
) -> str:
    """The form's text: the task, its instances, its status and the latest figures."""
    lines = [
        f"Cut over {task.describe()}?",
        "",
        f"- Source: {describe_instance(task.source_instance)}",
        f"- Target: {describe_instance(task.target_instance)}",
        f"- Status: {task.status_text} ({task.stage})"
        + (f", task_status {task.task_status}" if task.task_status else ""),
    ]
    if gate is not None and gate.applied:
        lines.append(f"- Latest stats: {gate.describe()}.")
        lines += ["", "After approval the gate runs again, in full (catch-up gate)."]
    elif gate is not None:
        lines.append(f"- Catch-up gate: not applied, {gate.reason}.")
    else:
        if isinstance(stats, MigrationTaskStats):
            lines.append(f"- Latest stats: {describe_stats(stats)}.")
        elif stats is not None:
            lines.append(f"- Latest stats: could not be read ({stats}).")
        lines += ["", "The catch-up gate is **off**: nothing checks that the target caught up."]
    return "\n".join(lines)


async def ask_approval(task: MigrationTask, timeout_seconds: int, description: str) -> str:
    """Pause the run until a person answers the form; the comment, or CutoverRejected."""
    logger = get_run_logger()
    logger.info(
        "waiting up to %d s for approval of the cutover of %s: resume the run in the UI",
        timeout_seconds,
        task.describe(),
    )
    add_row("approval", task, "asked")
    await publish_now()  # the approver reads the run's timeline while deciding
    answer = await apause_flow_run(
        wait_for_input=Approval.with_initial_data(description=description),
        timeout=timeout_seconds,
        # Prefect sleeps with anyio, which takes a float; its annotation says int.
        poll_interval=cast(int, APPROVAL_POLL_SECONDS),
        # A retried run asks again: Prefect would hand a repeated key the old answer.
        key=f"approve-cutover-{task.task_id}-{flow_run.run_count}",
    )
    comment = answer.comment or "no comment"
    if not answer.approve:
        add_row("approval", None, f"rejected: {comment}")
        msg = f"the cutover of {task.describe()} was rejected: {comment}"
        raise CutoverRejected(msg)
    add_row("approval", None, f"approved: {comment}")
    logger.info("cutover approved: %s", comment)
    return str(answer.comment)


__all__ = [
    "APPROVAL_POLL_SECONDS",
    "Approval",
    "approval_description",
    "ask_approval",
    "describe_instance",
    "describe_stats",
]
