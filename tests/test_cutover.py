"""flows.cutover: the IP exchange and its rollback are requested at most once; deployments.

The fake DCS is stateful and answers in the loopback stub's server thread; flows run under
`FakeTime`, so intervals and deadlines pass instantly. The deployment tests create a real
deployment on the harness server; no worker runs in tests, so a coroutine plays the worker
by setting the final state of each run it finds (`set_flow_run_state`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun, State
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelled, Completed, Failed

from blocks.credentials import DcsCredentials
from blocks.errors import CutoverAlreadyRequested, CutoverFailed, DcsValidationError
from blocks.models import EXCHANGE_SUCCESS, EXCHANGING, ROLLBACK_SUCCESS, MigrationTask
from flows.clock import FakeTime, use_time
from flows.cutover import (
    cutover_record_name,
    exchange_instance_ip,
    rollback_instance_ip,
    run_cutover_deployment,
)
from tests.conftest import PROJECT_ID, StubDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")

TOKEN = "cutover-token-canary-77d1"
REDIS_PASSWORD = "redis-password-canary-5e0b"
VICTIM = Path(__file__).parent / "cutover_victim.py"


class FakeDcs:
    """One migration task whose task_status follows a script after each switch request.

    GETs see the queue `shown` (its last entry repeats; an int answers with that HTTP
    error). A POST to exchange-ip or rollback-ip is counted and replaces the queue with
    `after[action]`; with `hold_posts`, a POST is held unanswered and never acted on.
    """

    def __init__(self, stub: StubDcs) -> None:
        self.url = stub.url
        self.task_id = uuid.uuid4().hex  # fresh per test: records outlive a test
        self.credentials = DcsCredentials(endpoint=stub.url, project_id=PROJECT_ID, token=TOKEN)
        self.lock = threading.Lock()
        self.shown: list[str | int] = ["RUNNING"]
        self.after: dict[str, list[str | int]] = {
            "exchange-ip": [EXCHANGING, EXCHANGING, EXCHANGE_SUCCESS],
            "rollback-ip": [EXCHANGING, ROLLBACK_SUCCESS],
        }
        self.posts = {"exchange-ip": 0, "rollback-ip": 0}
        self.post_bodies: list[dict[str, Any]] = []
        self.post_answer: tuple[int, bytes] = (204, b"")
        self.gets_after_post = 0
        self.hold_posts = False
        self.held = threading.Event()
        self.release = threading.Event()
        stub.handler = self.handle

    def show(self, *statuses: str | int) -> None:
        """Make the next GETs see `statuses` (the last one repeats)."""
        with self.lock:
            self.shown = list(statuses)

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request, in the stub's server thread."""
        action = path.rsplit("/", 1)[-1]
        if method == "POST" and action in self.posts:
            if self.hold_posts:
                self.held.set()
                self.release.wait(timeout=30)
                return 504, {}, b""
            with self.lock:
                self.posts[action] += 1
                self.post_bodies.append(json.loads(body or b"{}"))
                if not 400 <= self.post_answer[0] < 500:  # a refused request switches nothing
                    self.shown = list(self.after[action])
                    self.gets_after_post = 0
            return self.post_answer[0], {}, self.post_answer[1]
        with self.lock:
            shown = self.shown.pop(0) if len(self.shown) > 1 else self.shown[0]
            self.gets_after_post += 1
        if isinstance(shown, int):
            return shown, {}, b'{"error_code": "DCS.5000", "error_msg": "internal error"}'
        task = {
            "task_id": self.task_id,
            "task_name": "migration1",
            "status": "INCRMIGEATING",
            "task_status": shown,
            "source_instance": {"addrs": "10.0.0.1:6379", "password": REDIS_PASSWORD},
        }
        return 200, {"X-Request-Id": "req-1"}, json.dumps(task).encode()

    async def switch(self, *, rollback: bool = False, **options: Any) -> MigrationTask:
        """Run the exchange (or the rollback) in a new flow run, under fake time."""

        @flow
        async def cutover() -> MigrationTask:
            if rollback:
                return await rollback_instance_ip(self.task_id, self.credentials, **options)
            return await exchange_instance_ip(self.task_id, self.credentials, **options)

        with use_time(FakeTime()):
            return await cutover()

    async def record(self, action: str = "exchange-ip") -> dict[str, Any]:
        """The durable record of `action` for this task."""
        # Our own client, closed after use: Variable.aget outside a flow leaves one open.
        async with get_client() as client:
            variable = await client.read_variable_by_name(cutover_record_name(self.task_id, action))
        assert variable is not None
        assert isinstance(variable.value, dict)
        return variable.value


@pytest.fixture
def dcs(stub_dcs: StubDcs) -> FakeDcs:
    """The fake DCS, with a fresh task id and a block pointed at it."""
    return FakeDcs(stub_dcs)


@pytest.mark.parametrize(
    ("after", "post_answer"),
    [
        pytest.param([EXCHANGING, EXCHANGE_SUCCESS], (204, b""), id="exchanging-then-success"),
        pytest.param(["RUNNING", "RUNNING", EXCHANGING, EXCHANGE_SUCCESS], (204, b""), id="lags"),
        pytest.param([EXCHANGING, *[503] * 9, EXCHANGE_SUCCESS], (204, b""), id="dcs-flaky"),
        pytest.param([EXCHANGING, EXCHANGE_SUCCESS], (502, b"<html>"), id="post-5xx-but-acted"),
    ],
)
async def test_exchange_succeeds_with_one_request(
    dcs: FakeDcs,
    after: list[str | int],
    post_answer: tuple[int, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EXCHANGING -> EXCHANGE_SUCCESS returns the masked task after exactly one POST."""
    dcs.after["exchange-ip"] = after
    dcs.post_answer = post_answer
    with caplog.at_level(logging.INFO):
        task = await dcs.switch(exchanged_ip=["10.0.0.9"])
    assert task.task_status == EXCHANGE_SUCCESS
    assert dcs.posts == {"exchange-ip": 1, "rollback-ip": 0}
    assert dcs.post_bodies == [{"exchanged_ip": ["10.0.0.9"]}]
    saved = await dcs.record()
    assert saved["state"] == "succeeded"
    assert saved["task_status"] == EXCHANGE_SUCCESS
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert logs.count("cannot read the task") == (1 if 503 in after else 0)
    for text in (task.model_dump_json(), json.dumps(saved), logs):
        assert REDIS_PASSWORD not in text
        assert TOKEN not in text


@pytest.mark.parametrize(
    ("after", "post_answer", "options", "expected", "state"),
    [
        pytest.param(
            [EXCHANGING, "EXCHANGE_FAILED"], (204, b""), {}, "'EXCHANGE_FAILED'", "failed",
            id="exchange-failed",
        ),
        pytest.param(
            [EXCHANGING], (204, b""), {"timeout_seconds": 60},
            r"did not finish within 60 s .*last task_status 'EXCHANGING'", "requested",
            id="deadline",
        ),
        pytest.param(
            ["RUNNING"], (204, b""), {},
            r"did not start.*last task_status 'RUNNING'.*nothing was switched, pass force=True",
            "failed", id="never-started",
        ),
        pytest.param(
            [EXCHANGING], (400, b'{"error_code": "DCS.4972", "error_msg": "bad state"}'), {},
            r"refused, nothing was switched.*DCS\.4972", "refused", id="post-refused",
        ),
    ],
)  # fmt: skip
async def test_exchange_failure_is_reported(
    dcs: FakeDcs,
    after: list[str | int],
    post_answer: tuple[int, bytes],
    options: dict[str, Any],
    expected: str,
    state: str,
) -> None:
    """A bad end or the deadline raises CutoverFailed naming the task and last task_status."""
    dcs.after["exchange-ip"] = after
    dcs.post_answer = post_answer
    with pytest.raises(CutoverFailed, match=expected) as raised:
        await dcs.switch(**options)
    assert dcs.task_id in str(raised.value)
    assert dcs.posts["exchange-ip"] == 1
    assert (await dcs.record())["state"] == state


async def test_a_refused_request_does_not_block_the_next_one(dcs: FakeDcs) -> None:
    """A request DCS refused switched nothing: the next run asks again, without force."""
    dcs.after["exchange-ip"] = [EXCHANGING, EXCHANGE_SUCCESS]
    dcs.post_answer = (400, b'{"error_code": "DCS.4972", "error_msg": "not yet"}')
    with pytest.raises(CutoverFailed, match="refused"):
        await dcs.switch()
    dcs.post_answer = (204, b"")
    task = await dcs.switch()
    assert task.task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == 2
    assert (await dcs.record())["state"] == "succeeded"


async def test_a_blank_task_status_mid_exchange_is_not_an_end(dcs: FakeDcs) -> None:
    """DCS showing no task_status for a moment during the switch does not fail the cutover."""
    dcs.after["exchange-ip"] = [EXCHANGING, "", EXCHANGING, EXCHANGE_SUCCESS]
    task = await dcs.switch()
    assert task.task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == 1


async def test_flow_retry_does_not_request_again(
    dcs: FakeDcs, caplog: pytest.LogCaptureFixture
) -> None:
    """A flow retried after the exchange follows DCS instead of POSTing a second time."""
    attempts: list[str | None] = []

    @flow(retries=2, retry_delay_seconds=0)
    async def cutover() -> MigrationTask:
        task = await exchange_instance_ip(dcs.task_id, dcs.credentials)
        attempts.append(task.task_status)
        if len(attempts) == 1:
            raise RuntimeError("a step after the exchange failed")
        return task

    with use_time(FakeTime()), caplog.at_level(logging.INFO):
        task = await cutover()
    assert task.task_status == EXCHANGE_SUCCESS
    assert attempts == [EXCHANGE_SUCCESS, EXCHANGE_SUCCESS]
    assert dcs.posts["exchange-ip"] == 1
    assert any("without a new request" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("shown", "force", "posts"),
    [
        pytest.param([ROLLBACK_SUCCESS], False, 1, id="refused-when-dcs-shows-no-exchange"),
        pytest.param([EXCHANGING, EXCHANGE_SUCCESS], False, 1, id="follows-when-exchanging"),
        pytest.param([EXCHANGE_SUCCESS], False, 1, id="returns-when-already-done"),
        pytest.param([ROLLBACK_SUCCESS], True, 2, id="force-requests-again"),
    ],
)
async def test_a_later_run_requests_only_with_force(
    dcs: FakeDcs, shown: list[str | int], force: bool, posts: int
) -> None:
    """A new flow run for an exchanged task is refused, or follows, unless force=True."""
    await dcs.switch()
    first = await dcs.record()
    dcs.show(*shown)
    if shown == [ROLLBACK_SUCCESS] and not force:
        with pytest.raises(CutoverAlreadyRequested) as refused:
            await dcs.switch()
        message = str(refused.value)
        for part in (dcs.task_id, first["flow_run_id"], first["requested_at"], "force=True"):
            assert part in message
        assert "'ROLLBACK_SUCCESS'" in message
    else:
        assert (await dcs.switch(force=force)).task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == posts
    latest = await dcs.record()
    assert (latest["flow_run_id"] != first["flow_run_id"]) is force


@pytest.mark.parametrize("force", [pytest.param(False, id="plain"), pytest.param(True, id="force")])
async def test_never_requests_while_dcs_is_exchanging(dcs: FakeDcs, force: bool) -> None:
    """With no record but DCS already EXCHANGING, even force=True only follows and records."""
    dcs.show(EXCHANGING, EXCHANGING, EXCHANGE_SUCCESS)
    assert (await dcs.switch(force=force)).task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == 0
    assert (await dcs.record())["state"] == "succeeded"


async def test_rollback_has_its_own_record(dcs: FakeDcs) -> None:
    """Rollback follows to ROLLBACK_SUCCESS; a new exchange after it then needs force=True."""
    await dcs.switch()
    assert (await dcs.switch(rollback=True)).task_status == ROLLBACK_SUCCESS
    assert dcs.posts == {"exchange-ip": 1, "rollback-ip": 1}
    assert (await dcs.record("rollback-ip"))["state"] == "succeeded"
    assert (await dcs.record())["state"] == "succeeded"
    with pytest.raises(CutoverAlreadyRequested):
        await dcs.switch()
    assert dcs.posts == {"exchange-ip": 1, "rollback-ip": 1}


@pytest.mark.parametrize(
    "task_id",
    [
        pytest.param("a276c1ffa0a54c2597fc824b917db317", id="hex"),
        pytest.param("Task.ID:With~Punctuation", id="mixed-case-punctuation"),
        pytest.param("x" * 128, id="longest"),
    ],
)
def test_record_names_are_valid_and_distinct(task_id: str) -> None:
    """Record names fit Prefect's variable rules, and ids differing only in case differ."""
    name = cutover_record_name(task_id)
    assert len(name) <= 255
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")
    assert name.startswith("dcs-cutover-exchange-ip-")
    assert name != cutover_record_name(task_id.swapcase() + "!")
    assert name != cutover_record_name(task_id, "rollback-ip")


# -- crashes: a real worker process, really killed --------------------------------------


@dataclass
class Victim:
    """tests/cutover_victim.py running one exchange against the fake DCS and our server."""

    child: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        """The end of the child's stderr, for a failure message."""
        return self.log.read_text()[-3000:]

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait (at most 45 s) until `condition` holds; fail early if the child exits."""
        for _ in range(900):
            if condition():
                return
            if self.child.poll() is not None:
                pytest.fail(f"the victim exited with {self.child.returncode}:\n{self.tail()}")
            await asyncio.sleep(0.05)
        pytest.fail(f"timed out waiting for the victim:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the child (if alive) and reap it."""
        if self.child.poll() is None:
            os.kill(self.child.pid, signal.SIGKILL)
        self.child.wait(timeout=10)


@pytest.fixture
def victim(dcs: FakeDcs, tmp_path: Path) -> Iterator[Victim]:
    """A started victim process, always killed at the end."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env["PYTHONPATH"] = os.pathsep.join([str(VICTIM.parent.parent), env.get("PYTHONPATH", "")])
    log = tmp_path / "victim.log"
    with log.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(VICTIM), dcs.url, PROJECT_ID, dcs.task_id],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    started = Victim(child, log)
    try:
        yield started
    finally:
        started.kill()


async def test_killed_while_following(dcs: FakeDcs, victim: Victim) -> None:
    """A worker SIGKILLed after its POST: the next run finds EXCHANGE_SUCCESS, no 2nd POST."""
    dcs.after["exchange-ip"] = [EXCHANGING]  # until the victim is dead
    await victim.wait_for(lambda: dcs.posts["exchange-ip"] == 1 and dcs.gets_after_post >= 2)
    victim.kill()
    orphan = await dcs.record()
    assert orphan["state"] == "requested"

    dcs.show(EXCHANGE_SUCCESS)
    assert (await dcs.switch()).task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == 1
    finished = await dcs.record()
    assert finished["state"] == "succeeded"
    assert finished["flow_run_id"] == orphan["flow_run_id"]


async def test_killed_before_the_request_reached_dcs(dcs: FakeDcs, victim: Victim) -> None:
    """Killed between intent and POST: the next run refuses rather than POSTing blind."""
    dcs.hold_posts = True
    try:
        await victim.wait_for(dcs.held.is_set)
        victim.kill()
    finally:
        dcs.release.set()
    orphan = await dcs.record()
    assert orphan["state"] == "requested"

    dcs.hold_posts = False
    with pytest.raises(CutoverAlreadyRequested, match=orphan["flow_run_id"]):
        await dcs.switch()
    assert dcs.posts["exchange-ip"] == 0


# -- run_cutover_deployment --------------------------------------------------------------


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
