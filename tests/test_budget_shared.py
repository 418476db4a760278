"""The DCS API budget on a real Prefect server, counted at the sandbox: one budget for all.

Rates are small (5 requests/s in bursts of 5) so that each test takes seconds. No test
times anything: the sandbox's request log is counted per one-second window.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.settings import PREFECT_API_URL

from blocks.credentials import DcsCredentials
from flows.budget import ApiBudget, Budget, create_api_budget, limit_name
from flows.clock import FakeTime, use_time
from sandbox.scenario import MigrationScript, Scenario
from sandbox.server import SandboxHandle, serve
from tests.budget_worker import read_together
from tests.processes import base_env
from tests.windows import busiest_second, paced_rate

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parent.parent
RATE, BURST = 5.0, 5
BUDGET = Budget(requests_per_second=RATE, burst=BURST)


def reads_of(sandbox: SandboxHandle) -> list[float]:
    """When each task read arrived, in the sandbox's seconds (real ones, at speed 1)."""
    return [r.at for r in sandbox.state.requests if r.route == "show_migration_task"]


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    """A sandbox at real speed whose project id is this test's own (so is its budget)."""
    project_id = f"budget{abs(hash(request.node.nodeid)):x}"[:32]
    scenario = Scenario(project_id=project_id, tasks=[MigrationScript.incremental("t1")])
    with serve(scenario) as handle:
        yield handle


def wait_for_ready(worker: subprocess.Popen[bytes]) -> None:
    """Read the worker's output (its run logs first) until it says "ready"; fail if it ended."""
    assert worker.stdout is not None
    seen = []
    while (line := worker.stdout.readline()) != b"ready\n":
        assert line, f"the worker ended before it was ready: {b''.join(seen).decode()}"
        seen.append(line)


def block_for(sandbox: SandboxHandle) -> DcsCredentials:
    creds = sandbox.credentials
    return DcsCredentials(
        endpoint=creds["endpoint"], project_id=creds["project_id"], token=creds["token"]
    )


@flow(name="budget-reads", persist_result=False)
async def read_in_a_run(block: DcsCredentials, reads: int) -> None:
    """Read the task `reads` times in one flow run, through the block's client."""
    async with block.get_async_client() as client:
        for _ in range(reads):
            await client.show_migration_task("t1")


def test_the_helper_counts_the_busiest_second() -> None:
    """`busiest_second` finds the densest one-second window, its end excluded."""
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.2, 3.0]) == 4
    assert busiest_second([]) == 0


def test_the_helper_measures_the_rate_after_the_burst() -> None:
    """`paced_rate` leaves out the first burst: 5 at once, then 5 in one second is 5/s."""
    assert paced_rate([0.0] * 5 + [0.2, 0.4, 0.6, 0.8, 1.0], 5) == pytest.approx(5.0)


def test_runs_in_three_processes_share_one_budget(sandbox: SandboxHandle) -> None:
    """Three processes of two runs each, reading all at once, stay within rate plus burst."""
    asyncio.run(create_api_budget(sandbox.project_id, BUDGET))
    block_for(sandbox).save("budget-shared", overwrite=True)
    env = base_env(PREFECT_API_URL=str(PREFECT_API_URL.value()))
    command = [sys.executable, "-m", "tests.budget_worker", "budget-shared", "t1", "2", "4"]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    workers = [subprocess.Popen(command, env=env, cwd=ROOT, **pipes) for _ in range(3)]
    try:
        for worker in workers:
            wait_for_ready(worker)
        for worker in workers:  # all at once: then wait for each
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=120)[0].decode() for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert all(worker.returncode == 0 for worker in workers), outputs
    assert not any("DCS API budget:" in output for output in outputs), outputs
    reads = reads_of(sandbox)
    assert len(reads) == 3 * 2 * 4
    # Unpaced, all 24 go at once; each process pacing itself alone, 15 in a second.
    assert busiest_second(reads) <= BURST + RATE
    # Prefect's own rate_limit gave 1-2/s here. Half the rate leaves room for a busy machine.
    # Paced, never stuck. How close to RATE it gets is a speed figure that a loaded machine
    # lowers (its Prefect server stalls), so the floor is far below it; the retry timing that
    # gets it close is proven on a fake clock in tests/test_budget.py.
    assert paced_rate(reads, BURST) >= RATE / 10, sorted(reads)


async def test_concurrent_runs_in_one_process_share_the_budget(sandbox: SandboxHandle) -> None:
    """Six flow runs of one process, reading all at once, are held to rate plus burst."""
    await create_api_budget(sandbox.project_id, BUDGET)
    await block_for(sandbox).asave("budget-local", overwrite=True)
    await read_together("budget-local", "t1", runs=6, reads=3, go=lambda: asyncio.sleep(0))
    reads = reads_of(sandbox)
    assert len(reads) == 18
    # Unpaced, all 18 go at once.
    assert busiest_second(reads) <= BURST + RATE
    # Paced, never stuck. How close to RATE it gets is a speed figure that a loaded machine
    # lowers (its Prefect server stalls), so the floor is far below it; the retry timing that
    # gets it close is proven on a fake clock in tests/test_budget.py.
    assert paced_rate(reads, BURST) >= RATE / 10, sorted(reads)


async def test_a_missing_limit_warns_once_and_still_paces(
    sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the limit, runs fall back to this process's pace and say so exactly once."""
    block = block_for(sandbox)
    fake = FakeTime()
    with use_time(fake), caplog.at_level(logging.WARNING):
        await read_in_a_run(block, 5)  # the default burst: no wait
        await read_in_a_run(block, 2)
    warnings = [r.getMessage() for r in caplog.records if "DCS API budget" in r.getMessage()]
    assert len(warnings) == 1, warnings
    name = limit_name(sandbox.project_id)
    assert f"{name!r} does not exist" in warnings[0]
    assert f"dcs-migrate api-budget {sandbox.project_id}" in warnings[0]
    assert len(reads_of(sandbox)) == 7
    # The default 5/s in bursts of 5: the two after the burst wait 0.2 s each (on the
    # fake clock: the pace itself, not how long anything took).
    assert fake.sleeps == pytest.approx([0.2, 0.2])


async def test_a_limit_without_slot_decay_is_reported_and_paced_locally(
    sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain concurrency limit of that name cannot rate-limit: the warning says why."""
    name = limit_name(sandbox.project_id)
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=5, slot_decay_per_second=0.0)
        )
    budget = ApiBudget(sandbox.project_id)
    with use_time(FakeTime()), caplog.at_level(logging.WARNING):
        await budget.apace()
        await budget.apace()
    warnings = [r.getMessage() for r in caplog.records if "DCS API budget" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "cannot be used" in warnings[0]
    assert "slot decay" in warnings[0]


async def test_create_api_budget_creates_then_updates_the_limit(sandbox: SandboxHandle) -> None:
    """The command's helper makes an active rate limit, and changes it when run again."""
    name = limit_name(sandbox.project_id)
    assert await create_api_budget(sandbox.project_id, BUDGET) == "created"
    assert await create_api_budget(sandbox.project_id, Budget(2.5, 3)) == "updated"
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(name)
    assert (limit.limit, limit.slot_decay_per_second, limit.active) == (3, 2.5, True)
