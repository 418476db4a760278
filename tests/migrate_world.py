"""The world of the `migrate_instance` tests: the sandbox on 127.0.0.1 on the flows' fake
clock, a notification sink, and the blocks the flow loads (credentials, a Secret, the sink).

Each test module makes its own `world` fixture with `open_world(scenario)`: the scenario
holds the faults and any task that exists before the run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret

from blocks.credentials import DcsCredentials
from flows.clock import FakeTime, use_time
from sandbox import SandboxHandle, Scenario, serve
from tests.conftest import StubDcs

SOURCE_PASSWORD = "source-redis-canary-7d1f"
SOURCE = "86157b69-8a62-47f9-8c55-fa6ddc8927e1"  # the sandbox's source instance
TARGET = "86157b69-8a62-47f9-8c55-fa6ddc8927ee"  # the sandbox's target instance
CREATE, SET = "create_online_migration_task", "set_online_migration_task"


class World:
    """The sandbox, a sink for notifications, and names unique to one test."""

    def __init__(self, sandbox: SandboxHandle, sink: StubDcs, fake: FakeTime) -> None:
        self.sandbox, self.sink, self.fake = sandbox, sink, fake
        tag = uuid.uuid4().hex[:8]
        self.block, self.secret, self.name = f"migrate-{tag}", f"src-pw-{tag}", f"mig-{tag}"
        self.notify = f"custom-webhook/migrate-sink-{tag}"

    async def save(self) -> None:
        creds = self.sandbox.credentials
        await DcsCredentials(
            endpoint=creds["endpoint"], project_id=creds["project_id"], token=creds["token"]
        ).asave(self.block, overwrite=True)
        await Secret(value=SOURCE_PASSWORD).asave(self.secret, overwrite=True)
        self.sink.handler = lambda *_: (200, {}, b"{}")
        await CustomWebhookNotificationBlock(
            name="sink",
            url=f"{self.sink.url}/hook",
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
            allow_private_urls=True,
        ).asave(self.notify.split("/", 1)[1], overwrite=True)

    def parameters(self, **overrides: Any) -> dict[str, Any]:
        return {
            "task_name": self.name,
            "vpc_id": "vpc-1",
            "subnet_id": "subnet-1",
            "security_group_id": "sg-1",
            "source_instance_addrs": "10.0.0.5:6379",
            "source_password_secret": self.secret,
            "target_instance_id": TARGET,
            "credentials": self.block,
            "poll_interval_seconds": 15,
            "notification_blocks": [self.notify],
            **overrides,
        }

    def tasks_named(self) -> list[str]:
        return [s.task_id for s in self.sandbox.state.scripts() if s.task_name == self.name]

    def notifications(self) -> list[tuple[str, str]]:
        """(subject, body) of each notification the sink received, in order."""
        sent = [json.loads(body) for *_, body in self.sink.requests]
        return [(message["subject"], message["body"]) for message in sent]


@contextmanager
def open_world(scenario: Scenario | None = None) -> Iterator[World]:
    """The sandbox serving `scenario` on a fake clock, a sink, and the test under that clock."""
    fake = FakeTime()
    with (
        serve(scenario or Scenario(), clock=fake.monotonic) as handle,
        StubDcs() as sink,
        use_time(fake),
    ):
        yield World(handle, sink, fake)


__all__ = ["CREATE", "SET", "SOURCE", "SOURCE_PASSWORD", "TARGET", "World", "open_world"]
