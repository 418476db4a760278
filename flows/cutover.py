"""The cutover: DCS IP exchange and its rollback, each requested at most once, and a deployment.

The IP exchange swaps the source and target Redis addresses so that applications reach the
new DCS instance. Doing it twice swaps them back, so it must be requested exactly once per
migration task: across task retries, flow retries, crashed (even SIGKILLed) workers and
later runs. A Prefect cache key alone cannot promise that: a crash between the POST and the
result being stored would leave nothing cached, and the retry would POST again. So:

1. **A durable record per request**, in a Prefect Variable: server-side, shared by every
   worker, surviving any process (`flows.records`). Each attempt of (DCS task id, action)
   has its own record, `cutover_record_name(task_id, action)` for the first and `--2`,
   `--3`, ... after it; its value is JSON such as `{"state": "requested", "attempt": 1,
   "flow_run_id": "...", "requested_at": "2026-...", "task_status": "RUNNING", ...}`. It
   holds names, times and statuses, never a secret.
2. **Before any POST, two reads**: the latest record, and the task from DCS. If DCS already
   shows the switch under way (`EXCHANGING`) or done (`EXCHANGE_SUCCESS`; `ROLLBACK_SUCCESS`
   for a rollback), nothing is sent: the task follows it and records the outcome. Otherwise,
   if a record exists in any state but "refused", the task refuses with
   `CutoverAlreadyRequested` (who asked, when, what DCS shows) unless `force=True`.
3. **Intent first, and atomic in every path**: the "requested" record of the *next* attempt
   is created with a create-only call *before* the POST. Of any number of runs racing for
   the same attempt (first requests, requests after a refused one, or `force=True`), exactly
   one creates it and sends; the others refuse. A crash after the record and before (or
   during) the POST leaves a record and no exchange: the next run refuses instead of
   guessing, and a human checks DCS and passes `force=True`.
4. **Outcome last**: the record becomes "succeeded", "failed" (the exchange ended badly) or
   "refused" (DCS, its gateway or IAM refused the request before it acted: a new request is
   then allowed without `force`, since nothing was switched); it stays "requested" when the
   outcome is unknown (deadline passed, DCS unreadable). `force=True` skips the refusal and
   claims the next attempt, but still never sends while DCS shows `EXCHANGING`.
5. A rollback (`rollback-ip`) has its own records and does not clear the exchange's:
   exchanging again after a rollback is a deliberate act, made with `force=True`.

Records are never deleted by these tasks; to request again on purpose, pass `force=True`.

`run_cutover_deployment` starts a team's own cutover deployment instead; an idempotency key
derived from the calling flow run makes a retry of that run find the same deployment run
rather than start a second one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound

from blocks.client import AsyncDcsClient, validate_path_parameter
from blocks.credentials import DcsCredentials
from blocks.errors import (
    CutoverAlreadyRequested,
    CutoverFailed,
    DcsApiError,
    DcsError,
    DcsValidationError,
)
from blocks.models import (
    EXCHANGE_SUCCESS,
    EXCHANGING,
    ROLLBACK_SUCCESS,
    MigrationStatus,
    MigrationTask,
)
from flows.clock import current
from flows.credentials import DEFAULT_BLOCK_NAME, aload_credentials
from flows.polling import is_transient_or_garbled, read_task
from flows.records import RECORD_PREFIX, CutoverRecords, Record, RecordState, cutover_record_name
from flows.timeline import add_row

if TYPE_CHECKING:
    from logging import Logger

    from prefect.logging.loggers import LoggingAdapter

#: The record state of a request refused before it acted: it does not block the next one.
REFUSED = RecordState.REFUSED
#: How long DCS may keep showing the task_status it had before the request (it does, for a
#: moment) before the switch counts as not started.
START_GRACE_SECONDS = 120.0
#: Seconds between reads of a cutover deployment's flow run.
DEPLOYMENT_POLL_SECONDS = 5.0

#: Task statuses that mean a cutover went wrong. Stopping incremental sync is part of many
#: cutovers, so TERMINATED is not one of them.
CUTOVER_FAILURE_STATUSES = frozenset(
    {
        MigrationStatus.FAILED,
        MigrationStatus.MIGRATION_FAILED,
        MigrationStatus.ERROR,
        MigrationStatus.RELEASED,
        MigrationStatus.DELETED,
    }
)


@dataclass(frozen=True)
class _Action:
    """One of the two address switches: what to call it and which task_status ends it."""

    name: str  # the API path suffix, also the record's action
    label: str
    success: str


_EXCHANGE = _Action("exchange-ip", "IP exchange", EXCHANGE_SUCCESS)
_ROLLBACK = _Action("rollback-ip", "IP rollback", ROLLBACK_SUCCESS)


def _task_status(task: MigrationTask) -> str | None:
    return (task.task_status or "").strip().upper() or None


def _flow_run_id() -> str | None:
    task_context = TaskRunContext.get()
    if task_context is not None and task_context.task_run.flow_run_id is not None:
        return str(task_context.task_run.flow_run_id)
    flow_context = FlowRunContext.get()
    if flow_context is not None and flow_context.flow_run is not None:
        return str(flow_context.flow_run.id)
    return None


def _check_durations(timeout_seconds: float, poll_interval_seconds: float) -> None:
    if not timeout_seconds > 0:
        msg = f"timeout_seconds must be more than 0, got {timeout_seconds}"
        raise DcsValidationError(msg)
    if not poll_interval_seconds > 0:
        msg = f"poll_interval_seconds must be more than 0, got {poll_interval_seconds}"
        raise DcsValidationError(msg)


@dataclass
class _Cutover:
    """One call of an address switch: its inputs, its record and its clock."""

    action: _Action
    task_id: str
    records: CutoverRecords
    dcs: AsyncDcsClient
    logger: Logger | LoggingAdapter
    timeout_seconds: float
    poll_interval_seconds: float
    began: float = field(default_factory=lambda: current().monotonic())
    #: The record this call claimed, or found and follows.
    record: Record | None = None

    @property
    def subject(self) -> str:
        return f"{self.action.label} for migration task {self.task_id!r}"

    def elapsed(self) -> float:
        return current().monotonic() - self.began

    # -- the record ------------------------------------------------------------------

    def new_record(
        self, state: RecordState, task_status: str | None, **extra: Any
    ) -> dict[str, Any]:
        now = current().now().isoformat()
        return {
            "task_id": self.task_id,
            "project_id": self.dcs.project_id,
            "action": self.action.name,
            "state": state.value,
            "flow_run_id": _flow_run_id(),
            "requested_at": now,
            "updated_at": now,
            "task_status": task_status,
            **extra,
        }

    async def save(self, state: RecordState, task_status: str | None, **extra: Any) -> None:
        """Update the record at the end; the cutover's outcome does not depend on it."""
        if self.record is None:  # pragma: no cover - every path that saves has a record
            return
        try:
            self.record = await self.records.update(
                self.record,
                state=state.value,
                task_status=task_status,
                updated_at=current().now().isoformat(),
                **extra,
            )
        # Any failure: the record still says "requested", which blocks a second request.
        except Exception as exc:
            self.logger.warning(
                "%s: could not update record %s to %r (%s: %s); it still blocks a second request",
                self.subject,
                self.record.name,
                state.value,
                type(exc).__name__,
                exc,
            )

    def refusal(self, record: Record | None, task: MigrationTask) -> CutoverAlreadyRequested:
        value = record.value if record is not None else {}
        name = record.name if record is not None else self.records.name(1)
        msg = (
            f"{self.subject} was already requested (record {name}: state "
            f"{value.get('state')!r}, requested at {value.get('requested_at')} by flow run "
            f"{value.get('flow_run_id')}), and DCS now shows task_status "
            f"{_task_status(task)!r} (status {task.raw_status!r}), neither {EXCHANGING} nor "
            f"{self.action.success}; it was not requested again. Check the instances' addresses "
            f"in the DCS console, then pass force=True to request it anyway"
        )
        return CutoverAlreadyRequested(msg)

    # -- following -------------------------------------------------------------------

    async def follow(self, task: MigrationTask, *, started: bool, requested_at: float) -> _Outcome:
        """Poll until the switch ends well, ends badly, or the deadline passes."""
        clock = current()
        deadline = self.began + self.timeout_seconds
        baseline = _task_status(task)
        baseline_status = task.status
        seen = baseline
        error_streak = 0
        last_error = ""
        while True:
            status = _task_status(task)
            if status != seen:
                self.logger.info("%s: task_status %s -> %s", self.subject, seen, status)
                add_row(self.action.label, task, f"task_status {seen} -> {status}")
                seen = status
            if status == self.action.success:
                return _Outcome(task, RecordState.SUCCEEDED)
            if status == EXCHANGING:
                started = True
            elif status is not None and (started or status != baseline):
                return self.failed(task, f"ended with task_status {status!r}")
            # A blank task_status says nothing either way: keep following (until the deadline).
            elif not started and clock.monotonic() - requested_at >= START_GRACE_SECONDS:
                reason = (
                    f"did not start: DCS still shows task_status {status!r} "
                    f"{START_GRACE_SECONDS:.0f} s after the request"
                )
                hint = "if the DCS console agrees that nothing was switched, pass force=True"
                return self.failed(task, reason, hint=hint)
            if task.status in CUTOVER_FAILURE_STATUSES and task.status != baseline_status:
                return self.failed(task, f"failed: the migration task became {task.raw_status!r}")
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                error = f"; the last read failed: {last_error}" if error_streak else ""
                reason = f"did not finish within {self.timeout_seconds:.0f} s{error}"
                return self.failed(task, reason, state=RecordState.REQUESTED)
            await clock.sleep(min(self.poll_interval_seconds, remaining))
            try:
                task = await self.dcs.show_migration_task(self.task_id)
            except DcsError as exc:
                if not is_transient_or_garbled(exc):
                    return self.failed(
                        task, f"could not be followed: {exc}", state=RecordState.REQUESTED
                    )
                if error_streak == 0:
                    # Once per streak: an outage of minutes must not flood the run's log.
                    self.logger.warning(
                        "%s: cannot read the task (%s); still following until the deadline",
                        self.subject,
                        exc,
                    )
                error_streak += 1
                last_error = str(exc)
                continue
            if error_streak:
                self.logger.info(
                    "%s: the task is readable again after %d failed read(s)",
                    self.subject,
                    error_streak,
                )
                error_streak = 0

    def failed(
        self,
        task: MigrationTask,
        reason: str,
        *,
        state: RecordState = RecordState.FAILED,
        hint: str | None = None,
    ) -> _Outcome:
        """A bad end; `state` "requested" when it is unknown whether the switch happened."""
        message = (
            f"{self.subject} {reason} (last task_status {_task_status(task)!r}, status "
            f"{task.raw_status!r}, after {self.elapsed():.1f} s)"
        )
        if state is RecordState.REQUESTED:
            hint = "it may still be under way: check DCS before passing force=True"
        if hint:
            message += f"; {hint}"
        return _Outcome(task, state, message)


@dataclass(frozen=True)
class _Outcome:
    """How following ended: the last task, the record's new state, and what went wrong."""

    task: MigrationTask
    state: RecordState
    failure: str | None = None


async def _switch(
    action: _Action,
    task_id: str,
    credentials: str | DcsCredentials,
    *,
    body: dict[str, Any],
    timeout_seconds: float,
    poll_interval_seconds: float,
    force: bool,
) -> MigrationTask:
    """Read record and DCS, request at most once (intent first), follow, record the end."""
    validate_path_parameter("task_id", task_id)
    _check_durations(timeout_seconds, poll_interval_seconds)
    clock = current()
    logger = get_run_logger()
    block = await aload_credentials(credentials)
    async with (
        block.get_async_client(sleep=clock.sleep, clock=clock.monotonic) as dcs,
        get_client() as prefect,
    ):
        records = CutoverRecords(prefect, task_id, action.name)
        cut = _Cutover(
            action, task_id, records, dcs, logger, timeout_seconds, poll_interval_seconds
        )
        latest = await records.latest()
        before = await read_task(dcs, task_id)
        shown = _task_status(before)

        if shown in (EXCHANGING, action.success):
            # Under way or done on DCS: asking again could only swap the addresses back.
            logger.info(
                "%s: DCS already shows task_status %s; following it without a new request",
                cut.subject,
                shown,
            )
            cut.record = latest or Record(
                1,
                records.name(1),
                cut.new_record(
                    RecordState.REQUESTED,
                    shown,
                    requested_at=None,
                    flow_run_id=None,
                    detail=f"found {shown} on DCS by flow run {_flow_run_id()}; not requested here",
                ),
            )
            return await _finish(cut, before, started=True, requested_at=clock.monotonic())

        cut.record = await _claim(cut, latest, before, force=force)
        requested_at = clock.monotonic()
        await _request(cut, body, shown)
        return await _finish(cut, before, started=False, requested_at=requested_at)


async def _claim(
    cut: _Cutover, latest: Record | None, before: MigrationTask, *, force: bool
) -> Record:
    """Create the next attempt's "requested" record, or raise CutoverAlreadyRequested."""
    shown = _task_status(before)
    if latest is not None and latest.state is RecordState.REFUSED:
        # The last request was refused before it acted: nothing to guard against.
        cut.logger.info("%s: the last request was refused; requesting again", cut.subject)
    elif latest is not None and not force:
        refusal = cut.refusal(latest, before)
        cut.logger.error("%s", refusal)
        raise refusal
    elif latest is not None:
        cut.logger.warning(
            "%s: force=True, requesting again although record %s says %r (requested at "
            "%s by flow run %s); DCS shows task_status %s",
            cut.subject,
            latest.name,
            latest.value.get("state"),
            latest.value.get("requested_at"),
            latest.value.get("flow_run_id"),
            shown,
        )
    attempt = 1 if latest is None else latest.attempt + 1
    claimed = await cut.records.claim(attempt, cut.new_record(RecordState.REQUESTED, shown))
    if claimed is None:
        # Another run read the same latest record and claimed this attempt first: it sends.
        refusal = cut.refusal(await cut.records.read(attempt), before)
        cut.logger.error("%s (another run recorded it a moment ago)", refusal)
        raise refusal
    cut.logger.info("%s: recorded in %s; sending the request", cut.subject, claimed.name)
    return claimed


async def _request(cut: _Cutover, body: dict[str, Any], shown: str | None) -> None:
    """Send the one request; raise CutoverFailed only when it was refused before acting."""
    add_row(cut.action.label, None, f"request sent, task_status {shown}")
    try:
        if cut.action is _EXCHANGE:
            await cut.dcs.exchange_instance_ip(cut.task_id, **body)
        else:
            await cut.dcs.rollback_exchange_instance_ip(cut.task_id)
    except DcsApiError as exc:
        if 400 <= exc.status_code < 500 and exc.status_code != 408:
            # Refused before acting (by DCS, its gateway, or IAM for the token): certainly
            # not switched, so the record does not block the next request.
            msg = f"{cut.subject} was refused, nothing was switched: {exc}"
            await cut.save(RecordState.REFUSED, shown, detail=msg)
            cut.logger.error("%s", msg)
            raise CutoverFailed(msg) from exc
        # A 5xx may hide a switch that did start: find out by following, never resend.
        cut.logger.warning(
            "%s: the request may or may not have acted (%s); following DCS", cut.subject, exc
        )
    except DcsError as exc:
        cut.logger.warning(
            "%s: no answer to the request (%s); following DCS to see whether it acted",
            cut.subject,
            exc,
        )
    else:
        cut.logger.info("%s: DCS accepted the request; following task_status", cut.subject)


async def _finish(
    cut: _Cutover, before: MigrationTask, *, started: bool, requested_at: float
) -> MigrationTask:
    """Follow the switch, record how it ended, and return the task or raise CutoverFailed."""
    outcome = await cut.follow(before, started=started, requested_at=requested_at)
    status = _task_status(outcome.task)
    if outcome.failure is None:
        await cut.save(outcome.state, status)
        cut.logger.info("%s: done, task_status %s after %.1f s", cut.subject, status, cut.elapsed())
        return outcome.task
    # A deadline or an unreadable task leaves the outcome unknown: the record then stays
    # "requested", which blocks a new request just the same.
    await cut.save(outcome.state, status, detail=outcome.failure)
    cut.logger.error("%s", outcome.failure)
    raise CutoverFailed(outcome.failure)


@task(
    name="exchange-instance-ip",
    task_run_name="exchange-instance-ip-{task_id}",
    # Exactly-once is the record's job (see the module docstring): a cached result could
    # not survive a crash between the POST and storing the result.
    cache_policy=NO_CACHE,
)
async def exchange_instance_ip(
    task_id: str,
    credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME,
    exchanged_ip: list[str] | None = None,
    is_exchange_domain: bool | None = None,
    timeout_seconds: float = 900,
    poll_interval_seconds: float = 5,
    force: bool = False,
) -> MigrationTask:
    """Swap the source and target addresses (the cutover), at most once per task; wait for it.

    Returns the task (passwords masked) once `task_status` is EXCHANGE_SUCCESS. Raises
    `CutoverFailed` if it ends otherwise or not within `timeout_seconds`, and
    `CutoverAlreadyRequested` if it was requested before and DCS shows no exchange under way
    or done (check, then pass `force=True`).

    ```python
    from prefect import flow
    from flows.cutover import exchange_instance_ip

    @flow
    async def cutover(task_id: str) -> str | None:
        return (await exchange_instance_ip(task_id, "dcs")).task_status
    ```
    """
    body: dict[str, Any] = {"exchanged_ip": exchanged_ip, "is_exchange_domain": is_exchange_domain}
    return await _switch(
        _EXCHANGE,
        task_id,
        credentials,
        body=body,
        timeout_seconds=timeout_seconds,
        poll_interval_seconds=poll_interval_seconds,
        force=force,
    )


@task(
    name="rollback-instance-ip",
    task_run_name="rollback-instance-ip-{task_id}",
    cache_policy=NO_CACHE,  # as for the exchange: the record guards against a second request
)
async def rollback_instance_ip(
    task_id: str,
    credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME,
    timeout_seconds: float = 900,
    poll_interval_seconds: float = 5,
    force: bool = False,
) -> MigrationTask:
    """Undo an IP exchange, at most once per task (its own record); wait for ROLLBACK_SUCCESS."""
    return await _switch(
        _ROLLBACK,
        task_id,
        credentials,
        body={},
        timeout_seconds=timeout_seconds,
        poll_interval_seconds=poll_interval_seconds,
        force=force,
    )


def _check_deployment_name(deployment_name: object) -> str:
    parts = deployment_name.split("/") if isinstance(deployment_name, str) else []
    # Prefect forbids '/' in flow and deployment names, so exactly one separates them.
    if len(parts) == 2 and all(part and part == part.strip() for part in parts):
        return str(deployment_name)
    msg = (
        f"deployment_name must be 'flow-name/deployment-name' (as `prefect deployment ls` "
        f"shows it), got {deployment_name!r}"
    )
    raise DcsValidationError(msg)


def default_idempotency_key(deployment_name: str, parameters: dict[str, Any] | None) -> str | None:
    """The key that makes a retry of the calling flow run find its earlier deployment run."""
    run_id = _flow_run_id()
    if run_id is None:
        return None
    # default=str: a datetime or UUID parameter hashes the same on every retry.
    text = json.dumps(parameters or {}, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{RECORD_PREFIX}:{run_id}:{deployment_name}:{digest}"


@task(
    name="run-cutover-deployment",
    task_run_name="run-cutover-deployment-{deployment_name}",
    cache_policy=NO_CACHE,  # the idempotency key, kept by the server, is what dedupes runs
)
async def run_cutover_deployment(
    deployment_name: str,
    parameters: dict[str, Any] | None = None,
    *,
    timeout_seconds: float = 3600,
    idempotency_key: str | None = None,
) -> FlowRun:
    """Run the deployment `flow-name/deployment-name` once, wait, and return its Completed run.

    Raises `CutoverFailed` if the run ends in any other state or is not final within
    `timeout_seconds` (it is then left running, not cancelled). The default idempotency key
    is the calling flow run's id, the deployment name and a hash of `parameters`, so a
    retry of the calling flow run gets back the same deployment run, even a failed one;
    pass a new `idempotency_key` to start another on purpose.
    """
    _check_deployment_name(deployment_name)
    if not timeout_seconds > 0:
        msg = f"timeout_seconds must be more than 0, got {timeout_seconds}"
        raise DcsValidationError(msg)
    logger = get_run_logger()
    clock = current()
    began = clock.monotonic()
    key = idempotency_key or default_idempotency_key(deployment_name, parameters)
    if key is None:
        logger.warning("no flow run to derive an idempotency key from: a retry starts a new run")
    try:
        # timeout=0: only create (or, by key, find) the run; waiting goes through our clock.
        flow_run = await arun_deployment(
            deployment_name, parameters=parameters, timeout=0, idempotency_key=key
        )
    except ObjectNotFound:
        msg = f"no deployment named {deployment_name!r} on this Prefect server"
        raise DcsValidationError(msg) from None
    label = f"flow run {flow_run.name!r} ({flow_run.id}) of deployment {deployment_name!r}"
    logger.info("cutover: %s started or found (idempotency key %s)", label, key)
    async with get_client() as client:
        while not (flow_run.state is not None and flow_run.state.is_final()):
            remaining = began + timeout_seconds - clock.monotonic()
            if remaining <= 0:
                still = flow_run.state.name if flow_run.state else "without a state"
                msg = (
                    f"{label} did not finish within {timeout_seconds:.0f} s (still {still}); "
                    f"it was left running"
                )
                logger.error("%s", msg)
                raise CutoverFailed(msg)
            await clock.sleep(min(DEPLOYMENT_POLL_SECONDS, remaining))
            flow_run = await client.read_flow_run(flow_run.id)
    state = flow_run.state
    if state is None:  # pragma: no cover - the loop above ends only on a final state
        msg = f"{label} has no state"
        raise CutoverFailed(msg)
    if not state.is_completed():
        detail = f": {state.message}" if state.message else ""
        msg = f"{label} ended {state.name} ({state.type.value}){detail}"
        logger.error("%s", msg)
        raise CutoverFailed(msg)
    logger.info("cutover: %s completed after %.1f s", label, clock.monotonic() - began)
    return flow_run


__all__ = [
    "CUTOVER_FAILURE_STATUSES",
    "DEPLOYMENT_POLL_SECONDS",
    "REFUSED",
    "START_GRACE_SECONDS",
    "cutover_record_name",
    "default_idempotency_key",
    "exchange_instance_ip",
    "rollback_instance_ip",
    "run_cutover_deployment",
]
