"""flows.cutover.run_cutover_deployment: a team's own cutover deployment, run once.

The tests create a real deployment on the harness server; no worker runs in tests, so a
coroutine plays the worker by setting the final state of each run it finds
(`set_flow_run_state`). Flows run under `FakeTime`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun, State
from prefect.states import Cancelled, Completed, Failed

from blocks.errors import CutoverFailed, DcsValidationError
from flows.clock import FakeTime, use_time
from flows.cutover import run_cutover_deployment

pytestmark = pytest.mark.usefixtures("prefect_harness")


@dataclass
class Deployment:
    """A deployment on the harness server that no worker serves."""

    name: str
    id: uuid.UUID

    async def runs(self) -> list[FlowRun]:
        """Every flow run of this deployment."""
        async with get_client() as client:
            only_this = DeploymentFilter(id=DeploymentFilterId(any_=[self.id]))
            return await client.read_flow_runs(deployment_filter=only_this)

    async def play_worker(self, final: Callable[[], State[Any]]) -> None:
        """Stand in for a worker: give every unfinished run a final state, until cancelled."""
        async with get_client() as client:
            while True:
                for run in await self.runs():
                    if run.state is not None and not run.state.is_final():
                        await client.set_flow_run_state(run.id, final(), force=True)
                await asyncio.sleep(0.05)

    async def run(self, cutover: Callable[[], Any], final: Callable[[], State[Any]]) -> Any:
        """Run the flow `cutover` under fake time while the stand-in worker finishes runs."""
        worker = asyncio.create_task(self.play_worker(final))
        try:
            with use_time(FakeTime()):
                return await asyncio.wait_for(cutover(), timeout=30)
        finally:
            worker.cancel()


@pytest.fixture
async def deployment() -> Deployment:
    """A fresh deployment of the flow "cutover-script"."""
    name = f"cutover-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        flow_id = await client.create_flow_from_name("cutover-script")
        deployment_id = await client.create_deployment(
            flow_id=flow_id, name=name, enforce_parameter_schema=False
        )
    return Deployment(f"cutover-script/{name}", deployment_id)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("no-slash", id="no-slash"),
        pytest.param("a/b/c", id="two-slashes"),
        pytest.param("/deployment", id="no-flow"),
        pytest.param("flow/ ", id="blank-deployment"),
        pytest.param("no-such-flow/anywhere", id="absent"),
    ],
)
async def test_bad_deployment_name(name: str) -> None:
    """A malformed or unknown deployment name is a DcsValidationError naming it."""

    @flow
    async def cutover() -> FlowRun:
        return await run_cutover_deployment(name)

    with use_time(FakeTime()), pytest.raises(DcsValidationError, match=repr(name)):
        await cutover()


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        pytest.param(lambda: Failed(message="exit 1"), "ended Failed.*exit 1", id="failed"),
        pytest.param(Cancelled, "ended Cancelled", id="cancelled"),
    ],
)
async def test_deployment_run_that_fails(
    deployment: Deployment, final: Callable[[], State[Any]], expected: str
) -> None:
    """A run that ends other than Completed raises CutoverFailed naming run and state."""

    @flow
    async def cutover() -> FlowRun:
        return await run_cutover_deployment(deployment.name, {"task_id": "t1"})

    with pytest.raises(CutoverFailed, match=expected) as raised:
        await deployment.run(cutover, final)
    (run,) = await deployment.runs()
    for part in (deployment.name, run.name, str(run.id)):
        assert part in str(raised.value)


async def test_deployment_run_completes_once_across_retries(deployment: Deployment) -> None:
    """Completed returns the run; a retry of the calling flow finds the same run by key."""
    seen: list[FlowRun] = []

    @flow(retries=1, retry_delay_seconds=0)
    async def cutover() -> FlowRun:
        run = await run_cutover_deployment(deployment.name, {"task_id": "t1", "dry_run": False})
        seen.append(run)
        if len(seen) == 1:
            raise RuntimeError("a step after the cutover failed")
        return run

    run = await deployment.run(cutover, Completed)
    assert run.state is not None
    assert run.state.is_completed()
    assert [r.id for r in seen] == [run.id, run.id]
    assert [r.id for r in await deployment.runs()] == [run.id]
    assert run.parameters == {"task_id": "t1", "dry_run": False}
    assert run.idempotency_key is not None
    assert deployment.name in run.idempotency_key


async def test_deployment_run_that_never_finishes(deployment: Deployment) -> None:
    """A run still Scheduled at the deadline raises CutoverFailed and is left alone."""

    @flow
    async def cutover() -> FlowRun:
        return await run_cutover_deployment(deployment.name, timeout_seconds=30)

    with use_time(FakeTime()), pytest.raises(CutoverFailed, match=r"within 30 s.*Scheduled"):
        await cutover()
    (run,) = await deployment.runs()
    assert run.state is not None
    assert run.state.is_scheduled()
