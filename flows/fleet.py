"""`migration_fleet`: one flow run for many migrations, each cut over once, as soon as it can be.

A night of tens to hundreds of migrations in one flow run (one worker process) instead of a
runbook each. The run:

1. takes the task ids given, or every task whose name contains `name_filter`;
2. stands down, at once and without watching, every task whose IP exchange record says
   it succeeded (cut over before: by an earlier fleet run, or by a runbook);
3. watches the rest with the fan-out watcher (`watch_migration_tasks`: one task run, a
   page of statuses per request), which hands each task over the moment its watch ends
   (`on_end`): a ready task goes on to its cutover while the others are still watched, a
   failed, deleted or timed-out one is marked failed;
4. for each ready task: the catch-up gate, the approval (per task, per wave, or none), the
   gate again after an approval, and the IP exchange (`exchange_instance_ip`), at most
   `max_parallel_cutovers` at a time. The steps are the runbook's (`flows.handover`); only
   their order across tasks, the approvals and the board are the fleet's own. With
   `wave_size`, tasks go in waves: a wave takes up to `wave_size` of the tasks ready when
   the last wave ended, and the next starts when all of it has ended;
5. keeps a summary table on the run (`flows.fleet_board`), sends a notification per wave
   and one at the end, and ends Completed only if every task was cut over (or already
   was); otherwise Failed, naming the tasks, once all others have ended.

Exactly once per task: the exchange goes through the same durable records as the runbook
(`flows.records`), so of a fleet run, a runbook and a second fleet run, one POST is ever
made. A task with an earlier record that did not succeed (a request made, outcome unknown)
skips the gate and the approval: `exchange_instance_ip` then follows what DCS shows, or
refuses; it never requests again.

Approvals pause the whole flow run (Prefect's pause is per run): while one is open, the
watch and the gates already running go on, but no new step starts until it is answered.
Approvals are asked one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from blocks.client import validate_path_parameter
from blocks.errors import CutoverFailed, DcsValidationError
from blocks.models import MigrationTask
from flows import clock
from flows.approval import approved_comment, pause_for_approval
from flows.catchup import Gate, GateSettings
from flows.credentials import DEFAULT_BLOCK_NAME, BlockName, aload_credentials
from flows.fleet_board import FleetBoard, Stage
from flows.gate import GateResult
from flows.handover import (
    STAGE_BEFORE_APPROVAL,
    CutoverPlan,
    approval_form,
    check_cut_over,
    exchange_ip,
    run_gate,
    stage_before,
)
from flows.notify import check_notification_blocks, send_notification
from flows.polling import Outcome, WatchSettings, open_client
from flows.records import CutoverRecords, Record, RecordState
from flows.wait import watch_migration_tasks

FleetApproval = Literal["none", "per_wave", "per_task"]
APPROVAL_VALUES: tuple[str, ...] = get_args(FleetApproval)
#: Record reads in flight at once when the run starts (one or two reads per task).
RECORD_READS = 10
_STAGE_BEFORE_EXCHANGE = stage_before("exchange_ip")
# A failure message names this many tasks; the summary artifact has them all.
_NAMED_IN_FAILURE = 20


class FleetSummary(BaseModel):
    """What the fleet run did, a row per task (secret-free: persisted as the run's result)."""

    counts: dict[str, int] = Field(description="How many tasks ended in each stage.")
    tasks: list[dict[str, Any]] = Field(description="The summary table's rows.")


def fleet_run_name() -> str:
    """The name of a fleet's flow run: `fleet-<name filter>` or `fleet-<n>-tasks`."""
    parameters = flow_run.parameters
    if parameters.get("name_filter"):
        return f"fleet-{parameters['name_filter']}"
    return f"fleet-{len(parameters.get('task_ids') or [])}-tasks"


@dataclass(frozen=True)
class _Plan:
    """What the fleet was asked to do, checked once; `cutover` is each task's (the runbook's)."""

    credentials: str
    cutover: CutoverPlan
    approval: FleetApproval
    wave_size: int
    max_parallel_cutovers: int
    notification_blocks: list[str]

    def __post_init__(self) -> None:
        problems = []
        if self.approval not in APPROVAL_VALUES:
            problems.append(
                f"approval must be one of {', '.join(APPROVAL_VALUES)}, got {self.approval!r}"
            )
        if self.wave_size < 0:
            problems.append(f"wave_size must be 0 (no waves) or more, got {self.wave_size!r}")
        if self.approval == "per_wave" and self.wave_size == 0:
            problems.append("approval='per_wave' needs waves: set wave_size to 1 or more")
        if self.max_parallel_cutovers < 1:
            problems.append(
                f"max_parallel_cutovers must be at least 1, got {self.max_parallel_cutovers!r}"
            )
        if problems:
            raise DcsValidationError("; ".join(problems))


def _given_ids(task_ids: list[str] | None, name_filter: str | None) -> list[str] | None:
    """The ids given (checked, once each), None when a name filter picks them; or why not."""
    if bool(task_ids) == bool(name_filter):
        msg = (
            "give either task_ids (the migration tasks' ids) or name_filter (a part of their "
            f"names), not {'both' if task_ids else 'neither'}"
        )
        raise DcsValidationError(msg)
    if not task_ids:
        return None
    for task_id in task_ids:
        validate_path_parameter("task_id", task_id)
    return list(dict.fromkeys(task_ids))


async def _named_ids(credentials: str, name_filter: str) -> list[str]:
    """The ids of every task whose name DCS matches with `name_filter`."""
    ids: list[str] = []
    async with open_client(await aload_credentials(credentials)) as client:
        async for page in client.iter_migration_task_pages(name=name_filter):
            ids += [item.task_id for item in page.migration_tasks if item.task_id]
    if not ids:
        msg = (
            f"no migration task's name matches name_filter {name_filter!r}: check the names "
            f"in the DCS console, or pass task_ids"
        )
        raise DcsValidationError(msg)
    return list(dict.fromkeys(ids))


async def _prior_records(task_ids: list[str]) -> dict[str, Record]:
    """Each task's latest IP exchange record, if it has one that was not refused."""
    found: dict[str, Record] = {}
    reads = asyncio.Semaphore(RECORD_READS)
    async with get_client() as prefect:

        async def read(task_id: str) -> None:
            async with reads:
                latest = await CutoverRecords(prefect, task_id, "exchange-ip").latest()
            if latest is not None and latest.state is not RecordState.REFUSED:
                found[task_id] = latest

        await asyncio.gather(*(read(task_id) for task_id in task_ids))
    return found


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass
class _Fleet:
    """One fleet run in progress: the board, the ready tasks, and the cutovers under way."""

    plan: _Plan
    board: FleetBoard
    ready: list[MigrationTask] = field(default_factory=list)
    watch_over: bool = False
    #: Tasks with an earlier request on record: no gate, no approval, the exchange follows.
    resuming: set[str] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    approvals: asyncio.Lock = field(default_factory=asyncio.Lock)
    slots: asyncio.Semaphore = field(init=False)
    logger: Any = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.plan.max_parallel_cutovers)
        self.logger = get_run_logger()

    # -- what the watch hands over ------------------------------------------------------

    async def pump(self, outcomes: asyncio.Queue[Outcome | None]) -> None:
        """Take each outcome of the watch as it comes; None: the watch is over."""
        while (outcome := await outcomes.get()) is not None:
            await self.take(outcome)
        self.watch_over = True
        self.arrived.set()

    async def take(self, outcome: Outcome) -> None:
        if outcome.task is not None:
            self.board.seen(outcome.task)
        if outcome.error is None and outcome.task is not None:
            self.logger.info("fleet: %s is ready", outcome.task.describe())
            self.board.ready(outcome.task)
            self.ready.append(outcome.task)
            self.arrived.set()
            return
        await self.failed(outcome.task_id, outcome.error or CutoverFailed("no task read"))

    async def failed(self, task_id: str, error: BaseException) -> None:
        self.logger.error("fleet: migration task %s not cut over: %s", task_id, error)
        self.board.move(task_id, Stage.FAILED, _error_text(error))
        await self.board.publish()

    async def next_ready(self, limit: int) -> list[MigrationTask]:
        """Up to `limit` ready tasks, waiting for one; [] once none can come any more."""
        while not self.ready and not self.watch_over:
            self.arrived.clear()
            await self.arrived.wait()
        batch = self.ready[:limit]
        del self.ready[:limit]
        return batch

    # -- the two ways to go ---------------------------------------------------------------

    async def run_free(self) -> None:
        """No waves: each task goes as soon as it is ready and a slot is free."""
        cutovers: set[asyncio.Future[bool]] = set()
        try:
            while batch := await self.next_ready(1):
                cutovers.add(asyncio.ensure_future(self.slotted(self.alone(batch[0]))))
            await asyncio.gather(*cutovers)
        finally:
            await _cancel(cutovers)

    async def run_waves(self) -> None:
        """Waves of up to `wave_size` ready tasks, one after another."""
        number = 0
        while batch := await self.next_ready(self.plan.wave_size):
            number += 1
            await self.wave(number, batch)
            await self.after_wave(number, batch)

    async def wave(self, number: int, batch: list[MigrationTask]) -> None:
        ids = [str(task.task_id) for task in batch]
        for task_id in ids:
            self.board.rows[task_id].wave = number
        self.logger.info("fleet: wave %d, %d migration tasks: %s", number, len(ids), ids)
        if self.plan.approval != "per_wave":
            await asyncio.gather(*(self.slotted(self.alone(task)) for task in batch))
            return
        gates = await asyncio.gather(*(self.slotted(self.before_approval(task)) for task in batch))
        asked = [(task, gate) for task, gate in zip(batch, gates, strict=True) if gate is not False]
        if asked and not await self.guarded_wave(number, asked):
            return
        await asyncio.gather(*(self.slotted(self.after_approval(task)) for task, _ in asked))

    async def after_wave(self, number: int, batch: list[MigrationTask]) -> None:
        await self.board.publish(now=True)
        rows = [self.board.rows[str(task.task_id)] for task in batch]
        done = sum(row.stage in (Stage.CUT_OVER, Stage.ALREADY) for row in rows)
        subject = f"DCS migration fleet, wave {number}: {done} of {len(rows)} cut over"
        await self.tell(subject, self.lines(rows))

    # -- one task -------------------------------------------------------------------------

    async def slotted(self, step: Coroutine[Any, Any, Any]) -> Any:
        async with self.slots:
            return await step

    async def alone(self, task: MigrationTask) -> bool:
        """Gate, (approval, gate again,) exchange; False when the task failed."""
        try:
            if not await self.fresh(task):
                return True
            if task.task_id not in self.resuming:
                if self.plan.approval == "per_task":
                    gate = await self.gate(task, STAGE_BEFORE_APPROVAL)
                    await self.approve_task(task, gate)
                await self.gate(task, _STAGE_BEFORE_EXCHANGE)
            await self.exchange(task)
        except Exception as error:
            await self.failed(str(task.task_id), error)
            return False
        return True

    async def before_approval(self, task: MigrationTask) -> GateResult | bool | None:
        """A wave's first pass: the gate's result (None: gate off); False: stop here."""
        try:
            if not await self.fresh(task):
                return False
            if task.task_id in self.resuming:
                return None
            return await self.gate(task, STAGE_BEFORE_APPROVAL)
        except Exception as error:
            await self.failed(str(task.task_id), error)
            return False

    async def after_approval(self, task: MigrationTask) -> None:
        try:
            if task.task_id not in self.resuming:
                await self.gate(task, _STAGE_BEFORE_EXCHANGE)
            await self.exchange(task)
        except Exception as error:
            await self.failed(str(task.task_id), error)

    async def fresh(self, task: MigrationTask) -> bool:
        """False when a record says the task was cut over already (stood down here)."""
        task_id = str(task.task_id)
        prior = (await _prior_records([task_id])).get(task_id)
        if prior is not None and prior.state is RecordState.SUCCEEDED:
            self.stand_down(task_id, prior)
            await self.board.publish()
            return False
        if prior is not None:
            self.logger.warning(
                "fleet: migration task %s has a cutover record (%s, state %r): no gate and "
                "no approval; the exchange follows what DCS shows, and never requests again",
                task_id,
                prior.name,
                prior.value.get("state"),
            )
            self.resuming.add(task_id)
        return True

    def stand_down(self, task_id: str, record: Record) -> None:
        by = record.value.get("flow_run_id")
        self.logger.info("fleet: migration task %s was cut over already (flow run %s)", task_id, by)
        self.board.move(task_id, Stage.ALREADY, f"record {record.name}, by flow run {by}")

    async def gate(self, task: MigrationTask, stage: str) -> GateResult | None:
        plan = self.plan.cutover
        if plan.gate == "off":
            return None
        self.board.move(str(task.task_id), Stage.GATING)
        result = await run_gate(task, self.plan.credentials, plan.gate_settings, stage)
        self.board.gated(result)
        return result

    async def form(self, task: MigrationTask, gate: GateResult | bool | None) -> str:
        shown = gate if isinstance(gate, GateResult) else None
        return await approval_form(task, self.plan.credentials, shown)

    async def approve_task(self, task: MigrationTask, gate: GateResult | None) -> None:
        self.board.move(str(task.task_id), Stage.APPROVAL)
        subject = f"the cutover of {task.describe()}"
        description = await self.form(task, gate)
        async with self.approvals:  # a pause is the whole run's: one question at a time
            answer = await pause_for_approval(
                subject,
                f"approve-cutover-{task.task_id}",
                self.plan.cutover.approval_timeout_seconds,
                description,
            )
        approved_comment(subject, answer)

    async def guarded_wave(
        self, number: int, asked: list[tuple[MigrationTask, GateResult | bool | None]]
    ) -> bool:
        """One approval for the wave; False (each task failed) if it was not given."""
        for task, _ in asked:
            self.board.move(str(task.task_id), Stage.APPROVAL)
        subject = f"wave {number} of the fleet ({len(asked)} migration tasks)"
        parts = [f"Cut over wave {number}: {len(asked)} migration tasks?"]
        try:
            parts += await asyncio.gather(*(self.form(task, gate) for task, gate in asked))
            async with self.approvals:
                answer = await pause_for_approval(
                    subject,
                    f"approve-wave-{number}",
                    self.plan.cutover.approval_timeout_seconds,
                    "\n\n---\n\n".join(parts),
                )
            approved_comment(subject, answer)
        except Exception as error:
            for task, _ in asked:
                await self.failed(str(task.task_id), error)
            return False
        return True

    async def exchange(self, task: MigrationTask) -> None:
        task_id = str(task.task_id)
        self.board.move(task_id, Stage.EXCHANGING)
        done = await exchange_ip(task_id, self.plan.credentials, self.plan.cutover)
        self.board.seen(done)
        check_cut_over(done, "exchange_ip")
        self.logger.info("fleet: %s cut over (task_status %s)", done.describe(), done.task_status)
        self.board.move(task_id, Stage.CUT_OVER, f"task_status {done.task_status}")
        await self.board.publish()

    # -- telling people -------------------------------------------------------------------

    def lines(self, rows: Any) -> str:
        return "\n".join(
            f"- {row.task_name or row.task_id} ({row.task_id}): {row.stage.value}"
            + (f": {row.outcome}" if row.outcome else "")
            for row in rows
        )

    async def tell(self, subject: str, body: str) -> None:
        if not self.plan.notification_blocks:
            return
        try:
            await send_notification(subject, body, self.plan.notification_blocks)
        except Exception as error:  # a message lost must not cost the other cutovers
            self.logger.error("fleet: notification %r not sent: %s", subject, _error_text(error))


async def _cancel(futures: set[asyncio.Future[bool]]) -> None:
    for future in futures:
        future.cancel()
    await asyncio.gather(*futures, return_exceptions=True)


async def _watch(
    fleet: _Fleet, task_ids: list[str], settings: WatchSettings, max_requests_per_second: float
) -> None:
    """Watch, the pump taking each outcome as it comes; a watch that breaks fails the rest."""
    outcomes: asyncio.Queue[Outcome | None] = asyncio.Queue()
    pump = asyncio.ensure_future(fleet.pump(outcomes))
    try:
        if task_ids:
            await watch_migration_tasks(
                task_ids,
                fleet.plan.credentials,
                settings,
                max_requests_per_second=max_requests_per_second,
                on_end=outcomes.put,
            )
    except Exception as error:
        fleet.logger.error("fleet: the watch broke off: %s", _error_text(error))
        for row in fleet.board.in_stage(Stage.WAITING):
            fleet.board.move(row.task_id, Stage.FAILED, f"watch broke off: {_error_text(error)}")
    finally:
        outcomes.put_nowait(None)
        await pump


async def _run(fleet: _Fleet, watched: list[str], settings: WatchSettings, rps: float) -> None:
    """The watch and the cutovers side by side; whatever ends the run stops both."""
    watch = asyncio.ensure_future(_watch(fleet, watched, settings, rps))
    try:
        await (fleet.run_waves() if fleet.plan.wave_size else fleet.run_free())
        await watch
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)


def _failure(board: FleetBoard) -> CutoverFailed | None:
    failed = [row for row in board.rows.values() if row.stage is not Stage.CUT_OVER]
    failed = [row for row in failed if row.stage is not Stage.ALREADY]
    if not failed:
        return None
    named = "; ".join(f"{row.task_id} ({row.outcome or row.stage.value})" for row in failed)
    if len(failed) > _NAMED_IN_FAILURE:
        shown = failed[:_NAMED_IN_FAILURE]
        named = "; ".join(f"{row.task_id} ({row.outcome or row.stage.value})" for row in shown)
        named += f"; and {len(failed) - _NAMED_IN_FAILURE} more (see the summary artifact)"
    msg = f"the fleet did not cut over {len(failed)} of {len(board.rows)} migration tasks: {named}"
    return CutoverFailed(msg)


@flow(name="dcs-migration-fleet", flow_run_name=fleet_run_name)
async def migration_fleet(
    task_ids: list[str] | None = None,
    name_filter: str | None = None,
    credentials: BlockName = DEFAULT_BLOCK_NAME,
    max_parallel_cutovers: int = 5,
    wave_size: int = 0,
    approval: FleetApproval = "none",
    approval_timeout_seconds: int = 3600,
    is_exchange_domain: bool | None = None,
    poll_interval_seconds: float = 15.0,
    timeout_seconds: float = 86400.0,
    max_requests_per_second: float = 20.0,
    gate: Gate = "on",
    gate_interval_seconds: float = 10.0,
    settle_seconds: float = 60.0,
    gate_timeout_seconds: float = 1800.0,
    max_offset: int = 0,
    max_key_difference: int = 1000,
    notification_blocks: list[str] | None = None,
) -> FleetSummary:
    """Watch many DCS migrations in one run, and cut each over (IP exchange) once it is ready.

    Args:
        task_ids: The migration tasks' IDs, as the DCS console shows them (or name_filter).
        name_filter: Instead of task_ids: every task whose name DCS matches with this.
        credentials: Name of the DcsCredentials block (a name, never the secrets).
        max_parallel_cutovers: At most this many tasks in their gate or exchange at once.
        wave_size: Cut over in waves of up to this many ready tasks, each wave after the
            last has ended, with a notification per wave (0: no waves, each task as soon
            as it is ready).
        approval: "none", "per_task" (pause for each task's cutover) or "per_wave" (one
            pause per wave, showing each task; needs wave_size).
        approval_timeout_seconds: A task (or wave) fails if nobody answers within this time.
        is_exchange_domain: Also exchange the instances' domain names.
        poll_interval_seconds: Seconds between two rounds of looks at the tasks.
        timeout_seconds: A task not ready within this many seconds fails (it keeps running
            on DCS).
        max_requests_per_second: At most this many DCS requests per second from the watch.
        gate: "on": no cutover until the target has caught up with the source (the
            catch-up gate); "off": cut over as soon as a task is ready (a warning).
        gate_interval_seconds: Seconds between two reads of a task's stats by the gate.
        settle_seconds: How long every read must show the target caught up, in a row.
        gate_timeout_seconds: A task whose target has not stayed caught up within this
            many seconds fails (CutoverGateTimeout), with no cutover.
        max_offset: The largest stats offset that counts as caught up (0: no difference).
        max_key_difference: The largest |source keys - target keys| that counts as caught up.
        notification_blocks: Notification blocks as "block-type/block-name": a message per
            wave and one at the end.
    """
    plan = _Plan(
        credentials=credentials,
        cutover=CutoverPlan(
            cutover="exchange_ip",
            gate=gate,
            gate_settings=GateSettings(
                gate_interval_seconds=gate_interval_seconds,
                settle_seconds=settle_seconds,
                gate_timeout_seconds=gate_timeout_seconds,
                max_offset=max_offset,
                max_key_difference=max_key_difference,
            ),
            require_approval=approval != "none",
            approval_timeout_seconds=approval_timeout_seconds,
            is_exchange_domain=is_exchange_domain,
            poll_interval_seconds=poll_interval_seconds,
        ),
        approval=approval,
        wave_size=wave_size,
        max_parallel_cutovers=max_parallel_cutovers,
        notification_blocks=notification_blocks or [],
    )
    settings = WatchSettings(
        until="ready_for_cutover",
        poll_interval_seconds=poll_interval_seconds,
        timeout_seconds=timeout_seconds,
        track_progress=False,
        heartbeat_seconds=None,
    )
    ids = _given_ids(task_ids, name_filter) or await _named_ids(credentials, str(name_filter))
    await check_notification_blocks(plan.notification_blocks)
    logger = get_run_logger()
    if gate == "off":
        logger.warning(
            "the catch-up gate is off (gate='off'): each IP exchange goes ahead as soon as its "
            "task is ready; writes not yet copied to the target would be lost"
        )
    began = clock.current().monotonic()
    board = FleetBoard(ids)
    fleet = _Fleet(plan, board)
    prior = await _prior_records(ids)
    for task_id, record in prior.items():
        if record.state is RecordState.SUCCEEDED:
            fleet.stand_down(task_id, record)
    watched = [task_id for task_id in ids if board.rows[task_id].stage is Stage.WAITING]
    logger.info(
        "fleet of %d migration tasks: %d to watch, %d cut over already",
        len(ids),
        len(watched),
        len(ids) - len(watched),
    )
    await board.publish(now=True)
    await _run(fleet, watched, settings, max_requests_per_second)
    await board.publish(now=True)
    counts = board.counts()
    minutes = (clock.current().monotonic() - began) / 60
    done = counts.get(Stage.CUT_OVER.value, 0) + counts.get(Stage.ALREADY.value, 0)
    subject = f"DCS migration fleet done: {done} of {len(ids)} cut over in {minutes:.0f} min"
    await fleet.tell(subject, fleet.lines(board.rows.values()))
    if (failure := _failure(board)) is not None:
        logger.error("%s", failure)
        raise failure
    return FleetSummary(counts=counts, tasks=[row.cells() for row in board.rows.values()])


__all__ = [
    "APPROVAL_VALUES",
    "FleetApproval",
    "FleetSummary",
    "fleet_run_name",
    "migration_fleet",
]
