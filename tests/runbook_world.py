"""The runbook tests' world: a scripted DCS and a notification sink on loopback, blocks
saved for both, and fake time; with the fixtures that hand it out.

Registered as a pytest plugin in tests/conftest.py, so every test module can ask for
`world` and `quick_approval_poll`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

import flows.approval
from blocks.credentials import DcsCredentials
from flows.clock import FakeTime, use_time
from flows.runbook import migration_runbook
from tests.conftest import StubDcs
from tests.fakes import FakeDcs, Step

TOKEN = "runbook-token-canary-5e7a"


class World:
    """A scripted DCS and a notification sink on loopback, with blocks saved for both."""

    def __init__(self, dcs_stub: StubDcs, sink: StubDcs, fake: FakeTime) -> None:
        self.task_id = uuid.uuid4().hex  # exactly-once records are per task: one per test
        self.fake = fake
        self.dcs_stub = dcs_stub
        self.sink = sink
        self.dcs = FakeDcs({})
        self.block = f"runbook-{self.task_id[:8]}"
        self.notify = f"custom-webhook/sink-{self.task_id[:8]}"

    async def setup(self, steps: list[Step]) -> None:
        self.dcs.scripts[self.task_id] = steps
        self.dcs_stub.handler = self.dcs.stub_handler
        self.sink.handler = lambda *_: (200, {}, b"{}")
        await DcsCredentials(endpoint=self.dcs_stub.url, project_id="project-1", token=TOKEN).asave(
            self.block, overwrite=True
        )
        await CustomWebhookNotificationBlock(
            name="sink",
            url=f"{self.sink.url}/hook",
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
            allow_private_urls=True,
        ).asave(self.notify.split("/", 1)[1], overwrite=True)

    def run(self, **parameters: Any) -> Any:
        defaults = {
            "task_id": self.task_id,
            "credentials": self.block,
            "notification_blocks": [self.notify],
        }
        return migration_runbook(**{**defaults, **parameters})

    def notifications(self) -> list[str]:
        """The subjects the sink received, in order."""
        return [json.loads(body)["subject"] for _, _, _, body in self.sink.requests]

    def bodies(self) -> str:
        return " ".join(body.decode() for _, _, _, body in self.sink.requests)


@pytest.fixture
def world() -> Iterator[World]:
    """Fresh DCS and sink servers, and time that moves only when the runbook waits."""
    fake = FakeTime()
    with StubDcs() as dcs, StubDcs() as sink, use_time(fake):
        yield World(dcs, sink, fake)


async def paused_run_id() -> uuid.UUID:
    """The id of the runbook run once it is paused (bounded wait on the Prefect API)."""
    async with get_client() as client:
        for _ in range(400):
            runs = await client.read_flow_runs(sort="START_TIME_DESC", limit=5)
            for run in runs:
                if run.name.startswith("runbook-") and run.state_type == StateType.PAUSED:
                    return run.id
            await asyncio.sleep(0.05)
    msg = "the runbook never paused"
    raise AssertionError(msg)


@pytest.fixture
def quick_approval_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check for the approval every 50 ms instead of every 5 s."""
    monkeypatch.setattr(flows.approval, "APPROVAL_POLL_SECONDS", 0.05)


__all__ = ["TOKEN", "World", "paused_run_id", "quick_approval_poll", "world"]
