"""End to end, the way the flows are used: a real Prefect server, worker and deployments.

`prefect server start` (SQLite, loopback, a temporary home) and the sandbox run as their own
processes; the blocks are saved and `deployments/prefect.yaml` is deployed with the CLI; a
process worker runs the flow runs; runs are created through the Prefect API, as the UI
creates them. Every process is stopped by its PID, also when a test fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from flows.demo import NotificationSink
from sandbox import load_scenario, sandbox_credentials
from tests.processes import base_env, free_port, running, wait_until_up

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parent.parent
SCENARIO = Path(__file__).parent / "data" / "e2e.yaml"
BIN = Path(sys.executable).parent
SINK_BLOCK = "custom-webhook/e2e-sink"
#: The catch-up gate on the real clock: a 2-second window instead of a minute.
QUICK_GATE = {"gate_interval_seconds": 0.5, "settle_seconds": 2}


@dataclass
class Stack:
    """The running pieces, and how to reach them."""

    api_url: str
    sandbox_url: str
    sink: NotificationSink
    env: dict[str, str]
    logs: Path

    def sandbox_task(self, task_id: str) -> dict[str, Any]:
        state = httpx.get(f"{self.sandbox_url}/_sandbox/state", timeout=5).json()
        return dict(state["tasks"][task_id])

    def notes(self) -> list[str]:
        return [str(note.get("subject", "")) for note in self.sink.received]


def _cli(stack_env: dict[str, str], *args: str, log: Path) -> None:
    """Run a command to completion; fail with its output if it fails."""
    done = subprocess.run(
        list(args), env=stack_env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


SAVE_BLOCKS = """
import sys
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from blocks import DcsCredentials
endpoint, project, ak, sk, sink = sys.argv[1:6]
DcsCredentials(endpoint=endpoint, project_id=project, access_key=ak, secret_key=sk).save(
    "dcs", overwrite=True
)
CustomWebhookNotificationBlock(
    name="e2e", url=sink, json_data={"subject": "{{subject}}", "body": "{{body}}"},
    allow_private_urls=True,
).save("e2e-sink", overwrite=True)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prefect server, sandbox, blocks, deployments and a process worker, all on loopback."""
    logs = tmp_path_factory.mktemp("e2e")
    port, sandbox_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = base_env(
        PREFECT_HOME=str(logs / "prefect-home"),
        PREFECT_API_URL=api_url,
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
    )
    server_cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    sandbox_cmd = [sys.executable, "-m", "sandbox", "--host", "127.0.0.1"]
    with (
        running([*server_cmd, "--port", str(port)], env=env, log=logs / "server.log") as server,
        running(
            [*sandbox_cmd, "--port", str(sandbox_port), "--scenario", str(SCENARIO)],
            env=env,
            log=logs / "sandbox.log",
        ) as sandbox,
        NotificationSink() as sink,
    ):
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        wait_until_up(f"{sandbox_url}/_sandbox/state", sandbox, logs / "sandbox.log", 30)
        wait_until_up(f"{api_url}/health", server, logs / "server.log", 120)
        credentials = sandbox_credentials(load_scenario(SCENARIO), sandbox_url)
        prefect = str(BIN / "prefect")
        _cli(env, prefect, "block", "register", "-m", "blocks", log=logs / "register.log")
        _cli(
            env, sys.executable, "-c", SAVE_BLOCKS, sandbox_url, credentials["project_id"],
            credentials["access_key"], credentials["secret_key"], sink.url,
            log=logs / "blocks.log",
        )  # fmt: skip
        _cli(
            env, prefect, "work-pool", "create", "dcs-process", "--type", "process",
            log=logs / "pool.log",
        )  # fmt: skip
        _cli(
            env, prefect, "deploy", "--all", "--prefect-file", "deployments/prefect.yaml",
            log=logs / "deploy.log",
        )  # fmt: skip
        with running(
            [prefect, "worker", "start", "--pool", "dcs-process"],
            env=env,
            log=logs / "worker.log",
            cwd=ROOT,
        ):
            yield Stack(api_url, sandbox_url, sink, env, logs)


def _prefect(stack: Stack) -> Any:
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(api=stack.api_url)


async def _start(stack: Stack, deployment: str, parameters: dict[str, Any]) -> UUID:
    """Create a flow run of a deployment through the API, as the UI's Run button does."""
    async with _prefect(stack) as client:
        found = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(found.id, parameters=parameters)
        return UUID(str(run.id))


async def _final(stack: Stack, run_id: UUID, timeout: float = 150) -> Any:
    """The flow run once it reached a final state (bounded wait)."""
    deadline = time.monotonic() + timeout
    async with _prefect(stack) as client:
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            await asyncio.sleep(0.5)
    msg = f"flow run {run_id} did not finish in {timeout} s; logs in {stack.logs}"
    raise AssertionError(msg)


async def test_the_runbook_deployment_cuts_over_exactly_once(stack: Stack) -> None:
    """Triggered like the UI does, the runbook completes and the sandbox saw one exchange."""
    run_id = await _start(
        stack,
        "dcs-migration-runbook/manual",
        {
            "task_id": "e2e-runbook",
            "cutover": "exchange_ip",
            "poll_interval_seconds": 0.5,
            "notification_blocks": [SINK_BLOCK],
            **QUICK_GATE,
        },
    )
    run = await _final(stack, run_id)
    assert run.state.is_completed(), run.state.message
    task = stack.sandbox_task("e2e-runbook")
    assert task["exchange_requests"] == 1
    assert task["task_status"] == "EXCHANGE_SUCCESS"
    assert any("e2e-runbook" in note and "cutover done" in note for note in stack.notes())


async def test_the_sensor_event_starts_the_cutover_deployment(stack: Stack) -> None:
    """The sensor reports ready; the triggered cutover run pauses, is approved, exchanges once."""
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with _prefect(stack) as client:
        # The deployed defaults (a minute caught up, twice) would outlast this test's waits.
        cutover = await client.read_deployment_by_name("dcs-migration-runbook/cutover-on-ready")
        parameters = {**cutover.parameters, **QUICK_GATE}
        await client.update_deployment(cutover.id, DeploymentUpdate(parameters=parameters))
    sensor = await _final(
        stack,
        await _start(stack, "dcs-migration-sensor/every-2-minutes", {"task_ids": ["e2e-sensor"]}),
    )
    assert sensor.state.is_completed(), sensor.state.message
    async with _prefect(stack) as client:
        deployment = await client.read_deployment_by_name("dcs-migration-runbook/cutover-on-ready")
        deadline = time.monotonic() + 90
        paused = None
        while time.monotonic() < deadline and paused is None:
            # Filtered on the server: the sensor's schedule alone makes dozens of runs, and a
            # page of 20 in id order (random UUIDs) would miss this one now and then.
            mine = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )
            for run in mine:
                assert run.parameters["task_id"] == "e2e-sensor"
                if run.state is not None and run.state.is_paused():
                    paused = run
            await asyncio.sleep(0.5)
        assert paused is not None, f"no paused cutover run within 90 s; logs in {stack.logs}"
        assert stack.sandbox_task("e2e-sensor")["exchange_requests"] == 0  # not before approval
        await client.resume_flow_run(paused.id, run_input={"approve": True, "comment": "e2e"})
    run = await _final(stack, paused.id)
    assert run.state.is_completed(), run.state.message
    assert stack.sandbox_task("e2e-sensor")["exchange_requests"] == 1


async def test_a_failing_migration_fails_the_run_and_notifies(stack: Stack) -> None:
    """Rehearsing a migration that fails: the run ends Failed and a failure notice goes out."""
    run_id = await _start(
        stack,
        "dcs-migration-runbook/manual",
        {
            "task_id": "e2e-failing",
            "cutover": "exchange_ip",
            "poll_interval_seconds": 0.5,
            "notification_blocks": [SINK_BLOCK],
            **QUICK_GATE,
        },
    )
    run = await _final(stack, run_id)
    assert run.state.is_failed()
    assert "MIGRATION_FAILED" in (run.state.message or "")
    assert stack.sandbox_task("e2e-failing")["exchange_requests"] == 0
    assert any("e2e-failing" in note and "failed" in note for note in stack.notes())
