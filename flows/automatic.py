"""What an automatic cutover checks before it acts: at most one runbook per task at a time.

The `cutover-on-ready` automation starts `migration_runbook` with `automatic=True` when the
sensor reports a task ready. Such a run is named `auto-cutover-<task_id>` (a run started
by hand stays `runbook-<task_id>`), and it stands down, completing without a cutover, when

- the task already has a cutover record (an exchange was requested before, by anyone), or
- another runbook for the same task is scheduled, pending, running, paused or cancelling:
  a manual run always wins, and of two automatic runs the one created first goes on.

Both checks read the Prefect server, so they hold across workers and processes. The
cutover records still guard the exchange itself: this only keeps a second runbook from
waiting, pausing for approval and holding a worker for a task that is already handled.
"""

from __future__ import annotations

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.runtime import flow_run

from flows.records import CutoverRecords

RUNBOOK_FLOW_NAME = "dcs-migration-runbook"
#: Flow run states in which a runbook still stands for its task.
ACTIVE_STATES = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
_PAGE = 200


def runbook_run_name() -> str:
    """The name of a runbook's flow run: `auto-cutover-<task_id>` or `runbook-<task_id>`."""
    parameters = flow_run.parameters
    prefix = "auto-cutover" if parameters.get("automatic") else "runbook"
    return f"{prefix}-{parameters.get('task_id')}"


async def _active_runbooks(client: PrefectClient) -> list[FlowRun]:
    """Every runbook flow run in an active state, a page at a time."""
    found: list[FlowRun] = []
    while True:
        page = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[RUNBOOK_FLOW_NAME])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE_STATES))
            ),
            limit=_PAGE,
            offset=len(found),
        )
        found.extend(page)
        if len(page) < _PAGE:
            return found


def _goes_first(run: FlowRun, me: FlowRun | None) -> bool:
    """Whether `run` comes before this run: manual runs always, automatic ones by age."""
    if not run.parameters.get("automatic"):
        return True
    if me is None:
        return True
    return (run.created, str(run.id)) < (me.created, str(me.id))


async def reason_to_stand_down(task_id: str) -> str | None:
    """Why an automatic cutover of `task_id` must not go on, or None if it may."""
    own_id = flow_run.id
    async with get_client() as client:
        latest = await CutoverRecords(client, task_id, "exchange-ip").latest()
        if latest is not None:
            return (
                f"the task already has a cutover record ({latest.name}: state "
                f"{latest.value.get('state')!r}, flow run {latest.value.get('flow_run_id')})"
            )
        runs = await _active_runbooks(client)
    me = next((run for run in runs if str(run.id) == own_id), None)
    others = [
        run
        for run in runs
        if str(run.id) != own_id
        and run.parameters.get("task_id") == task_id
        and _goes_first(run, me)
    ]
    if not others:
        return None
    first = others[0]
    state = first.state.name if first.state is not None else "no state"
    return f"runbook {first.name!r} ({first.id}) already stands for it ({state})"


__all__ = ["ACTIVE_STATES", "RUNBOOK_FLOW_NAME", "reason_to_stand_down", "runbook_run_name"]
