"""A deleted task, as DCS shows it: gone from the list at once, 400 DCS.4133 on a read, and,
when the scenario says so, a detail that still reads SUCCESS for a while (as Huawei's Terraform
provider warns). In-process, on a hand-moved clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import TokenAuth
from blocks.client import AsyncDcsClient
from blocks.errors import MigrationTaskNotFound
from blocks.retry import RetryPolicy
from sandbox import (
    ManualClock,
    MigrationScript,
    SandboxApp,
    Scenario,
    ScenarioError,
    create_app,
    load_scenario,
)
from tests.test_sandbox_support import NOW, asgi_client, task_url, token_headers

#: Deleted at 10 s; its detail reads SUCCESS until 16 s, then DCS.4133.
GHOST = MigrationScript.deleted("ghost", deleted_after_seconds=10, deleted_reads_success_for=6)
SCENARIO = Scenario(tasks=[GHOST, MigrationScript.deleted("gone", deleted_after_seconds=10)])
LIST = f"/v2/{SCENARIO.project_id}/migration-tasks"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> SandboxApp:
    return create_app(SCENARIO, clock, utc_now=lambda: NOW)


@pytest.fixture
async def client(app: SandboxApp) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client authenticated with the scenario's fixed token."""
    async with asgi_client(app) as client:
        client.headers.update(token_headers(SCENARIO))
        yield client


async def listed_ids(client: httpx.AsyncClient) -> list[str]:
    return [task["task_id"] for task in (await client.get(LIST)).json()["migration_tasks"]]


def error_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


async def test_a_deleted_task_reads_success_for_a_while_then_4133(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """`deleted_reads_success_for`: the detail reads SUCCESS in the window, then 400 DCS.4133."""
    clock.advance(9)
    assert (await client.get(task_url(SCENARIO, "ghost"))).json()["status"] == "FULLMIGRATING"
    clock.advance(1)
    body = (await client.get(task_url(SCENARIO, "ghost"))).json()
    assert body["status"] == "SUCCESS"
    assert body["updated_at"] == body["released_at"] == "2026/05/10 12:00:10"
    clock.advance(5.9)
    assert (await client.get(task_url(SCENARIO, "ghost"))).json()["status"] == "SUCCESS"
    clock.advance(0.1)
    assert error_code(await client.get(task_url(SCENARIO, "ghost"))) == (400, "DCS.4133")


async def test_in_the_window_only_the_detail_reads_success(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """While the detail reads SUCCESS, the list, stats, logs and actions know no such task."""
    clock.advance(12)
    assert "ghost" not in await listed_ids(client)
    for suffix in ("/stats", "/logs"):
        assert error_code(await client.get(task_url(SCENARIO, "ghost", suffix))) == (
            400, "DCS.4133",
        )  # fmt: skip
    stopped = await client.post(task_url(SCENARIO, "ghost", "/stop"))
    assert error_code(stopped) == (400, "DCS.4133")


async def test_without_the_option_a_deleted_task_is_gone_at_once(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """With no `deleted_reads_success_for`, the detail is 400 DCS.4133 from the deletion on."""
    clock.advance(10)
    assert error_code(await client.get(task_url(SCENARIO, "gone"))) == (400, "DCS.4133")


async def test_the_admin_view_says_which_deleted_task_still_reads_success(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """/_sandbox/state marks a deleted task whose detail still reads SUCCESS."""
    clock.advance(12)
    tasks = (await client.get("/_sandbox/state")).json()["tasks"]
    assert (tasks["ghost"]["deleted"], tasks["ghost"]["detail_reads_success"]) == (True, True)
    assert (tasks["gone"]["deleted"], tasks["gone"]["detail_reads_success"]) == (True, False)


async def test_our_client_reads_the_ghost_as_success_then_not_found(
    app: SandboxApp, clock: ManualClock
) -> None:
    """Our client sees what a watcher would: SUCCESS in the window, then MigrationTaskNotFound."""
    auth = TokenAuth(SecretStr(SCENARIO.token or ""))
    transport = httpx.ASGITransport(app)
    retry = RetryPolicy(max_attempts=1)
    async with AsyncDcsClient(
        "http://127.0.0.1:8000", SCENARIO.project_id, auth, transport=transport, retry=retry
    ) as dcs:
        clock.advance(11)
        assert (await dcs.show_migration_task("ghost")).status == "SUCCESS"
        page = await dcs.list_migration_tasks()
        assert "ghost" not in [task.task_id for task in page.migration_tasks]
        clock.advance(5)
        with pytest.raises(MigrationTaskNotFound):
            await dcs.show_migration_task("ghost")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"deleted_reads_success_for": 5}, "deleted_after_seconds", id="without-deletion"
        ),
        pytest.param(
            {"deleted_after_seconds": 5, "deleted_reads_success_for": -1},
            "deleted_reads_success_for",
            id="negative",
        ),
    ],
)
def test_the_option_is_checked(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    """The option needs a deletion to follow, and is a duration: else the scenario is refused."""
    task = {"task_id": "t", **fields}
    path = tmp_path / "ghost.json"
    path.write_text(json.dumps({"tasks": [task]}))
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)
