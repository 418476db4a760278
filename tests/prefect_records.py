"""Read back what a flow run left in Prefect: task runs, logs, artifacts, its parameters."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, Log, TaskRun
from prefect.logging.handlers import APILogHandler


@dataclass
class Records:
    """Everything Prefect stored about one flow run and its subflow runs."""

    flow_run: FlowRun
    subflow_runs: list[FlowRun] = field(default_factory=list)
    task_runs: list[TaskRun] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)

    def text(self) -> str:
        """All of it as one string, to search for a secret that must not be there."""
        parts: list[Any] = [self.flow_run.model_dump(mode="json")]
        parts += [run.model_dump(mode="json") for run in self.subflow_runs]
        parts += [run.model_dump(mode="json") for run in self.task_runs]
        parts += [log.message for log in self.logs]
        parts += [artifact.model_dump(mode="json") for artifact in self.artifacts]
        return json.dumps(parts, default=str)

    def messages(self) -> list[str]:
        """The log messages, oldest first."""
        return [log.message for log in self.logs]


async def read_records(flow_run_id: UUID, *, task_runs: int = 0) -> Records:
    """What the Prefect API holds for this flow run (logs flushed first).

    The server records task runs from events, a moment after they happen: wait (at most
    30 s) until at least `task_runs` of them, all finished, are there.
    """
    await APILogHandler.aflush()
    deadline = time.monotonic() + 30
    while True:
        records = await _read(flow_run_id)
        finished = [run for run in records.task_runs if run.state and run.state.is_final()]
        if len(finished) >= task_runs or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.05)


async def _read(flow_run_id: UUID) -> Records:
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
        subflows = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )
        run_ids = [flow_run_id, *(run.id for run in subflows)]
        task_runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
        )
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids))
        )
        artifacts = await client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
        )
    # A subflow's own task runs have the subflow as their flow run; parent task runs that
    # stand for subflows are kept too, as Prefect stores them.
    return Records(flow_run, list(subflows), list(task_runs), list(logs), list(artifacts))
