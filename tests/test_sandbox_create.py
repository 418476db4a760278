"""The sandbox serves the calls that create, configure, stop, delete and restart tasks as the
API reference describes them: a created online task waits in RUNNING until configured, then
lives the usual life; bad bodies are 400s in DCS's shape naming the field; stops, deletions
and restarts change what every later read says. In-process, on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import TokenAuth
from blocks.client import AsyncDcsClient
from blocks.retry import RetryPolicy
from sandbox import ManualClock, MigrationScript, SandboxApp, Scenario, create_app
from sandbox.scenario import DEFAULT_TOKEN, NewTaskScript

RUNNING_ID = "a276c1ffa0a54c2597fc824b917db317"
DONE_ID = "5f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f"
IMPORT_ID = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
SOURCE_ID = "86157b69-8a62-47f9-8c55-fa6ddc8927e1"
TARGET_ID = "86157b69-8a62-47f9-8c55-fa6ddc8927ee"
SCENARIO = Scenario(
    tasks=[
        MigrationScript.incremental(RUNNING_ID, task_name="migration1"),
        MigrationScript.full(DONE_ID, task_name="migration-full", full_seconds=5),
        MigrationScript.backup_import(IMPORT_ID, task_name="import1", import_seconds=5),
    ],
    new_tasks=NewTaskScript(pending_seconds=1, full_seconds=10, import_seconds=4),
)
PROJECT = f"/v2/{SCENARIO.project_id}"
NETWORK = {"vpc_id": "vpc-1", "subnet_id": "subnet-1", "security_group_id": "sg-1"}
CONFIGURATION: dict[str, Any] = {
    "migration_method": "incremental_migration",
    "resume_mode": "manual",
    "bandwidth_limit_mb": "50",
    "source_instance": {"addrs": "10.0.0.7:6379", "password": "src-canary-51c2"},
    "target_instance": {"id": TARGET_ID, "password": "dst-canary-08ad"},
}
IMPORT: dict[str, Any] = {
    "task_name": "import-new",
    "migration_type": "backupfile_import",
    "migration_method": "full_amount_migration",
    "backup_files": {
        "file_source": "self_build_obs",
        "bucket_name": "backups",
        "files": [{"file_name": "appendonly.aof"}],
    },
    "target_instance": {"id": TARGET_ID},
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> SandboxApp:
    return create_app(SCENARIO, clock)


@pytest.fixture
async def http(app: SandboxApp) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the sandbox, with its token: for bodies no well-behaved client sends."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://sandbox",
        headers={"X-Auth-Token": DEFAULT_TOKEN},
    ) as client:
        yield client


async def create_online(http: httpx.AsyncClient, name: str = "migration-new") -> str:
    answer = await http.post(f"{PROJECT}/migration/instance", json={"name": name, **NETWORK})
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["instance_id"]
    return task_id


async def status(http: httpx.AsyncClient, task_id: str) -> str:
    answer = await http.get(f"{PROJECT}/migration-task/{task_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


async def test_a_created_task_waits_in_running_until_configured(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """RUNNING for as long as nobody configures it; then FULLMIGRATING, then INCRMIGEATING."""
    task_id = await create_online(http)
    clock.advance(600)
    detail = (await http.get(f"{PROJECT}/migration-task/{task_id}")).json()
    assert (detail["status"], detail["task_name"], detail["tenant_vpc_id"]) == (
        "RUNNING", "migration-new", "vpc-1",
    )  # fmt: skip
    assert "migration_method" not in detail
    listed = (await http.get(f"{PROJECT}/migration-tasks", params={"name": "new"})).json()
    assert [(t["task_id"], t["target_instance_addrs"]) for t in listed["migration_tasks"]] == [
        (task_id, "")
    ]
    answer = await http.post(f"{PROJECT}/migration/{task_id}/task", json=CONFIGURATION)
    assert answer.json() == {"id": task_id, "name": "migration-new", "status": "RUNNING"}
    clock.advance(2)
    detail = (await http.get(f"{PROJECT}/migration-task/{task_id}")).json()
    assert (detail["status"], detail["resume_mode"], detail["bandwidth_limit_mb"]) == (
        "FULLMIGRATING", "manual", "50",
    )  # fmt: skip
    assert detail["source_instance"]["addrs"] == "10.0.0.7:6379"
    assert detail["target_instance"]["id"] == TARGET_ID
    clock.advance(10)
    assert await status(http, task_id) == "INCRMIGEATING"


async def test_a_backup_import_is_migrating_then_succeeds(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """create_migration_task answers id, name, MIGRATING; the import succeeds after its time."""
    clock.advance(100)
    answer = (await http.post(f"{PROJECT}/migration-task", json=IMPORT)).json()
    assert (answer["name"], answer["status"]) == ("import-new", "MIGRATING")
    detail = (await http.get(f"{PROJECT}/migration-task/{answer['id']}")).json()
    assert detail["backup_files"]["files"][0]["file_name"] == "appendonly.aof"
    assert "source_instance" not in detail
    clock.advance(4)
    assert await status(http, answer["id"]) == "SUCCESS"


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        pytest.param("/migration/instance", {**NETWORK}, "DCS.4800", "name", id="no-name"),
        pytest.param(
            "/migration/instance",
            {"name": "m", "vpc_id": "v", "subnet_id": "s"},
            "DCS.4800",
            "security_group_id",
            id="no-security-group",
        ),
        pytest.param("/migration/instance", [1], "DCS.4000", "JSON object", id="not-an-object"),
        pytest.param(
            "/migration/{new}/task",
            {**CONFIGURATION, "resume_mode": "sometimes"},
            "DCS.4800",
            "resume_mode",
            id="bad-resume-mode",
        ),
        pytest.param(
            "/migration/{new}/task",
            {k: v for k, v in CONFIGURATION.items() if k != "migration_method"},
            "DCS.4800",
            "migration_method",
            id="no-method",
        ),
        pytest.param(
            "/migration/{new}/task",
            {**CONFIGURATION, "bandwidth_limit_mb": "0"},
            "DCS.4800",
            "bandwidth_limit_mb",
            id="zero-bandwidth",
        ),
        pytest.param(
            "/migration/{new}/task",
            {**CONFIGURATION, "target_instance": {"id": "no-such-instance"}},
            "DCS.4800",
            "target_instance.id",
            id="unknown-instance",
        ),
        pytest.param(
            "/migration/{new}/task",
            {**CONFIGURATION, "source_instance": {"id": SOURCE_ID, "addrs": "10.0.0.7:6379"}},
            "DCS.4800",
            "source_instance",
            id="id-and-address",
        ),
        pytest.param(
            "/migration/{new}/task",
            {k: v for k, v in CONFIGURATION.items() if k != "target_instance"},
            "DCS.4800",
            "target_instance",
            id="no-target",
        ),
        pytest.param(
            "/migration-task",
            {k: v for k, v in IMPORT.items() if k != "backup_files"},
            "DCS.4800",
            "backup_files",
            id="import-without-files",
        ),
        pytest.param(
            "/migration-task",
            {**IMPORT, "backup_files": {"file_source": "ftp"}},
            "DCS.4800",
            "file_source",
            id="import-from-ftp",
        ),
        pytest.param(
            "/migration-task",
            {**IMPORT, "target_instance": {"addrs": "10.0.0.7:6379"}},
            "DCS.4800",
            "target_instance.id",
            id="import-into-an-address",
        ),
        pytest.param(
            "/migration-tasks/batch-restart",
            {"migration_tasks": [f"t{n}" for n in range(51)]},
            "DCS.4800",
            "at most 50",
            id="restart-51",
        ),
        pytest.param(
            "/migration-task/batch-stop",
            {"migration_tasks": "t1"},
            "DCS.4800",
            "migration_tasks",
            id="stop-a-lone-id",
        ),
    ],
)
async def test_a_bad_body_is_a_400_in_dcs_shape_naming_the_field(
    http: httpx.AsyncClient, app: SandboxApp, path: str, body: object, code: str, field: str
) -> None:
    """400, DCS's error body with the code and the field named; no task created or changed."""
    new_id = await create_online(http)
    before = app.sandbox_state.as_dict()["tasks"]
    answer = await http.post(PROJECT + path.format(new=new_id), json=body)
    assert answer.status_code == 400
    error = answer.json()
    assert (error["error_code"], error["error_ext_msg"]) == (code, None)
    assert field in error["error_msg"]
    assert "canary" not in error["error_msg"]
    assert app.sandbox_state.as_dict()["tasks"] == before


async def test_configuring_twice_or_an_unknown_task_is_refused(http: httpx.AsyncClient) -> None:
    """A second configuration is 400 DCS.4000 (already configured); an unknown task DCS.4133."""
    task_id = await create_online(http)
    first = await http.post(f"{PROJECT}/migration/{task_id}/task", json=CONFIGURATION)
    again = await http.post(f"{PROJECT}/migration/{task_id}/task", json=CONFIGURATION)
    unknown = await http.post(f"{PROJECT}/migration/{'0' * 32}/task", json=CONFIGURATION)
    assert first.status_code == 200
    assert (again.status_code, again.json()["error_code"]) == (400, "DCS.4000")
    assert "already configured" in again.json()["error_msg"]
    assert (unknown.status_code, unknown.json()["error_code"]) == (400, "DCS.4133")


async def test_sync_stop_terminates_at_once(
    http: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """sync-stop: 204 and TERMINATED at once (no TERMINATING); a second one is refused."""
    clock.advance(10)
    stop = await http.post(f"{PROJECT}/migration-task/{RUNNING_ID}/sync-stop")
    assert (stop.status_code, stop.content) == (204, b"")
    assert await status(http, RUNNING_ID) == "TERMINATED"
    again = await http.post(f"{PROJECT}/migration-task/{RUNNING_ID}/sync-stop")
    assert (again.status_code, again.json()["error_code"]) == (400, "DCS.4000")
    assert app.sandbox_state.count("stop_migration_task_sync", task_id=RUNNING_ID) == 2


async def test_delete_needs_a_stopped_task_and_then_it_is_gone(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Deleting a migrating task is refused (stop it first), a finished one goes: every read
    says DCS.4133 and the list leaves it out."""
    clock.advance(10)
    delete = f"{PROJECT}/migration-tasks/delete"
    refused = await http.request("DELETE", delete, json={"task_id_list": [DONE_ID, RUNNING_ID]})
    assert (refused.status_code, refused.json()["error_code"]) == (400, "DCS.4000")
    assert "stop it before deleting it" in refused.json()["error_msg"]
    assert await status(http, DONE_ID) == "SUCCESS"
    deleted = await http.request("DELETE", delete, json={"task_id_list": [DONE_ID]})
    assert deleted.json() == {"task_id_list": [DONE_ID]}
    gone = await http.get(f"{PROJECT}/migration-task/{DONE_ID}")
    assert (gone.status_code, gone.json()["error_code"]) == (400, "DCS.4133")
    listed = (await http.get(f"{PROJECT}/migration-tasks")).json()
    assert DONE_ID not in [task["task_id"] for task in listed["migration_tasks"]]
    unknown = await http.request("DELETE", delete, json={"task_id_list": [DONE_ID]})
    assert (unknown.status_code, unknown.json()["error_code"]) == (400, "DCS.4133")


async def test_batch_stop_and_restart_answer_task_by_task(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Batch stop stops what runs and says why it did not stop the rest; a restart runs a
    stopped online task again and refuses a running one and an import."""
    clock.advance(10)
    stopped = await http.post(
        f"{PROJECT}/migration-task/batch-stop",
        json={"migration_tasks": [RUNNING_ID, DONE_ID, "0" * 32]},
    )
    results = [
        (r["task_id"], r["result"], r["error_code"]) for r in stopped.json()["migration_tasks"]
    ]
    assert results == [
        (RUNNING_ID, "success", None),
        (DONE_ID, "failed", "DCS.4000"),
        ("0" * 32, "failed", "DCS.4133"),
    ]
    clock.advance(3)
    assert await status(http, RUNNING_ID) == "TERMINATED"
    created = await create_online(http)
    restarted = await http.post(
        f"{PROJECT}/migration-tasks/batch-restart",
        json={"migration_tasks": [RUNNING_ID, created, IMPORT_ID]},
    )
    outcome = {r["task_id"]: r["result"] for r in restarted.json()["migration_tasks"]}
    assert outcome == {RUNNING_ID: "success", created: "failed", IMPORT_ID: "failed"}
    assert await status(http, RUNNING_ID) == "RUNNING"
    clock.advance(1)
    assert await status(http, RUNNING_ID) == "FULLMIGRATING"
    clock.advance(10)
    assert await status(http, RUNNING_ID) == "INCRMIGEATING"


async def test_reset_forgets_created_tasks_and_state_shows_no_password(
    http: httpx.AsyncClient, app: SandboxApp
) -> None:
    """The admin view lists created tasks without their passwords; a reset forgets them."""
    task_id = await create_online(http)
    await http.post(f"{PROJECT}/migration/{task_id}/task", json=CONFIGURATION)
    view = (await http.get("/_sandbox/state")).json()
    assert view["tasks"][task_id]["task_name"] == "migration-new"
    assert "canary" not in str(view)
    await http.post("/_sandbox/reset")
    assert (await http.get(f"{PROJECT}/migration-task/{task_id}")).status_code == 400
    assert task_id not in (await http.get("/_sandbox/state")).json()["tasks"]


async def test_our_client_creates_configures_and_deletes_through_the_sandbox(
    app: SandboxApp, clock: ManualClock
) -> None:
    """End to end with AsyncDcsClient: create, configure (a full migration), watch it
    succeed, delete it."""
    async with AsyncDcsClient(
        "http://127.0.0.1:8000",
        SCENARIO.project_id,
        TokenAuth(SecretStr(DEFAULT_TOKEN)),
        transport=httpx.ASGITransport(app),
        retry=RetryPolicy(max_attempts=1),
    ) as dcs:
        created = await dcs.create_online_migration_task("migration-e2e", **NETWORK)
        assert created.task_id is not None
        accepted = await dcs.set_online_migration_task(
            created.task_id,
            migration_method="full",
            resume_mode="auto",
            source_instance={"id": SOURCE_ID, "password": "src-canary-51c2"},
            target_instance={"id": TARGET_ID},
        )
        assert (accepted.name, accepted.status.value) == ("migration-e2e", "RUNNING")
        clock.advance(12)
        task = await dcs.show_migration_task(created.task_id)
        assert (task.status.value, task.migration_method) == ("SUCCESS", "full_amount_migration")
        assert task.source_instance is not None
        assert task.source_instance.id == SOURCE_ID
        deleted = await dcs.delete_migration_task([created.task_id])
        assert deleted.task_id_list == [created.task_id]
