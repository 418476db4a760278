"""The cutover tests' DCS: one task ready for cutover, and the Prefect side of each test.

The DCS is `tests.fakes.FakeDcs` in its cutover mode, answering in the loopback stub's
server thread; `switch` runs the exchange or rollback in a new flow run under `FakeTime`,
so intervals and deadlines pass instantly.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client

from blocks.credentials import DcsCredentials
from blocks.models import MigrationTask
from flows.clock import FakeTime, use_time
from flows.cutover import exchange_instance_ip, rollback_instance_ip
from flows.records import CutoverRecords
from tests import fakes
from tests.conftest import PROJECT_ID, StubDcs

TOKEN = "cutover-token-canary-77d1"
REDIS_PASSWORD = fakes.PASSWORD


class CutoverDcs(fakes.FakeDcs):
    """A `FakeDcs` with one task ready for cutover, served by `stub`, and a block for it.

    The task is INCRMIGEATING with task_status RUNNING until a switch POST (see `after`,
    `post_answer`, `hold_posts`, `gate` and `show` on `FakeDcs`). Both switches are counted
    from zero, so `posts` compares equal to {"exchange-ip": n, "rollback-ip": m}.
    """

    def __init__(self, stub: StubDcs) -> None:
        super().__init__()
        self.task_id = uuid.uuid4().hex  # fresh per test: records outlive a test
        self.add(self.task_id, "INCRMIGEATING", task_statuses=["RUNNING"])
        self.posts.update({"exchange-ip": 0, "rollback-ip": 0})
        self.url = stub.url
        self.credentials = DcsCredentials(endpoint=stub.url, project_id=PROJECT_ID, token=TOKEN)
        stub.handler = self.stub_handler

    async def switch(self, *, rollback: bool = False, **options: Any) -> MigrationTask:
        """Run the exchange (or the rollback) in a new flow run, under fake time."""

        @flow
        async def cutover() -> MigrationTask:
            if rollback:
                return await rollback_instance_ip(self.task_id, self.credentials, **options)
            return await exchange_instance_ip(self.task_id, self.credentials, **options)

        with use_time(FakeTime()):
            return await cutover()

    async def records(self, action: str = "exchange-ip") -> list[dict[str, Any]]:
        """Every attempt's record of `action` for this task, the first first."""
        # Our own client, closed after use: Variable.aget outside a flow leaves one open.
        async with get_client() as client:
            store = CutoverRecords(client, self.task_id, action)
            found = []
            while (record := await store.read(len(found) + 1)) is not None:
                found.append(record.value)
        return found

    async def record(self, action: str = "exchange-ip") -> dict[str, Any]:
        """The latest record of `action` for this task."""
        found = await self.records(action)
        assert found, f"no record of {action} for task {self.task_id}"
        return found[-1]


# The name the cutover tests first knew it by; kept so that older imports keep working.
FakeDcs = CutoverDcs

__all__ = ["REDIS_PASSWORD", "TOKEN", "CutoverDcs", "FakeDcs"]
