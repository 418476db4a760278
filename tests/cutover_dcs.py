"""A stateful fake DCS for the cutover tests: one task whose task_status follows a script.

It answers in the loopback stub's server thread; `switch` runs the exchange or rollback in
a new flow run under `FakeTime`, so intervals and deadlines pass instantly.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client

from blocks.credentials import DcsCredentials
from blocks.models import EXCHANGE_SUCCESS, EXCHANGING, ROLLBACK_SUCCESS, MigrationTask
from flows.clock import FakeTime, use_time
from flows.cutover import exchange_instance_ip, rollback_instance_ip
from flows.records import CutoverRecords
from tests.conftest import PROJECT_ID, StubDcs

TOKEN = "cutover-token-canary-77d1"
REDIS_PASSWORD = "redis-password-canary-5e0b"


class FakeDcs:
    """One migration task whose task_status follows a script after each switch request.

    GETs see the queue `shown` (its last entry repeats; an int answers with that HTTP
    error). A POST to exchange-ip or rollback-ip is counted and replaces the queue with
    `after[action]`; with `hold_posts`, a POST is held unanswered and never acted on.
    With a `gate` (a barrier), GETs wait until that many arrive together.
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
        self.gate: threading.Barrier | None = None
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
        gate = self.gate
        if gate is not None:
            # Hold each GET until `gate.parties` of them are waiting: every run has then
            # read the records and is about to decide, so their claims really race.
            gate.wait(timeout=30)
            self.gate = None
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
