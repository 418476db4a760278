"""The catch-up gate in Prefect: no cutover until the target has caught up, and stayed so.

DCS shows `INCRMIGEATING` as soon as incremental sync runs; that says nothing about how
far the target lags. The gate reads the task's stats (`flows.catchup` decides what they
say) in ONE Prefect task run, `catch-up-gate-<task id>`, and writes to Prefect on change:

- a log line when the figures or the verdict change, a warning at the start of a streak
  of failed reads;
- a markdown artifact on the flow run: a table of the figures over time (a row per
  change, not per read) and the outcome, updated as it goes;
- `dcs.migration.caught-up` when it passes, `dcs.migration.gate-failed` when it holds the
  cutover (`CutoverGateTimeout`) or cannot read the stats, with the figures in the payload.

`migration_runbook` runs it in front of every cutover; `wait_until_caught_up` is the same
gate as a flow of its own, for other runbooks:

```python
import asyncio

from flows.gate import wait_until_caught_up

result = asyncio.run(wait_until_caught_up("a276c1ffa0a54c2597fc824b917db317", "dcs"))
print(result.offset, result.key_difference, result.waited_seconds)
```
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.logging.loggers import LoggingAdapter
from pydantic import BaseModel, Field

from blocks.client import validate_path_parameter
from blocks.credentials import DcsCredentials
from blocks.errors import CutoverGateTimeout, DcsError
from blocks.models import MigrationTask
from flows import clock
from flows.catchup import (
    CaughtUp,
    Figure,
    GateObserver,
    GateSettings,
    Reading,
    check_gateable,
    skip_reason,
    wait_caught_up,
)
from flows.credentials import DEFAULT_BLOCK_NAME, BlockName, aload_credentials
from flows.events import CAUGHT_UP, GATE_FAILED, emit_gate
from flows.polling import open_client, read_task
from flows.wait import artifact_key

#: The table keeps its first row and the latest ones: a glance, not a log.
MAX_ROWS = 60
_MAX_VERDICT = 160


class GateResult(BaseModel):
    """How the catch-up gate ended (secret-free: it is persisted as a task result)."""

    task_id: str
    applied: bool = Field(description="False when the gate does not apply to the task.")
    stage: str = Field(description="Where in the runbook it ran, e.g. 'before approval'.")
    reason: str = Field(description="Why it passed, or why it does not apply.")
    offset: Figure = None
    source_dbsize: Figure = None
    target_dbsize: Figure = None
    key_difference: int | None = None
    waited_seconds: float = 0.0
    reads: int = 0

    @classmethod
    def passed(cls, task_id: str, stage: str, caught_up: CaughtUp) -> GateResult:
        """The result of a gate that passed."""
        reading = caught_up.reading
        return cls(
            task_id=task_id,
            applied=True,
            stage=stage,
            reason=reading.reason,
            offset=reading.offset,
            source_dbsize=reading.source_dbsize,
            target_dbsize=reading.target_dbsize,
            key_difference=reading.key_difference,
            waited_seconds=caught_up.waited_seconds,
            reads=caught_up.reads,
        )

    def describe(self) -> str:
        """One line for logs, notifications and the approval form."""
        if not self.applied:
            return f"catch-up gate not applied: {self.reason}"
        difference = "" if self.key_difference is None else f", difference {self.key_difference}"
        return (
            f"caught up {self.stage}: offset {self.offset}, source {self.source_dbsize} keys, "
            f"target {self.target_dbsize} keys{difference} (gate passed after "
            f"{self.waited_seconds:.0f} s, {self.reads} reads)"
        )


def _cell(value: object) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= _MAX_VERDICT else text[:_MAX_VERDICT] + "..."


def _verdict(reading: Reading) -> str:
    if reading.error is not None:
        return f"read failed: {reading.error}"
    return "passing" if reading.passing else f"not passing: {reading.reason}"


class PrefectGateObserver(GateObserver):
    """Writes the gate to Prefect on change: log lines and a markdown artifact of figures."""

    def __init__(
        self,
        task_id: str,
        title: str,
        settings: GateSettings,
        logger: logging.Logger | LoggingAdapter,
    ) -> None:
        self.task_id = task_id
        self.title = title
        self.settings = settings
        self.logger = logger
        self.rows: list[str] = []
        self.dropped = 0
        self.outcome = ""
        self._last: tuple[object, ...] | None = None
        self._artifact: UUID | None = None
        self._artifact_failed = False

    async def read(self, reading: Reading) -> None:
        changed = (
            reading.offset,
            reading.source_dbsize,
            reading.target_dbsize,
            reading.passing,
            reading.error is None,
        )
        if changed == self._last:
            return
        self._last = changed
        if reading.error is None:
            self.logger.info(
                "catch-up gate, migration task %s: %s: %s",
                self.task_id,
                reading.figures(),
                "passing" if reading.passing else f"not passing ({reading.reason})",
            )
        when = clock.current().now().strftime("%Y-%m-%d %H:%M:%S")
        difference = reading.key_difference
        cells = [
            when,
            reading.offset,
            reading.source_dbsize,
            reading.target_dbsize,
            "" if difference is None else difference,
            _verdict(reading),
        ]
        self.rows.append("| " + " | ".join(_cell("" if c is None else c) for c in cells) + " |")
        if len(self.rows) > MAX_ROWS:
            del self.rows[1]  # the first row stays: where the gate started from
            self.dropped += 1
        await self.publish()

    async def transient_error(self, error: DcsError, streak: int) -> None:
        if streak == 1:  # once per streak: an outage of minutes must not flood the log
            self.logger.warning(
                "catch-up gate, migration task %s: cannot read the stats (%s); still trying "
                "until the gate's deadline",
                self.task_id,
                error,
            )

    async def recovered(self, streak: int) -> None:
        self.logger.info(
            "catch-up gate, migration task %s: the stats are readable again after %d failed "
            "read(s); the settle window starts again",
            self.task_id,
            streak,
        )

    def markdown(self) -> str:
        """The artifact's text: what passes, the figures over time, and the outcome."""
        s = self.settings
        lines = [
            f"### {self.title}",
            "",
            f"Passes when every read for {s.settle_seconds:g} s shows offset <= {s.max_offset} "
            f"and a key difference <= {s.max_key_difference}; one read every "
            f"{s.gate_interval_seconds:g} s, for at most {s.gate_timeout_seconds:g} s. "
            f"A row per change of figures or verdict.",
            "",
            "| time (UTC) | offset | source keys | target keys | difference | verdict |",
            "|---|---:|---:|---:|---:|---|",
            *self.rows[:1],
        ]
        if self.dropped:
            lines.append(f"| ... | | | | | {self.dropped} earlier rows left out |")
        lines += self.rows[1:]
        if self.outcome:
            lines += ["", self.outcome]
        return "\n".join(lines)

    async def publish(self) -> None:
        """Create the artifact, or update it; the gate never fails for want of it."""
        if self._artifact_failed:
            return
        try:
            if self._artifact is None:
                self._artifact = await acreate_markdown_artifact(
                    self.markdown(),
                    key=artifact_key("catch-up", self.task_id),
                    description=self.title,
                )
            else:
                async with get_client() as client:
                    update = ArtifactUpdate(data=self.markdown())
                    await client.update_artifact(self._artifact, update)
        except Exception as exc:  # a Prefect API hiccup must not hold or pass a cutover
            self._artifact_failed = True
            self.logger.warning(
                "catch-up gate: could not write its artifact (%s: %s); the log has the figures",
                type(exc).__name__,
                exc,
            )

    async def finish(self, outcome: str) -> None:
        self.outcome = outcome
        await self.publish()


def _payload(
    stage: str, settings: GateSettings, figures: dict[str, Figure], **extra: Any
) -> dict[str, Any]:
    return {
        "stage": stage,
        **figures,
        "settle_seconds": settings.settle_seconds,
        "max_offset": settings.max_offset,
        "max_key_difference": settings.max_key_difference,
        **extra,
    }


@task(name="catch-up-gate", task_run_name="catch-up-gate-{task_id}", cache_policy=NO_CACHE)
async def catch_up_gate(
    task_id: str,
    credentials: str | DcsCredentials,
    settings: GateSettings,
    stage: str = "before the cutover",
    task_name: str | None = None,
) -> GateResult:
    """Read the stats until the target stayed caught up for `settle_seconds`: one task run.

    Raises `CutoverGateTimeout` at `gate_timeout_seconds`, and a `DcsError` that is not
    worth riding out (a refused credential, a deleted task) at once.
    """
    logger = get_run_logger()
    block = await aload_credentials(credentials)
    name = task_name or task_id
    observer = PrefectGateObserver(
        task_id, f"Catch-up gate of DCS task {name}, {stage}", settings, logger
    )
    logger.info(
        "catch-up gate %s for migration task %s: waiting until every read for %g s shows "
        "offset <= %d and a key difference <= %d (at most %g s)",
        stage,
        task_id,
        settings.settle_seconds,
        settings.max_offset,
        settings.max_key_difference,
        settings.gate_timeout_seconds,
    )
    try:
        async with open_client(block) as client:
            caught_up = await wait_caught_up(client, task_id, settings, observer)
    except CutoverGateTimeout as held:
        logger.error("%s", held)
        figures = {
            "offset": held.last_offset,
            "source_dbsize": held.last_source_dbsize,
            "target_dbsize": held.last_target_dbsize,
        }
        payload = _payload(
            stage,
            settings,
            figures,
            reason=held.reason,
            error_type=type(held).__name__,
            waited_seconds=held.waited_seconds,
            gate_timeout_seconds=settings.gate_timeout_seconds,
        )
        emit_gate(GATE_FAILED, task_id, task_name, block.project_id, payload)
        await observer.finish(f"**Held, no cutover:** {_cell(held)}")
        raise
    except DcsError as error:
        logger.error(
            "catch-up gate for migration task %s: the stats cannot be read (%s: %s); no cutover",
            task_id,
            type(error).__name__,
            error,
        )
        empty: dict[str, Figure] = {}
        payload = _payload(
            stage, settings, empty, reason=str(error), error_type=type(error).__name__
        )
        emit_gate(GATE_FAILED, task_id, task_name, block.project_id, payload)
        await observer.finish(f"**Failed, no cutover:** {_cell(error)}")
        raise
    result = GateResult.passed(task_id, stage, caught_up)
    logger.info("catch-up gate: migration task %s %s", task_id, result.describe())
    figures = {
        "offset": result.offset,
        "source_dbsize": result.source_dbsize,
        "target_dbsize": result.target_dbsize,
    }
    payload = _payload(
        stage,
        settings,
        figures,
        key_difference=result.key_difference,
        waited_seconds=result.waited_seconds,
        reads=result.reads,
    )
    emit_gate(CAUGHT_UP, task_id, task_name, block.project_id, payload)
    await observer.finish(f"**Caught up:** {_cell(result.describe())}")
    return result


async def gate_cutover(
    task: MigrationTask,
    credentials: str | DcsCredentials,
    settings: GateSettings,
    stage: str,
) -> GateResult:
    """Run the gate for `task` (as last read), or log why it does not apply to it."""
    task_id = str(task.task_id)
    reason = skip_reason(task)
    if reason is None:
        return await catch_up_gate(task_id, credentials, settings, stage, task.task_name)
    get_run_logger().info("catch-up gate not applied %s: %s", stage, reason)
    return GateResult(task_id=task_id, applied=False, stage=stage, reason=reason)


@flow(name="wait-until-caught-up", flow_run_name="caught-up-{task_id}")
async def wait_until_caught_up(
    task_id: str,
    credentials: BlockName = DEFAULT_BLOCK_NAME,
    gate_interval_seconds: float = 10.0,
    settle_seconds: float = 60.0,
    gate_timeout_seconds: float = 1800.0,
    max_offset: int = 0,
    max_key_difference: int = 1000,
) -> GateResult:
    """Wait until a migration's target has caught up with its source, and stayed so.

    For a task in incremental sync: passes when every read of the stats for
    `settle_seconds` shows `offset` <= `max_offset` and |source_dbsize - target_dbsize|
    <= `max_key_difference`; raises `CutoverGateTimeout` (no cutover!) otherwise. A
    finished full migration passes at once (`applied` False: it has no incremental sync);
    a task still in full migration is refused; a failed one raises `MigrationFailed`.

    Args:
        task_id: The migration task's ID, as the DCS console shows it.
        credentials: Name of the saved DcsCredentials block (a name, never the block).
        gate_interval_seconds: Seconds between two reads of the stats.
        settle_seconds: How long every read must pass in a row (one failing read restarts
            the window).
        gate_timeout_seconds: Give up (CutoverGateTimeout) after this many seconds.
        max_offset: The largest offset that counts as caught up (DCS: 0 = no difference).
        max_key_difference: The largest |source keys - target keys| that counts as caught
            up (keys expire, so an exact match may never come).
    """
    settings = GateSettings(
        gate_interval_seconds=gate_interval_seconds,
        settle_seconds=settle_seconds,
        gate_timeout_seconds=gate_timeout_seconds,
        max_offset=max_offset,
        max_key_difference=max_key_difference,
    )
    validate_path_parameter("task_id", task_id)
    async with open_client(await aload_credentials(credentials)) as client:
        migration = await read_task(client, task_id)
    check_gateable(migration)
    return await gate_cutover(migration, credentials, settings, "before the cutover")


__all__ = [
    "MAX_ROWS",
    "GateResult",
    "PrefectGateObserver",
    "catch_up_gate",
    "gate_cutover",
    "wait_until_caught_up",
]
