"""The Prefect events this package emits, so automations can react to a migration.

Every event concerns the resource `dcs.migration-task.<task_id>`:

| event | when |
|---|---|
| `dcs.migration.status-changed` | on every change of status (the first one seen included) |
| `dcs.migration.ready-for-cutover` | the task reached incremental sync (INCRMIGRATING) |
| `dcs.migration.succeeded` | the task reached SUCCESS |
| `dcs.migration.failed` | the task reached a failure status (FAILED, TERMINATED, ...) |
| `dcs.migration.timed-out` | a watch gave up at its deadline |
| `dcs.migration.caught-up` | the catch-up gate passed (its figures in the payload) |
| `dcs.migration.gate-failed` | the catch-up gate held the cutover (deadline, unreadable stats) |

The payload holds `task_id`, `task_name`, `project_id`, `old_status`, `new_status`,
`task_status`, `migration_type` and `migration_method`: names and states, never a secret.
An automation picks the task id out with `{{ event.payload.task_id }}`.

The resource's `dcs.emitter` label says who saw the change: `sensor` (the scheduled
`migration_sensor`, once per change), `watch` (a wait flow, which reports what it sees
from its first look on) or `gate` (the catch-up gate in front of a cutover). An
automation that starts a runbook must match `dcs.emitter: sensor`: the runbook's own
watch would otherwise trigger it again, and again.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.events import Event, emit_event

from blocks.models import MigrationTask, MigrationTaskSummary, StatusMeaning

STATUS_CHANGED = "dcs.migration.status-changed"
READY_FOR_CUTOVER = "dcs.migration.ready-for-cutover"
SUCCEEDED = "dcs.migration.succeeded"
FAILED = "dcs.migration.failed"
TIMED_OUT = "dcs.migration.timed-out"
CAUGHT_UP = "dcs.migration.caught-up"
GATE_FAILED = "dcs.migration.gate-failed"
RESOURCE_PREFIX = "dcs.migration-task."
Emitter = Literal["sensor", "watch", "gate"]


def resource(
    task_id: str, task_name: str | None, project_id: str | None, emitter: Emitter
) -> dict[str, str]:
    """The Prefect resource that stands for one DCS migration task, as `emitter` saw it."""
    labels = {
        "prefect.resource.id": f"{RESOURCE_PREFIX}{task_id}",
        "prefect.resource.name": task_name or task_id,
        "dcs.emitter": emitter,
    }
    if project_id:
        labels["dcs.project-id"] = project_id
    return labels


_OUTCOMES = {
    StatusMeaning.READY_FOR_CUTOVER: READY_FOR_CUTOVER,
    StatusMeaning.SUCCEEDED: SUCCEEDED,
    StatusMeaning.FAILED: FAILED,
}


def outcome_event(task: MigrationTask | MigrationTaskSummary) -> str | None:
    """The outcome event a status calls for, if any (none while in progress)."""
    return _OUTCOMES.get(task.meaning)


def transition_payload(
    task: MigrationTask | MigrationTaskSummary, old_status: str | None, project_id: str | None
) -> dict[str, Any]:
    """What an event says about a task's change: names and states only."""
    return {
        "task_id": task.task_id,
        "task_name": task.task_name,
        "project_id": project_id,
        "old_status": old_status,
        "new_status": task.status_text,
        "task_status": getattr(task, "task_status", None),
        "migration_type": task.migration_type,
        "migration_method": task.migration_method,
    }


def emit_transition(
    task: MigrationTask | MigrationTaskSummary,
    old_status: str | None,
    project_id: str | None,
    emitter: Emitter,
) -> list[Event]:
    """Emit `status-changed`, then the outcome event the new status calls for, if any."""
    task_id = task.task_id or "unknown"
    labels = resource(task_id, task.task_name, project_id, emitter)
    payload = transition_payload(task, old_status, project_id)
    names = [STATUS_CHANGED]
    if (outcome := outcome_event(task)) is not None:
        names.append(outcome)
    emitted = [emit_event(name, resource=labels, payload=payload) for name in names]
    return [event for event in emitted if event is not None]


def emit_timed_out(
    task_id: str,
    task_name: str | None,
    last_status: str | None,
    project_id: str | None,
    timeout_seconds: float,
) -> Event | None:
    """Emit `dcs.migration.timed-out` for a watch that reached its deadline."""
    payload = {
        "task_id": task_id,
        "task_name": task_name,
        "project_id": project_id,
        "old_status": last_status,
        "new_status": last_status,
        "timeout_seconds": timeout_seconds,
    }
    labels = resource(task_id, task_name, project_id, "watch")
    return emit_event(TIMED_OUT, resource=labels, payload=payload)


def emit_gate(
    name: str,
    task_id: str,
    task_name: str | None,
    project_id: str | None,
    payload: dict[str, Any],
) -> Event | None:
    """Emit `CAUGHT_UP` or `GATE_FAILED`; `payload` holds figures and reasons, no secret."""
    labels = resource(task_id, task_name, project_id, "gate")
    body = {"task_id": task_id, "task_name": task_name, "project_id": project_id, **payload}
    return emit_event(name, resource=labels, payload=body)


__all__ = [
    "CAUGHT_UP",
    "FAILED",
    "GATE_FAILED",
    "READY_FOR_CUTOVER",
    "RESOURCE_PREFIX",
    "STATUS_CHANGED",
    "SUCCEEDED",
    "TIMED_OUT",
    "Emitter",
    "emit_gate",
    "emit_timed_out",
    "emit_transition",
    "outcome_event",
    "resource",
    "transition_payload",
]
