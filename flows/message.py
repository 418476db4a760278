"""The text of a notification about a migration task: a plain-text subject and body.

Built from named fields only, so it holds no secret; `detail` is free text and may quote
one (an error message, say), so every value the task itself holds as secret is cut out.

```python
from flows.message import format_message

subject, body = format_message(task, event="ready-for-cutover", detail="cut over at 22:00")
```
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prefect.context import FlowRunContext
from prefect.runtime import flow_run as runtime_flow_run
from prefect.utilities.urls import url_for

from blocks.models import MigrationTask
from blocks.redaction import masked_away, scrub

# Chat services cut long messages; an error text pasted whole could be kilobytes.
_MAX_DETAIL = 2000


def one_line(text: str) -> str:
    """`text` with every run of whitespace, newlines included, as one space."""
    return " ".join(text.split())


def _utc(value: datetime) -> datetime:
    # Naive times are UTC, as in blocks.models, so a naive and an aware time subtract.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _when(value: datetime) -> str:
    return _utc(value).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "unknown (ends before it starts)"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m {seconds:02d}s"
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def _span(label: str, start: datetime | str | None, end: datetime | str | None) -> str | None:
    # A date DCS sent in a format we do not read stays text on the task: no span from it.
    start = start if isinstance(start, datetime) else None
    end = end if isinstance(end, datetime) else None
    if start is not None and end is not None:
        took = _duration(_utc(end) - _utc(start))
        return f"{label}: {took} ({_when(start)} -> {_when(end)})"
    if start is not None:
        return f"{label}: since {_when(start)}"
    return None


def _current_flow_run() -> tuple[str | None, str | None]:
    """(name, UI URL) of the flow run we are in, from the run context: no API call."""
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return context.flow_run.name, url_for("flow-run", obj_id=context.flow_run.id)
    # A task run without its flow's context (or PREFECT__FLOW_RUN_ID) still knows the id;
    # its name would cost a blocking API call, so the URL has to do.
    # url_for, not runtime.flow_run.ui_url: that one prints "None/..." without a UI URL.
    run_id = runtime_flow_run.get_id()
    return None, url_for("flow-run", obj_id=run_id) if run_id else None


def format_message(
    task: MigrationTask,
    *,
    event: str,
    flow_run_name: str | None = None,
    flow_run_url: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    detail: str | None = None,
) -> tuple[str, str]:
    """(subject, body) in plain text about `task`; built from named fields, never a secret.

    ```python
    subject, body = format_message(task, event="ready-for-cutover", detail="cut over at 22:00")
    ```
    """
    if flow_run_name is None or flow_run_url is None:
        context_name, context_url = _current_flow_run()
        flow_run_name = flow_run_name or context_name
        flow_run_url = flow_run_url or context_url
    name = task.task_name or "(unnamed)"
    task_id = task.task_id or "?"
    status = f"{task.status_text} ({task.meaning})"
    # The subject says where the task stands: after an exchange, incremental sync goes on
    # and the status alone would still read "ready for cutover".
    subject = one_line(
        f"DCS migration {event}: {name} ({task_id}) {task.status_text} ({task.stage})"
    )
    lines = [
        f"Migration task: {name} ({task_id})",
        f"Event: {one_line(event)}",
        f"Status: {status}",
    ]
    if task.task_status:
        lines.append(f"IP switch (task_status): {task.task_status}")
    kind = " / ".join(part for part in (task.migration_type, task.migration_method) if part)
    if kind:
        lines.append(f"Migration type: {kind}")
    lines += [
        line
        for line in (
            _span("Migration time", task.created_at, task.updated_at),
            _span("Watch time", started_at, ended_at),
        )
        if line is not None
    ]
    if flow_run_name or flow_run_url:
        where = " at ".join(part for part in (flow_run_name, flow_run_url) if part)
        lines.append(f"Flow run: {where}")
    if detail:
        text = detail if len(detail) <= _MAX_DETAIL else detail[:_MAX_DETAIL] + "..."
        lines.append(f"Detail: {text}")
    body = "\n".join(lines)
    # The message names no secret field, but `detail` is free text (an error message, say)
    # and may quote one: cut out every value the task itself holds as secret.
    if task.has_unmasked_secrets():
        secrets = set(masked_away(task, task.masked()))
        subject, body = scrub(subject, secrets), scrub(body, secrets)
    return subject, body


__all__ = ["format_message", "one_line"]
