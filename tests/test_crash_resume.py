"""Crash and resume: SIGKILL the process running a runbook, then let the runbook finish.

A Prefect server (`prefect server start`, SQLite, a temporary home) runs as a process for
the module. Each test has its own sandbox on a `ManualClock`, so the test decides when the
migration is ready and when the IP exchange ends. Every flow run is created through the
API and executed by Prefect's own engine entrypoint in a child process
(`tests/runbook_victim.py`, what a process worker starts), which gets a real SIGKILL:

- while the runbook waits (the task still FULLMIGRATING), or
- while it cuts over (the exchange POSTed, the task EXCHANGING).

Then either a new flow run for the same task, or the same flow run (marked Crashed, as a
worker marks a run whose process died, and executed again) must finish the migration with
exactly one IP exchange: one POST, the addresses swapped once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

from blocks.credentials import DcsCredentials
from flows.cutover import cutover_record_name
from flows.runbook import migration_runbook
from sandbox import ManualClock, MigrationScript, SandboxHandle, Scenario, serve
from tests.processes import base_env, free_port, running, wait_until_up

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
ROOT = Path(__file__).parent.parent
VICTIM = Path(__file__).parent / "runbook_victim.py"
#: Scenario seconds: RUNNING, then FULLMIGRATING, then INCRMIGEATING for ever.
PENDING, FULL, EXCHANGING = 1.0, 100.0, 30.0
#: The longest any child may take to get where the test waits for it.
CHILD_TIMEOUT = 60.0


@dataclass(frozen=True)
class Server:
    """The Prefect server process: its API, and the environment its clients need."""

    api: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`prefect server start` on loopback with a fresh home, stopped by PID at the end."""
    logs = tmp_path_factory.mktemp("crash")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = base_env(PREFECT_HOME=str(logs / "prefect-home"), PREFECT_API_URL=api)
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    with running([*command, "--port", str(port)], env=env, log=logs / "server.log") as process:
        wait_until_up(f"{api}/health", process, logs / "server.log", 120)
        yield Server(api, env)


@dataclass
class Migration:
    """One migration task in its own sandbox, and the flow runs that drive it."""

    server: Server
    dcs: SandboxHandle
    clock: ManualClock
    task_id: str
    block: str

    def parameters(self) -> dict[str, Any]:
        """The runbook's parameters, as a person would fill in the form."""
        return {
            "task_id": self.task_id,
            "credentials": self.block,
            "cutover": "exchange_ip",
            "poll_interval_seconds": 0.05,
            # The catch-up gate's window on the real clock: a fraction of a second here.
            "gate_interval_seconds": 0.05,
            "settle_seconds": 0.2,
        }

    def task(self) -> dict[str, Any]:
        """What the sandbox's admin view says about the task."""
        return dict(self.dcs.state.as_dict()["tasks"][self.task_id])

    def requests(self, route: str) -> list[int]:
        """Positions, in the sandbox's request log, of the requests to `route` for the task."""
        records = self.dcs.state.requests
        return [i for i, r in enumerate(records) if r.route == route and r.task_id == self.task_id]

    def reads_after(self, position: int) -> int:
        """GETs of the task the sandbox answered after the request at `position`."""
        return sum(1 for i in self.requests("show_migration_task") if i > position)

    def execute(self, flow_run_id: uuid.UUID, log: Path) -> Child:
        """Execute a flow run in a child process, as a process worker does."""
        env = {
            **self.server.env,
            "PREFECT__FLOW_RUN_ID": str(flow_run_id),
            "PREFECT__FLOW_ENTRYPOINT": "flows.runbook:migration_runbook",
            # This checkout's code, whichever checkout the environment has installed.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, str(VICTIM)], env=env, cwd=ROOT, stdout=output, stderr=output
            )
        return Child(process, log)


@dataclass
class Child:
    """A child process executing one flow run."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Poll `condition` (at most CHILD_TIMEOUT s); fail early if the child exits."""
        deadline = time.monotonic() + CHILD_TIMEOUT
        while not condition():
            # Look once more after the exit: the child may have done it, then exited, since.
            if self.process.poll() is not None and not condition():
                code = self.process.returncode
                pytest.fail(f"the child exited ({code}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {CHILD_TIMEOUT} s:\n{self.tail()}")
            await asyncio.sleep(0.02)

    async def exited(self) -> int:
        """Wait (at most CHILD_TIMEOUT s) for the child to end by itself; its exit code."""
        try:
            return await asyncio.to_thread(self.process.wait, CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the child did not end within {CHILD_TIMEOUT} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL (if alive), by PID, and reap."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def migration(server: Server) -> Iterator[Migration]:
    """A fresh task id in a sandbox whose time moves only when the test says so."""
    task_id = uuid.uuid4().hex  # fresh: the cutover record outlives a test
    clock = ManualClock()
    script = MigrationScript.incremental(
        task_id, pending_seconds=PENDING, full_seconds=FULL, exchanging_seconds=EXCHANGING
    )
    with serve(Scenario(tasks=[script]), clock=clock) as dcs:
        yield Migration(server, dcs, clock, task_id, f"crash-{task_id[:12]}")


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Every child a test starts, SIGKILLed (if still alive) when it ends."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


@pytest.mark.parametrize("resume", ["new-run", "same-run"])
@pytest.mark.parametrize("kill_point", ["waiting", "exchanging"])
async def test_a_killed_runbook_resumes_with_one_exchange(
    migration: Migration, children: list[Child], tmp_path: Path, kill_point: str, resume: str
) -> None:
    """SIGKILLed while waiting or mid-exchange, the resumed runbook completes, one exchange."""
    dcs = migration.dcs
    async with PrefectClient(api=migration.server.api) as prefect:
        credentials = DcsCredentials(
            endpoint=dcs.url, project_id=dcs.project_id, token=dcs.credentials["token"]
        )
        await credentials.asave(migration.block, client=prefect)
        first = await prefect.create_flow_run(migration_runbook, parameters=migration.parameters())

        # The victim: killed with the task still migrating, or with the exchange under way.
        migration.clock.advance(PENDING + (FULL / 2 if kill_point == "waiting" else FULL))
        victim = migration.execute(first.id, tmp_path / "victim.log")
        children.append(victim)
        if kill_point == "waiting":
            await victim.wait_for(lambda: migration.reads_after(-1) >= 3, "three polls")
        else:
            await victim.wait_for(
                lambda: bool(migration.requests("exchange_instance_ip")), "a POST"
            )
        # Held there by the sandbox's clock, not by timing: it stands still until the test
        # advances it, so the migration stays FULLMIGRATING, or the exchange EXCHANGING.
        victim.kill()
        killed = await prefect.read_flow_run(first.id)
        assert killed.state is not None
        assert killed.state.is_running()
        expected = (
            ("FULLMIGRATING", None) if kill_point == "waiting" else ("INCRMIGEATING", "EXCHANGING")
        )
        assert (migration.task()["status"], migration.task()["task_status"]) == expected
        assert migration.task()["exchange_requests"] == int(kill_point == "exchanging")

        # The resumer: the same flow run again, or a new one for the same task.
        if resume == "same-run":
            crashed = Crashed(message="the flow run's process was SIGKILLed (by the test)")
            await prefect.set_flow_run_state(first.id, crashed, force=True)
            run_id = first.id
        else:
            run_id = (
                await prefect.create_flow_run(migration_runbook, parameters=migration.parameters())
            ).id
        if kill_point == "waiting":
            migration.clock.advance(FULL)  # the migration is ready only now
        started = len(dcs.state.requests) - 1
        resumer = migration.execute(run_id, tmp_path / "resumer.log")
        children.append(resumer)

        def following() -> bool:
            # The POST (the victim's or the resumer's) was followed by three reads since.
            posts = migration.requests("exchange_instance_ip")
            return bool(posts) and migration.reads_after(max(started, posts[0])) >= 3

        await resumer.wait_for(following, "three reads of the task during the exchange")
        assert migration.task()["task_status"] == "EXCHANGING"
        migration.clock.advance(EXCHANGING)  # now the exchange ends, and only now
        assert await resumer.exited() == 0, resumer.tail()

        final = await prefect.read_flow_run(run_id)
        assert final.state is not None
        assert final.state.type is StateType.COMPLETED, (final.state.message, resumer.tail())
        if resume == "same-run":
            history = [s.type for s in await prefect.read_flow_run_states(run_id)]
            assert StateType.CRASHED in history
            assert history[-1] is StateType.COMPLETED
        record = await prefect.read_variable_by_name(cutover_record_name(migration.task_id))
        assert record is not None
        assert isinstance(record.value, dict)
        assert record.value["state"] == "succeeded"
        recorded_by = first.id if kill_point == "exchanging" else run_id
        assert record.value["flow_run_id"] == str(recorded_by)

    task = migration.task()
    assert task["exchange_requests"] == 1
    assert task["exchanges"] == 1
    assert task["addresses_swapped"] is True
    assert task["task_status"] == "EXCHANGE_SUCCESS"


@pytest.fixture
def exited_child(tmp_path: Path) -> Child:
    """A child that ran, exited 0, and was reaped."""
    log = tmp_path / "child.log"
    log.write_text("")
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return Child(process, log)


async def test_a_child_that_did_it_and_exited_between_two_looks_did_it(
    exited_child: Child,
) -> None:
    """wait_for believes the condition, not the exit, when the child did it and then exited."""
    looks: list[bool] = []

    def done() -> bool:
        looks.append(bool(looks))  # not at the first look; the child did it, then exited
        return looks[-1]

    await exited_child.wait_for(done, "the thing")
    assert looks[:2] == [False, True]  # it did not hold at first: the race, staged


async def test_a_child_that_exited_without_doing_it_fails_the_wait(exited_child: Child) -> None:
    """wait_for fails, naming what it waited for, when the child exits and it never happened."""
    with pytest.raises(pytest.fail.Exception, match=r"the child exited \(0\) before the thing"):
        await exited_child.wait_for(lambda: False, "the thing")
