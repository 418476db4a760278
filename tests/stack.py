"""A real Prefect stack for end-to-end tests, and the API helpers that drive it.

`prefect server start` (SQLite by default, or the PostgreSQL of `tests/postgres.py`;
loopback, a temporary home) and the sandbox run as their own processes; the blocks are saved
and `deployments/prefect.yaml` is deployed with the CLI; process workers run the flow runs.
Every process is stopped by its PID, also when a test fails. `tests/test_e2e.py` drives it
through the Prefect API, `tests/test_ui.py` through the Prefect UI in a browser, and
`tests/test_production.py` runs it on PostgreSQL with two workers.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx

from flows.demo import NotificationSink
from sandbox import load_scenario, sandbox_credentials
from tests.processes import Service, base_env, free_port, running, wait_until_up

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
SINK_BLOCK = "custom-webhook/e2e-sink"
#: The catch-up gate on the real clock: a 2-second window instead of a minute.
QUICK_GATE = {"gate_interval_seconds": 0.5, "settle_seconds": 2}
T = TypeVar("T")


@dataclass
class Stack:
    """The running pieces, and how to reach them."""

    api_url: str
    sandbox_url: str
    sink: NotificationSink
    env: dict[str, str]
    logs: Path
    #: What a client of the sandbox uses: endpoint, project_id, access_key, secret_key, ...
    credentials: dict[str, str]
    server: Service
    workers: list[Service] = field(default_factory=list)

    @property
    def ui_url(self) -> str:
        """The Prefect UI, served by the same server as the API."""
        return self.api_url.removesuffix("/api")

    def sandbox_task(self, task_id: str) -> dict[str, Any]:
        state = httpx.get(f"{self.sandbox_url}/_sandbox/state", timeout=5).json()
        return dict(state["tasks"][task_id])

    def sandbox(self) -> dict[str, Any]:
        """The sandbox's whole admin view (`GET /_sandbox/state`)."""
        return dict(httpx.get(f"{self.sandbox_url}/_sandbox/state", timeout=5).json())

    def advance_sandbox(self, seconds: float) -> None:
        """Move every scripted task `seconds` scenario seconds on (`POST /_sandbox/advance`)."""
        url = f"{self.sandbox_url}/_sandbox/advance"
        httpx.post(url, params={"seconds": seconds}, timeout=5).raise_for_status()

    def notes(self) -> list[str]:
        return [str(note.get("subject", "")) for note in self.sink.received]

    def start_server(self) -> None:
        """Start the Prefect server again (same port, same database) and wait for it."""
        process = self.server.start()
        wait_until_up(f"{self.api_url}/health", process, self.server.log, 120)


def cli(stack_env: dict[str, str], *args: str, log: Path) -> None:
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


@contextmanager
def running_stack(
    logs: Path,
    scenario: Path,
    *,
    database_url: str | None = None,
    workers: int = 1,
    automations: tuple[Path, ...] = (),
    **settings: str,
) -> Iterator[Stack]:
    """Server, sandbox (serving `scenario`), blocks, deployments and workers, on loopback.

    `database_url` is the server's PREFECT_API_DATABASE_CONNECTION_URL (SQLite in its
    home if None); `automations` are files for `prefect automation create`; `settings`
    are more environment variables for every process.
    """
    port, sandbox_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = base_env(
        PREFECT_HOME=str(logs / "prefect-home"),
        PREFECT_API_URL=api_url,
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
        PREFECT_API_LOG_RETRYABLE_ERRORS="true",
        **settings,
    )
    if database_url is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    server_cmd = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    sandbox_cmd = [sys.executable, "-m", "sandbox", "--host", "127.0.0.1"]
    with (
        Service(server_cmd, env=env, log=logs / "server.log") as server,
        running(
            [*sandbox_cmd, "--port", str(sandbox_port), "--scenario", str(scenario)],
            env=env,
            log=logs / "sandbox.log",
        ) as sandbox,
        NotificationSink() as sink,
    ):
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        wait_until_up(f"{sandbox_url}/_sandbox/state", sandbox, logs / "sandbox.log", 30)
        assert server.process is not None
        wait_until_up(f"{api_url}/health", server.process, server.log, 120)
        credentials = sandbox_credentials(load_scenario(scenario), sandbox_url)
        cli(env, PREFECT, "block", "register", "-m", "blocks", log=logs / "register.log")
        cli(
            env, sys.executable, "-c", SAVE_BLOCKS, sandbox_url, credentials["project_id"],
            credentials["access_key"], credentials["secret_key"], sink.url,
            log=logs / "blocks.log",
        )  # fmt: skip
        cli(
            env, PREFECT, "work-pool", "create", "dcs-process", "--type", "process",
            log=logs / "pool.log",
        )  # fmt: skip
        cli(
            env, PREFECT, "deploy", "--all", "--prefect-file", "deployments/prefect.yaml",
            log=logs / "deploy.log",
        )  # fmt: skip
        for automation in automations:
            cli(
                env, PREFECT, "automation", "create", "--from-file", str(automation),
                log=logs / f"automation-{automation.stem}.log",
            )  # fmt: skip
        _quicken_the_gate(api_url)
        worker_cmd = [PREFECT, "worker", "start", "--pool", "dcs-process"]
        with ExitStack() as started:
            pool = [
                started.enter_context(
                    Service(
                        [*worker_cmd, "--name", f"worker-{n}"],
                        env=env,
                        log=logs / ("worker.log" if n == 1 else f"worker-{n}.log"),
                        cwd=ROOT,
                    )
                )
                for n in range(1, workers + 1)
            ]
            yield Stack(api_url, sandbox_url, sink, env, logs, credentials, server, pool)


def _quicken_the_gate(api_url: str) -> None:
    """The runbook deployments' defaults with `QUICK_GATE`: a minute caught up, twice, would
    outlast every wait of these tests. As an operator would set it in the UI."""
    for name in ("manual", "cutover-on-ready"):
        found = httpx.get(f"{api_url}/deployments/name/dcs-migration-runbook/{name}", timeout=30)
        found.raise_for_status()
        deployment = found.json()
        parameters = {**deployment["parameters"], **QUICK_GATE}
        httpx.patch(
            f"{api_url}/deployments/{deployment['id']}", json={"parameters": parameters}, timeout=30
        ).raise_for_status()


def prefect(stack: Stack) -> Any:
    """A Prefect API client of the stack's server (use it with `async with`)."""
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(api=stack.api_url)


async def start(stack: Stack, deployment: str, parameters: dict[str, Any]) -> UUID:
    """Create a flow run of a deployment through the API, as the UI's Run button does."""
    async with prefect(stack) as client:
        found = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(found.id, parameters=parameters)
        return UUID(str(run.id))


async def until(
    stack: Stack, what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = 90
) -> T:
    """Poll `probe()` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.5)
    msg = f"{what} within {timeout:.0f} s; logs in {stack.logs}"
    raise AssertionError(msg)


async def flow_run(stack: Stack, run_id: UUID) -> Any:
    """The flow run as the server has it now."""
    async with prefect(stack) as client:
        return await client.read_flow_run(run_id)


async def final(stack: Stack, run_id: UUID, timeout: float = 150) -> Any:
    """The flow run once it reached a final state (bounded wait)."""
    async with prefect(stack) as client:

        async def finished() -> Any:
            run = await client.read_flow_run(run_id)
            return run if run.state is not None and run.state.is_final() else None

        return await until(stack, f"flow run {run_id} did not finish", finished, timeout)


async def runs_of(stack: Stack, deployment_name: str) -> list[Any]:
    """Every flow run of a deployment."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with prefect(stack) as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        return list(await client.read_flow_runs(deployment_filter=only))


__all__ = [
    "DATA",
    "PREFECT",
    "QUICK_GATE",
    "SINK_BLOCK",
    "Stack",
    "cli",
    "final",
    "flow_run",
    "prefect",
    "running_stack",
    "runs_of",
    "start",
    "until",
]
