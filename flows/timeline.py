"""One table of what happened to a migration in a runbook run, start to cutover.

The watch, the catch-up gate, the approval and the IP exchange each run in their own task
run, and each knows only its part. The runbook opens a `RunTimeline` with `recording()`;
whatever runs inside (tasks and subflows inherit the context) adds its rows with
`add_row()`, which does nothing outside a runbook. The runbook publishes the table as an
artifact on its own run, `dcs-runbook-<task id>`, before it pauses for approval (so the
approver reads it) and when it ends, however it ends.

```python
async with recording(RunTimeline(task_id)) as timeline:
    add_row("watch", task)  # from anywhere inside
    await timeline.publish()
```
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from prefect.artifacts import acreate_table_artifact
from prefect.logging import get_run_logger

from blocks.models import MigrationTask
from flows import clock

_CURRENT: ContextVar[RunTimeline | None] = ContextVar("dcs_run_timeline", default=None)


def artifact_key(kind: str, task_id: str) -> str:
    """An artifact key for a task: Prefect allows only lowercase letters, digits and '-'."""
    return f"dcs-{kind}-" + re.sub(r"[^a-z0-9-]+", "-", task_id.lower()).strip("-")[:80]


class RunTimeline:
    """The rows of one migration's runbook run: when, which step, the status and detail."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.rows: list[dict[str, Any]] = []

    def add(self, step: str, task: MigrationTask | None = None, detail: str = "") -> None:
        """A row now: `task` gives the status and task_status as DCS sent them."""
        self.rows.append(
            {
                "at": clock.current().now().isoformat(timespec="seconds"),
                "step": step,
                "status": task.status_text if task is not None else "",
                "task_status": (task.task_status or "") if task is not None else "",
                "detail": detail,
            }
        )

    async def publish(self) -> None:
        """The table as an artifact on the run; a failed write is logged, never raised."""
        if not self.rows:
            return
        try:
            await acreate_table_artifact(
                self.rows,
                key=artifact_key("runbook", self.task_id),
                description=f"What the runbook did for DCS migration task {self.task_id}",
            )
        except Exception as error:  # the Prefect API may be away; the log has every row
            get_run_logger().warning(
                "could not write the runbook's timeline artifact (%s: %s)",
                type(error).__name__,
                error,
            )


def add_row(step: str, task: MigrationTask | None = None, detail: str = "") -> None:
    """Add a row to the runbook timeline being recorded, if any."""
    timeline = _CURRENT.get()
    if timeline is not None:
        timeline.add(step, task, detail)


async def publish_now() -> None:
    """Publish the runbook timeline being recorded, if any, as it stands."""
    timeline = _CURRENT.get()
    if timeline is not None:
        await timeline.publish()


@asynccontextmanager
async def recording(timeline: RunTimeline) -> AsyncIterator[RunTimeline]:
    """Record rows into `timeline` inside the block, and publish it when the block ends."""
    token = _CURRENT.set(timeline)
    try:
        yield timeline
    finally:
        _CURRENT.reset(token)
        await timeline.publish()


__all__ = ["RunTimeline", "add_row", "artifact_key", "recording"]
