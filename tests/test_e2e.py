"""End to end, the way the flows are used: a real Prefect server, worker and deployments.

The stack of `tests/stack.py` (server, sandbox, blocks, `deployments/prefect.yaml`, a
process worker, each its own process); runs are created through the Prefect API, as the
UI creates them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack import (
    DATA,
    PREFECT,
    QUICK_GATE,
    SINK_BLOCK,
    Stack,
    cli,
    final,
    prefect,
    running_stack,
    runs_of,
    start,
    until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prefect server, sandbox, blocks, deployments and a process worker, all on loopback."""
    with running_stack(tmp_path_factory.mktemp("e2e"), DATA / "e2e.yaml") as running:
        yield running


async def test_the_runbook_deployment_cuts_over_exactly_once(stack: Stack) -> None:
    """Triggered like the UI does, the runbook completes and the sandbox saw one exchange."""
    run_id = await start(
        stack,
        "dcs-migration-runbook/manual",
        {
            "task_id": "e2e-runbook",
            "cutover": "exchange_ip",
            "require_approval": False,  # the form's toggle: the deployment asks by default
            "poll_interval_seconds": 0.5,
            "notification_blocks": [SINK_BLOCK],
            **QUICK_GATE,
        },
    )
    run = await final(stack, run_id)
    assert run.state.is_completed(), run.state.message
    task = stack.sandbox_task("e2e-runbook")
    assert task["exchange_requests"] == 1
    assert task["task_status"] == "EXCHANGE_SUCCESS"
    assert any("e2e-runbook" in note and "cutover done" in note for note in stack.notes())


async def _sensor(stack: Stack, task_id: str) -> None:
    """One sensor run over `task_id`, completed: it reports the task ready."""
    # Its own state: the deployment's schedule may have recorded the task already.
    parameters = {"task_ids": [task_id], "state_variable": f"e2e-state-{task_id}"}
    run = await final(stack, await start(stack, "dcs-migration-sensor/every-2-minutes", parameters))
    assert run.state.is_completed(), run.state.message


async def test_the_sensor_event_starts_the_cutover_deployment_once_enabled(stack: Stack) -> None:
    """Deployed, the automatic cutover is off; turned on, its run pauses, is approved, exchanges.

    And with a manual runbook paused for a task, the automation's run for that task stands
    down: one runbook per task, one exchange.
    """
    async with prefect(stack) as client:
        (automation,) = await client.read_automations_by_name("dcs-auto-cutover")
    assert automation.enabled is False  # nothing cuts over unless asked
    assert await runs_of(stack, "dcs-migration-runbook/cutover-on-ready") == []

    # As the README says: turn it on.
    cli(stack.env, PREFECT, "automation", "resume", "dcs-auto-cutover", log=stack.logs / "on.log")

    # A person started a runbook for e2e-held first; it waits for approval.
    manual = await start(
        stack,
        "dcs-migration-runbook/manual",
        {"task_id": "e2e-held", "cutover": "exchange_ip", "poll_interval_seconds": 0.5},
    )

    async def paused_manual() -> Any:
        async with prefect(stack) as client:
            run = await client.read_flow_run(manual)
        return run if run.state is not None and run.state.is_paused() else None

    await until(stack, "the manual run did not pause for approval", paused_manual)

    await _sensor(stack, "e2e-sensor")
    await _sensor(stack, "e2e-held")

    # The deployment's own schedule may run the sensor meanwhile and start more automatic
    # runs: each must stand down, since one runbook already stands for its task.
    async def automatic_runs() -> Any:
        runs = await runs_of(stack, "dcs-migration-runbook/cutover-on-ready")
        paused = [r for r in runs if r.state.is_paused()]
        held = [r for r in runs if r.parameters["task_id"] == "e2e-held"]
        if paused and held and all(r.state.is_final() for r in held):
            return paused, held
        return None

    paused, held = await until(stack, "no automatic runs as expected", automatic_runs)
    (sensor_run,) = paused
    assert sensor_run.name == "auto-cutover-e2e-sensor"
    for run in held:
        assert run.name == "auto-cutover-e2e-held"
        assert run.state.is_completed(), run.state.message  # stood down, did nothing
    assert stack.sandbox_task("e2e-sensor")["exchange_requests"] == 0  # not before approval

    async with prefect(stack) as client:
        for run_id in (sensor_run.id, manual):
            await client.resume_flow_run(run_id, run_input={"approve": True, "comment": "e2e"})
    for run_id in (sensor_run.id, manual):
        run = await final(stack, run_id)
        assert run.state.is_completed(), run.state.message
    assert stack.sandbox_task("e2e-sensor")["exchange_requests"] == 1
    assert stack.sandbox_task("e2e-held")["exchange_requests"] == 1


async def test_a_failing_migration_fails_the_run_and_notifies(stack: Stack) -> None:
    """Rehearsing a migration that fails: the run ends Failed and a failure notice goes out."""
    run_id = await start(
        stack,
        "dcs-migration-runbook/manual",
        {
            "task_id": "e2e-failing",
            "cutover": "exchange_ip",
            "require_approval": False,
            "poll_interval_seconds": 0.5,
            "notification_blocks": [SINK_BLOCK],
            **QUICK_GATE,
        },
    )
    run = await final(stack, run_id)
    assert run.state.is_failed()
    assert "MIGRATION_FAILED" in (run.state.message or "")
    assert stack.sandbox_task("e2e-failing")["exchange_requests"] == 0
    assert any("e2e-failing" in note and "failed" in note for note in stack.notes())
