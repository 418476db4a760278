"""Run the same call on `DcsClient` and `AsyncDcsClient`, with fake time (`SyncFakeTime`)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from blocks.auth import TokenAuth
from blocks.client import AsyncDcsClient, DcsClient
from blocks.retry import RetryPolicy
from tests.fakes import SyncFakeTime

ENDPOINT = "https://dcs.example.test"
PROJECT_ID = "0605767f8d00d5a52f4bc01f1b2d5ac5"
TOKEN = "test-token-MIIZvQYJKoZIhvcNAQcCoIIZrjCCGaoCAQExDTALBglghkgBZQMEAgEw"

MockHandler = Callable[[httpx.Request], httpx.Response]


class Twin:
    """One client flavour ('sync' or 'async') over a MockTransport."""

    def __init__(
        self, kind: str, handler: MockHandler, auth: httpx.Auth | None = None, **options: Any
    ) -> None:
        self.kind = kind
        self.handler = handler
        self.auth = auth or TokenAuth(SecretStr(TOKEN))
        self.clock = SyncFakeTime()
        self.options = {"retry": RetryPolicy(rng=random.Random(7)), **options}

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call `method` on a fresh client of this flavour and return its result."""
        transport = httpx.MockTransport(self.handler)
        common = dict(transport=transport, clock=self.clock.monotonic, **self.options)
        if self.kind == "sync":
            with DcsClient(
                ENDPOINT, PROJECT_ID, self.auth, sleep=self.clock.sleep_sync, **common
            ) as client:
                result = getattr(client, method)(*args, **kwargs)
                return list(result) if method.startswith("iter_") else result

        async def run() -> Any:
            async with AsyncDcsClient(
                ENDPOINT, PROJECT_ID, self.auth, sleep=self.clock.sleep, **common
            ) as client:
                result = getattr(client, method)(*args, **kwargs)
                if method.startswith("iter_"):
                    return [item async for item in result]
                return await result

        return asyncio.run(run())
