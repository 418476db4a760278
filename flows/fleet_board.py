"""The fleet run's summary: a row per migration task, one table artifact, updated as it goes.

`migration_fleet` moves each task through `Stage`s; the board keeps the row, and writes the
table to the run (artifact key `dcs-fleet-summary`) when a task ends (at most every
`PUBLISH_SECONDS`, so a thousand tasks ending together write a few versions, not a
thousand), at the end of each wave and when the run ends. A failed write is logged, never
raised: the flow's log has every row's end too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any
from uuid import UUID

from prefect.artifacts import acreate_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.logging import get_run_logger

from blocks.models import MigrationTask
from flows import clock
from flows.gate import GateResult

ARTIFACT_KEY = "dcs-fleet-summary"
#: The least time between two writes of the table while tasks end (the last always goes).
PUBLISH_SECONDS = 10.0
# A cell is a glance; the log has the whole message.
_MAX_CELL = 300


class Stage(str, Enum):
    """Where one task of the fleet stands."""

    WAITING = "waiting"
    GATING = "catch-up gate"
    APPROVAL = "awaiting approval"
    EXCHANGING = "exchanging IPs"
    CUT_OVER = "cut over"
    #: A cutover record says succeeded: someone (this fleet before, a runbook) cut it over.
    ALREADY = "already cut over"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (Stage.CUT_OVER, Stage.ALREADY, Stage.FAILED)


def _now() -> str:
    return clock.current().now().isoformat(timespec="seconds")


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CELL else text[:_MAX_CELL] + "..."


@dataclass
class Row:
    """One task's line in the summary: secret-free names, statuses, figures and times."""

    task_id: str
    task_name: str | None = None
    stage: Stage = Stage.WAITING
    wave: int | None = None
    status: str | None = None
    task_status: str | None = None
    offset: int | str | None = None
    source_keys: int | str | None = None
    target_keys: int | str | None = None
    gate_waited_seconds: float | None = None
    outcome: str = ""
    ready_at: str | None = None
    ended_at: str | None = None

    def cells(self) -> dict[str, Any]:
        cells = asdict(self)
        cells["stage"] = self.stage.value
        return cells


class FleetBoard:
    """The rows of one fleet run, in the order the tasks were given."""

    def __init__(self, task_ids: list[str]) -> None:
        self.rows = {task_id: Row(task_id) for task_id in task_ids}
        self._artifact: UUID | None = None
        self._published_at = float("-inf")
        self._failed = False

    def seen(self, task: MigrationTask) -> None:
        """The task's latest read from DCS (masked; names and statuses only are kept)."""
        row = self.rows[str(task.task_id)]
        row.task_name = task.task_name or row.task_name
        row.status = task.raw_status
        row.task_status = task.task_status

    def ready(self, task: MigrationTask) -> None:
        self.seen(task)
        self.rows[str(task.task_id)].ready_at = _now()

    def move(self, task_id: str, stage: Stage, outcome: str = "") -> None:
        row = self.rows[task_id]
        row.stage = stage
        if outcome:
            row.outcome = _cut(outcome)
        if stage.final:
            row.ended_at = _now()

    def gated(self, result: GateResult) -> None:
        row = self.rows[result.task_id]
        if result.applied:
            row.offset, row.source_keys = result.offset, result.source_dbsize
            row.target_keys, row.gate_waited_seconds = result.target_dbsize, result.waited_seconds

    def in_stage(self, *stages: Stage) -> list[Row]:
        return [row for row in self.rows.values() if row.stage in stages]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.stage.value] = counts.get(row.stage.value, 0) + 1
        return counts

    async def publish(self, *, now: bool = False) -> None:
        """Write the table (if `now`, or once PUBLISH_SECONDS passed since the last write)."""
        time = clock.current().monotonic()
        if self._failed or not (now or time - self._published_at >= PUBLISH_SECONDS):
            return
        self._published_at = time
        table = [row.cells() for row in self.rows.values()]
        try:
            if self._artifact is None:
                self._artifact = await acreate_table_artifact(
                    table, key=ARTIFACT_KEY, description="DCS migration fleet: one row per task"
                )
            else:
                async with get_client() as client:
                    update = ArtifactUpdate(data=json.dumps(table))
                    await client.update_artifact(self._artifact, update)
        except Exception as error:  # the Prefect API may be away; the cutovers go on
            self._failed = True
            get_run_logger().warning(
                "could not write the fleet's summary artifact (%s: %s); the log has each end",
                type(error).__name__,
                error,
            )


__all__ = ["ARTIFACT_KEY", "PUBLISH_SECONDS", "FleetBoard", "Row", "Stage"]
