"""flows.cutover under a real worker process, really killed (SIGKILL) mid-cutover.

tests/cutover_victim.py runs one exchange against the fake DCS and the test's Prefect server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from blocks.errors import CutoverAlreadyRequested
from blocks.models import EXCHANGE_SUCCESS, EXCHANGING
from tests.conftest import PROJECT_ID, StubDcs
from tests.cutover_dcs import CutoverDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")

VICTIM = Path(__file__).parent / "cutover_victim.py"


@pytest.fixture
def dcs(stub_dcs: StubDcs) -> CutoverDcs:
    """The fake DCS, with a fresh task id and a block pointed at it."""
    return CutoverDcs(stub_dcs)


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
def victim(dcs: CutoverDcs, tmp_path: Path) -> Iterator[Victim]:
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


async def test_killed_while_following(dcs: CutoverDcs, victim: Victim) -> None:
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


async def test_killed_before_the_request_reached_dcs(dcs: CutoverDcs, victim: Victim) -> None:
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
