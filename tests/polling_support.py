"""Clients for the polling-engine tests: over a `ScriptedDcs`, or any MockTransport handler."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from blocks.auth import TokenAuth
from blocks.client import AsyncDcsClient
from blocks.retry import RetryPolicy
from flows.clock import FakeTime
from tests.scripted import ScriptedDcs


def client_for(dcs: ScriptedDcs, fake: FakeTime) -> AsyncDcsClient:
    # One attempt per read: the engine's own streak handling is what is under test.
    return AsyncDcsClient(
        "https://dcs.example.test",
        "project-1",
        TokenAuth(SecretStr("t")),
        transport=dcs.transport(),
        retry=RetryPolicy(max_attempts=1),
        sleep=fake.sleep,
        clock=fake.monotonic,
    )


def client_answered_by(handler: Any) -> AsyncDcsClient:
    """A one-attempt client whose every request `handler` answers (sync or async)."""
    return AsyncDcsClient(
        "https://dcs.test",
        "p",
        TokenAuth(SecretStr("t")),
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=1),
    )
