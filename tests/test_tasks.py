"""fetch_migration_task: in sync and async flows, by block name or instance, logging safely."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from prefect import flow

from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError, MigrationTaskNotFound
from blocks.models import MigrationStatus, MigrationTask
from flows import aload_credentials, fetch_migration_task
from tests.conftest import PROJECT_ID, TASK_ID, StubDcs
from tests.fakes import CannedReplies, for_stub

pytestmark = pytest.mark.usefixtures("prefect_harness")

TOKEN = "tasks-token-canary-1f3e"


@pytest.fixture
def credentials(stub_dcs: StubDcs, seed_body: dict[str, Any]) -> DcsCredentials:
    """A block pointed at the loopback stub, which answers with the seed example."""
    seed = httpx.Response(200, json=seed_body, headers={"X-Request-Id": "r1"})
    stub_dcs.handler = for_stub(CannedReplies(seed))
    return DcsCredentials(endpoint=stub_dcs.url, project_id=PROJECT_ID, token=TOKEN)


def test_in_a_sync_flow_with_a_block(
    credentials: DcsCredentials, stub_dcs: StubDcs, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync flow gets the masked task and one log line with name, status, task_status."""

    @flow
    def check() -> MigrationTask:
        return fetch_migration_task(TASK_ID, credentials)

    with caplog.at_level(logging.INFO):
        task = check()
    assert task.task_name == "migration1"
    assert task.status is MigrationStatus.TERMINATING
    assert "DCStest123" not in task.model_dump_json()
    method, path, headers, _ = stub_dcs.requests[0]
    assert (method, path) == ("GET", f"/v2/{PROJECT_ID}/migration-task/{TASK_ID}")
    assert headers["x-auth-token"] == TOKEN
    lines = [r.getMessage() for r in caplog.records if r.name == "prefect.task_runs"]
    assert any("migration1" in line and "TERMINATING" in line for line in lines)
    assert not any(
        "DCStest123" in r.getMessage() or TOKEN in r.getMessage() for r in caplog.records
    )


async def test_in_an_async_flow_by_block_name(credentials: DcsCredentials) -> None:
    """An async flow can call the task with the name of a saved block."""
    await credentials.asave("dcs-tasks-test", overwrite=True)

    @flow
    async def check() -> MigrationTask:
        return fetch_migration_task(TASK_ID, "dcs-tasks-test")

    task = await check()
    assert task.task_id == TASK_ID


def test_a_missing_block_is_a_clear_error() -> None:
    """An unknown block name says which name and how to create the block."""

    @flow
    def check() -> MigrationTask:
        return fetch_migration_task(TASK_ID, "no-such-block")

    with pytest.raises(DcsValidationError, match="no DcsCredentials block named 'no-such-block'"):
        check()


def test_a_deleted_task_raises_not_found(credentials: DcsCredentials, stub_dcs: StubDcs) -> None:
    """DCS.4133 surfaces as MigrationTaskNotFound from the task."""
    error = {"error_code": "DCS.4133", "error_msg": "not found"}
    stub_dcs.handler = for_stub(CannedReplies(httpx.Response(404, json=error)))

    @flow
    def check() -> MigrationTask:
        return fetch_migration_task(TASK_ID, credentials)

    with pytest.raises(MigrationTaskNotFound):
        check()


async def test_a_saved_block_that_no_longer_validates_is_named(
    credentials: DcsCredentials,
) -> None:
    """A block edited into an invalid state says so by name, without echoing a secret."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    await credentials.asave("dcs-broken", overwrite=True)
    async with get_client() as client:
        document = await client.read_block_document_by_name("dcs-broken", "dcs-credentials")
        data = {**document.data, "access_key": "AKBROKEN", "secret_key": "sk-broken-canary"}
        await client.update_block_document(document.id, BlockDocumentUpdate(data=data))
    with pytest.raises(DcsValidationError, match="'dcs-broken' exists but is not valid") as err:
        await aload_credentials("dcs-broken")
    assert "sk-broken-canary" not in str(err.value)
    assert TOKEN not in str(err.value)
