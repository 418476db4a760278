"""Our client (`blocks`) reads the sandbox's service-shaped answers as it should read DCS's:
DCS.4133 on a 400, the API gateway's AK/SK refusal, key counts sent as strings. In-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import AkSkAuth, TokenAuth
from blocks.client import AsyncDcsClient
from blocks.errors import DcsAuthError, MigrationTaskNotFound
from blocks.retry import RetryPolicy
from sandbox import ManualClock, MigrationScript, SandboxApp, Scenario, create_app
from sandbox.scenario import DEFAULT_ACCESS_KEY, DEFAULT_TOKEN

TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
SCENARIO = Scenario(tasks=[MigrationScript.incremental(TASK_ID, full_seconds=30)])
#: One attempt: none of these answers is worth a retry, and a retry would hide a wrong class.
NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> SandboxApp:
    return create_app(SCENARIO, clock)


def client_for(app: SandboxApp, auth: httpx.Auth) -> AsyncDcsClient:
    transport = httpx.ASGITransport(app)
    return AsyncDcsClient(
        "http://127.0.0.1:8000", SCENARIO.project_id, auth, transport=transport, retry=NO_RETRY
    )


@pytest.fixture
async def dcs(app: SandboxApp) -> AsyncIterator[AsyncDcsClient]:
    """Our async client with the scenario's fixed token, talking to the app in-process."""
    async with client_for(app, TokenAuth(SecretStr(DEFAULT_TOKEN))) as client:
        yield client


async def test_a_missing_task_on_a_400_is_migration_task_not_found(
    dcs: AsyncDcsClient, app: SandboxApp
) -> None:
    """400 DCS.4133 from the sandbox is MigrationTaskNotFound, with status and request id."""
    with pytest.raises(MigrationTaskNotFound) as caught:
        await dcs.show_migration_task("0000000000000000000000000000dead")
    error = caught.value
    assert (error.status_code, error.error_code) == (400, "DCS.4133")
    assert error.request_id == app.sandbox_state.requests[-1].request_id


async def test_a_bad_secret_key_is_an_auth_error_with_the_gateways_code(app: SandboxApp) -> None:
    """The gateway's 401 APIGW.0301 is a DcsAuthError naming the code, message and request."""
    auth = AkSkAuth(DEFAULT_ACCESS_KEY, SecretStr("x" * 40), project_id=SCENARIO.project_id)
    async with client_for(app, auth) as client:
        with pytest.raises(DcsAuthError) as caught:
            await client.show_migration_task(TASK_ID)
    error = caught.value
    assert (error.status_code, error.error_code) == (401, "APIGW.0301")
    assert error.error_msg is not None
    assert error.error_msg.startswith("Incorrect IAM authentication information")
    assert error.request_id == app.sandbox_state.requests[-1].request_id
    assert "x" * 40 not in str(error)


async def test_key_counts_sent_as_strings_are_read_as_numbers(
    dcs: AsyncDcsClient, clock: ManualClock
) -> None:
    """`source_dbsize`/`target_dbsize` arrive as strings (as the SDK types them); ints here."""
    clock.advance(17)
    stats = await dcs.show_migration_task_stats(TASK_ID)
    assert (stats.source_dbsize, stats.target_dbsize) == (100_000, 50_000)
