"""The official SDK (`huaweicloudsdkdcs`, unmodified) is the oracle for the calls that create,
configure, stop, delete and restart tasks: our client sends the same method, path and JSON
body as the SDK does for the same intent, and the SDK runs every one of them against the
sandbox and reads the answers with its own models."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdcs.v2 import (
    BackupFilesBody,
    BatchRestartOnlineMigrationTasksBody,
    BatchRestartOnlineMigrationTasksRequest,
    BatchStopMigrationTasksBody,
    BatchStopMigrationTasksRequest,
    ConfigMigrationInstanceBody,
    CreateMigrationTaskBody,
    CreateMigrationTaskRequest,
    CreateOnlineMigrationTaskBody,
    CreateOnlineMigrationTaskRequest,
    DcsClient,
    DeleteMigrateTaskRequest,
    DeleteMigrationTaskRequest,
    Files,
    SetOnlineMigrationTaskBody,
    SetOnlineMigrationTaskRequest,
    ShowMigrationTaskRequest,
    StopMigrationTaskSyncRequest,
    TargetInstanceBody,
)
from pydantic import SecretStr

from blocks.auth import TokenAuth
from blocks.client import DcsClient as OurClient
from blocks.retry import RetryPolicy
from sandbox import ManualClock, MigrationScript, SandboxHandle, Scenario, serve
from tests.conftest import StubDcs

# The SDK signs with `datetime.utcnow()`, deprecated from Python 3.12: its problem, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")

PROJECT_ID = "0605767f8d00d5a52f4bc01f1b2d5ac5"
TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
OTHER_ID = "5f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f"
SOURCE_ID = "86157b69-8a62-47f9-8c55-fa6ddc8927e1"
TARGET_ID = "86157b69-8a62-47f9-8c55-fa6ddc8927ee"
NETWORK = {
    "vpc_id": "5b3a9c1e-6d64-4b0c-9d3c-0d6f6a3c7e11",
    "subnet_id": "1c9e2f3a-8b7d-4e6f-a5c4-3b2a1d0e9f88",
    "security_group_id": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
}

Sent = tuple[str, str, Any]


def sdk_client(endpoint: str, access_key: str = "AK", secret_key: str = "S" * 40) -> DcsClient:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (5, 5)
    client: DcsClient = (
        DcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(access_key, secret_key, PROJECT_ID))
        .with_endpoints([endpoint])
        .build()
    )
    return client


def sdk_sent(stub: StubDcs, send: Callable[[DcsClient], object]) -> Sent:
    """What the SDK sends for `send`: method, path, JSON body (None when there is none)."""
    stub.requests.clear()
    stub.handler = lambda *_: (200, {}, b"{}")
    client = sdk_client(stub.url)
    send(client)
    client.get_http_client().close()
    ((method, path, _, body),) = stub.requests
    return method, path, json.loads(body) if body else None


def our_sent(operation: str, *args: Any, **kwargs: Any) -> Sent:
    """What our client sends for the same call."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with OurClient(
        "https://dcs.example.test",
        PROJECT_ID,
        TokenAuth(SecretStr("t")),
        transport=httpx.MockTransport(answer),
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        getattr(client, operation)(*args, **kwargs)
    (request,) = seen
    return (
        request.method,
        request.url.path,
        json.loads(request.content) if request.content else None,
    )


def _set_body(**source: Any) -> SetOnlineMigrationTaskBody:
    return SetOnlineMigrationTaskBody(
        migration_method="incremental_migration",
        resume_mode="auto",
        bandwidth_limit_mb="100",
        source_instance=ConfigMigrationInstanceBody(**source),
        target_instance=ConfigMigrationInstanceBody(id=TARGET_ID, password="DCStarget456"),
    )


# (our operation, its arguments, the SDK call that means the same)
SAME_INTENT = [
    pytest.param(
        "create_online_migration_task",
        ("migration-a",),
        {**NETWORK, "description": "from the data centre"},
        lambda sdk: sdk.create_online_migration_task(
            CreateOnlineMigrationTaskRequest(
                body=CreateOnlineMigrationTaskBody(
                    name="migration-a", description="from the data centre", **NETWORK
                )
            )
        ),
        id="create-online",
    ),
    pytest.param(
        "set_online_migration_task",
        (TASK_ID,),
        {
            "migration_method": "incremental",
            "resume_mode": "auto",
            "bandwidth_limit_mb": 100,
            "source_instance": {"addrs": "192.168.1.2:6379", "password": "DCStest123"},
            "target_instance": {"id": TARGET_ID, "password": "DCStarget456"},
        },
        lambda sdk: sdk.set_online_migration_task(
            SetOnlineMigrationTaskRequest(
                task_id=TASK_ID, body=_set_body(addrs="192.168.1.2:6379", password="DCStest123")
            )
        ),
        id="set-online-by-address",
    ),
    pytest.param(
        "set_online_migration_task",
        (TASK_ID,),
        {
            "migration_method": "full",
            "resume_mode": "manual",
            "source_instance": {"id": SOURCE_ID},
            "target_instance": {"id": TARGET_ID},
        },
        lambda sdk: sdk.set_online_migration_task(
            SetOnlineMigrationTaskRequest(
                task_id=TASK_ID,
                body=SetOnlineMigrationTaskBody(
                    migration_method="full_amount_migration",
                    resume_mode="manual",
                    source_instance=ConfigMigrationInstanceBody(id=SOURCE_ID),
                    target_instance=ConfigMigrationInstanceBody(id=TARGET_ID),
                ),
            )
        ),
        id="set-online-by-id",
    ),
    pytest.param(
        "create_migration_task",
        ("import-a",),
        {
            "bucket_name": "backups",
            "files": [{"file_name": "appendonly.aof", "size": "0.09KB"}],
            "target_instance": {"id": TARGET_ID, "password": "DCStarget456"},
        },
        lambda sdk: sdk.create_migration_task(
            CreateMigrationTaskRequest(
                body=CreateMigrationTaskBody(
                    task_name="import-a",
                    migration_type="backupfile_import",
                    migration_method="full_amount_migration",
                    backup_files=BackupFilesBody(
                        file_source="self_build_obs",
                        bucket_name="backups",
                        files=[Files(file_name="appendonly.aof", size="0.09KB")],
                    ),
                    target_instance=TargetInstanceBody(id=TARGET_ID, password="DCStarget456"),
                )
            )
        ),
        id="create-import-from-obs",
    ),
    pytest.param(
        "create_migration_task",
        ("import-b",),
        {"backup_id": "f5d1e4c3", "target_instance": {"id": TARGET_ID}, "description": "d"},
        lambda sdk: sdk.create_migration_task(
            CreateMigrationTaskRequest(
                body=CreateMigrationTaskBody(
                    task_name="import-b",
                    description="d",
                    migration_type="backupfile_import",
                    migration_method="full_amount_migration",
                    backup_files=BackupFilesBody(file_source="backup_record", backup_id="f5d1e4c3"),
                    target_instance=TargetInstanceBody(id=TARGET_ID),
                )
            )
        ),
        id="create-import-from-backup-record",
    ),
    pytest.param(
        "stop_migration_task_sync",
        (TASK_ID,),
        {},
        lambda sdk: sdk.stop_migration_task_sync(StopMigrationTaskSyncRequest(task_id=TASK_ID)),
        id="sync-stop",
    ),
    pytest.param(
        "delete_migration_task",
        ([TASK_ID, OTHER_ID],),
        {},
        lambda sdk: sdk.delete_migration_task(
            DeleteMigrationTaskRequest(
                body=DeleteMigrateTaskRequest(task_id_list=[TASK_ID, OTHER_ID])
            )
        ),
        id="delete",
    ),
    pytest.param(
        "batch_stop_migration_tasks",
        ([TASK_ID, OTHER_ID],),
        {},
        lambda sdk: sdk.batch_stop_migration_tasks(
            BatchStopMigrationTasksRequest(
                body=BatchStopMigrationTasksBody(migration_tasks=[TASK_ID, OTHER_ID])
            )
        ),
        id="batch-stop",
    ),
    pytest.param(
        "batch_restart_online_migration_tasks",
        ([TASK_ID],),
        {},
        lambda sdk: sdk.batch_restart_online_migration_tasks(
            BatchRestartOnlineMigrationTasksRequest(
                body=BatchRestartOnlineMigrationTasksBody(migration_tasks=[TASK_ID])
            )
        ),
        id="batch-restart",
    ),
]


@pytest.mark.parametrize(("operation", "args", "kwargs", "sdk_call"), SAME_INTENT)
def test_our_request_is_the_sdks(
    stub_dcs: StubDcs,
    operation: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    sdk_call: Callable[[DcsClient], object],
) -> None:
    """For the same intent, our client and the SDK send the same method, path and JSON body."""
    assert our_sent(operation, *args, **kwargs) == sdk_sent(stub_dcs, sdk_call)


# --- the SDK against the sandbox ----------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxHandle]:
    """The sandbox on 127.0.0.1, out of reach of any proxy set in the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    scenario = Scenario(
        tasks=[
            MigrationScript.incremental(TASK_ID, task_name="migration1"),
            MigrationScript.full(OTHER_ID, task_name="migration-full", full_seconds=5),
        ]
    )
    with serve(scenario, clock=clock) as handle:
        yield handle


@pytest.fixture
def sdk(sandbox: SandboxHandle) -> Iterator[DcsClient]:
    """The official client, AK/SK-signed, pointed at the sandbox."""
    creds = sandbox.credentials
    client = sdk_client(sandbox.url, creds["access_key"], creds["secret_key"])
    yield client
    client.get_http_client().close()


def test_sdk_creates_and_configures_an_online_task(sdk: DcsClient, clock: ManualClock) -> None:
    """Created: RUNNING (pending configuration); configured: FULLMIGRATING, then INCRMIGEATING."""
    created = sdk.create_online_migration_task(
        CreateOnlineMigrationTaskRequest(
            body=CreateOnlineMigrationTaskBody(name="migration-new", **NETWORK)
        )
    )
    task_id = created.instance_id
    show = ShowMigrationTaskRequest(task_id=task_id)
    pending = sdk.show_migration_task(show)
    assert (pending.task_name, pending.status, pending.tenant_vpc_id) == (
        "migration-new", "RUNNING", NETWORK["vpc_id"],
    )  # fmt: skip
    clock.advance(60)
    assert sdk.show_migration_task(show).status == "RUNNING"
    body = _set_body(addrs="10.0.0.7:6379", password="src-pass")
    configured = sdk.set_online_migration_task(
        SetOnlineMigrationTaskRequest(task_id=task_id, body=body)
    )
    assert (configured.id, configured.name, configured.status) == (
        task_id, "migration-new", "RUNNING",
    )  # fmt: skip
    clock.advance(3)
    task = sdk.show_migration_task(show)
    assert (task.status, task.migration_method, task.bandwidth_limit_mb) == (
        "FULLMIGRATING", "incremental_migration", "100",
    )  # fmt: skip
    assert (task.source_instance.addrs, task.target_instance.id) == ("10.0.0.7:6379", TARGET_ID)
    clock.advance(30)
    assert sdk.show_migration_task(show).status == "INCRMIGEATING"


def test_sdk_creates_a_backup_import(sdk: DcsClient, clock: ManualClock) -> None:
    """create_migration_task: the SDK reads id, name and status; the import then succeeds."""
    body = CreateMigrationTaskBody(
        task_name="import-a",
        migration_type="backupfile_import",
        migration_method="full_amount_migration",
        backup_files=BackupFilesBody(
            file_source="self_build_obs",
            bucket_name="backups",
            files=[Files(file_name="appendonly.aof", size="1024")],
        ),
        target_instance=TargetInstanceBody(id=TARGET_ID),
    )
    created = sdk.create_migration_task(CreateMigrationTaskRequest(body=body))
    assert (created.name, created.status) == ("import-a", "MIGRATING")
    clock.advance(31)
    task = sdk.show_migration_task(ShowMigrationTaskRequest(task_id=created.id))
    assert (task.status, task.backup_files.bucket_name) == ("SUCCESS", "backups")


def test_sdk_sync_stops_deletes_and_restarts(
    sdk: DcsClient, clock: ManualClock, sandbox: SandboxHandle
) -> None:
    """sync-stop is 204 and TERMINATED at once; a restart runs it again; batch stop, then
    delete: the task is gone (400 DCS.4133)."""
    clock.advance(10)
    stopped = sdk.stop_migration_task_sync(StopMigrationTaskSyncRequest(task_id=TASK_ID))
    assert stopped.status_code == 204
    show = ShowMigrationTaskRequest(task_id=TASK_ID)
    assert sdk.show_migration_task(show).status == "TERMINATED"
    restart = BatchRestartOnlineMigrationTasksBody(migration_tasks=[TASK_ID, "0" * 32])
    restarted = sdk.batch_restart_online_migration_tasks(
        BatchRestartOnlineMigrationTasksRequest(body=restart)
    )
    assert [(r.task_id, r.result, r.error_code) for r in restarted.migration_tasks] == [
        (TASK_ID, "success", None), ("0" * 32, "failed", "DCS.4133"),
    ]  # fmt: skip
    clock.advance(3)
    assert sdk.show_migration_task(show).status == "FULLMIGRATING"
    stop = BatchStopMigrationTasksBody(migration_tasks=[TASK_ID])
    batch = sdk.batch_stop_migration_tasks(BatchStopMigrationTasksRequest(body=stop))
    assert [(r.task_id, r.result) for r in batch.migration_tasks] == [(TASK_ID, "success")]
    clock.advance(5)
    delete = DeleteMigrateTaskRequest(task_id_list=[TASK_ID])
    deleted = sdk.delete_migration_task(DeleteMigrationTaskRequest(body=delete))
    assert deleted.task_id_list == [TASK_ID]
    with pytest.raises(ClientRequestException) as caught:
        sdk.show_migration_task(show)
    assert (caught.value.status_code, caught.value.error_code) == (400, "DCS.4133")
    assert sandbox.state.count("delete_migration_task", status=200) == 1


def test_sdk_reads_a_bad_body_as_a_400_naming_the_field(sdk: DcsClient) -> None:
    """A configuration with a method DCS does not know: 400 DCS.4800 naming migration_method."""
    body = _set_body(id=SOURCE_ID)
    body.migration_method = "fast_migration"
    with pytest.raises(ClientRequestException) as caught:
        sdk.set_online_migration_task(SetOnlineMigrationTaskRequest(task_id=TASK_ID, body=body))
    assert (caught.value.status_code, caught.value.error_code) == (400, "DCS.4800")
    assert "migration_method" in caught.value.error_msg
