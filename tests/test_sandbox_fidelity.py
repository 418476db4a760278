"""Fidelity: Huawei's own DCS client (`huaweicloudsdkdcs`), unmodified, signs with AK/SK
and parses the sandbox's answers with its own models. If the sandbox drifted from the API
(a path, a field name, a type, the signature), these tests say so."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdcs.v2 import (
    DcsClient,
    ExchangeInstanceIpRequest,
    IpExchangeRequest,
    ListMigrationTaskLogsRequest,
    ListMigrationTaskRequest,
    RollbackExchangeInstanceIpRequest,
    ShowMigrationTaskRequest,
    ShowMigrationTaskStatsRequest,
    StopMigrationTaskRequest,
)

from sandbox import ManualClock, MigrationScript, SandboxHandle, Scenario, TemporaryKey, serve

# The SDK signs with `datetime.utcnow()`, deprecated from Python 3.12: its problem, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")

TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
SCENARIO = Scenario(
    temporary_keys=[
        TemporaryKey(access_key="TEMPKEY0000000000001", secret_key="t" * 40, security_token="sts-1")
    ],
    tasks=[
        MigrationScript.incremental(TASK_ID, task_name="migration1", full_seconds=30),
        MigrationScript.full("5f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f", task_name="migration-full"),
    ],
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxHandle]:
    """The sandbox on 127.0.0.1, out of reach of any proxy set in the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with serve(SCENARIO, clock=clock) as handle:
        yield handle


def build_client(sandbox: SandboxHandle, credentials: BasicCredentials) -> DcsClient:
    config = HttpConfig.get_default_config()
    # Plain http on loopback: nothing to verify, and fail fast rather than hang.
    config.ignore_ssl_verification = True
    config.timeout = (5, 5)
    client: DcsClient = (
        DcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([sandbox.url])
        .build()
    )
    return client


@pytest.fixture
def dcs(sandbox: SandboxHandle) -> Iterator[DcsClient]:
    """The official client, AK/SK-signed, pointed at the sandbox."""
    creds = sandbox.credentials
    client = build_client(
        sandbox, BasicCredentials(creds["access_key"], creds["secret_key"], sandbox.project_id)
    )
    yield client
    client.get_http_client().close()


def test_show_migration_task(dcs: DcsClient, clock: ManualClock, sandbox: SandboxHandle) -> None:
    """show_migration_task: the SDK's model holds the documented fields, plain passwords too."""
    clock.advance(17)
    task = dcs.show_migration_task(ShowMigrationTaskRequest(task_id=TASK_ID))
    assert task.status_code == 200
    assert (task.task_id, task.task_name, task.status) == (TASK_ID, "migration1", "FULLMIGRATING")
    assert (task.migration_type, task.migration_method) == (
        "online_migration", "incremental_migration",
    )  # fmt: skip
    assert task.source_instance.password == "DCStest123"
    assert task.source_instance.port == "6379"
    # The sandbox sends the target port as a number; the SDK's `str` type makes it "6379".
    assert task.target_instance.port == "6379"
    assert task.bandwidth_limit_mb == "100"
    assert re.match(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}$", task.created_at)
    assert task.task_status is None
    assert sandbox.state.requests[-1].auth == "aksk"


def test_list_migration_task(dcs: DcsClient) -> None:
    """list_migration_task (the SDK's name): count and a page of MigrationTaskList models."""
    page = dcs.list_migration_task(ListMigrationTaskRequest(offset=0, limit=1, name="migration"))
    assert page.count == 2
    assert [(task.task_id, task.status) for task in page.migration_tasks] == [(TASK_ID, "RUNNING")]
    filtered = dcs.list_migration_task(ListMigrationTaskRequest(name="migration-full"))
    assert [task.task_name for task in filtered.migration_tasks] == ["migration-full"]


@pytest.mark.parametrize("limit", [pytest.param(0, id="zero"), pytest.param(1001, id="1001")])
def test_list_limit_outside_1_to_1000_is_a_400(dcs: DcsClient, limit: int) -> None:
    """The SDK sends any limit; outside 1-1000 it reads ClientRequestException 400 DCS.4800."""
    with pytest.raises(ClientRequestException) as caught:
        dcs.list_migration_task(ListMigrationTaskRequest(limit=limit))
    assert (caught.value.status_code, caught.value.error_code) == (400, "DCS.4800")
    assert "limit" in caught.value.error_msg


def test_show_migration_task_stats(dcs: DcsClient, clock: ManualClock) -> None:
    """show_migration_task_stats: progress as the SDK types it (strings) and is_migrating."""
    clock.advance(17)
    stats = dcs.show_migration_task_stats(ShowMigrationTaskStatsRequest(task_id=TASK_ID))
    assert stats.full_migration_progress == "50"
    assert stats.is_migrating is True
    assert (stats.source_dbsize, stats.target_dbsize) == ("100000", "50000")


def test_list_migration_task_logs(dcs: DcsClient, clock: ManualClock) -> None:
    """list_migration_task_logs: `log_num` and MigrationLog entries, newest first."""
    clock.advance(40)
    logs = dcs.list_migration_task_logs(
        ListMigrationTaskLogsRequest(task_id=TASK_ID, offset=0, limit=2)
    )
    assert logs.log_num == 3
    assert [log.keyword for log in logs.migration_logs] == [["INCRMIGEATING"], ["FULLMIGRATING"]]
    assert logs.migration_logs[0].log_level == "INFO"


def test_exchange_instance_ip(dcs: DcsClient, clock: ManualClock, sandbox: SandboxHandle) -> None:
    """exchange_instance_ip: 204 to the SDK, then task_status EXCHANGING -> EXCHANGE_SUCCESS."""
    clock.advance(40)
    body = IpExchangeRequest(exchanged_ip=["192.168.1.2", "192.168.1.3"], is_exchange_domain=False)
    answer = dcs.exchange_instance_ip(ExchangeInstanceIpRequest(task_id=TASK_ID, body=body))
    assert answer.status_code == 204
    show = ShowMigrationTaskRequest(task_id=TASK_ID)
    assert dcs.show_migration_task(show).task_status == "EXCHANGING"
    clock.advance(5)
    assert dcs.show_migration_task(show).task_status == "EXCHANGE_SUCCESS"
    assert sandbox.state.exchanges(TASK_ID) == 1
    assert sandbox.state.ip_actions(TASK_ID)[0].exchanged_ip == ("192.168.1.2", "192.168.1.3")
    rollback = dcs.rollback_exchange_instance_ip(RollbackExchangeInstanceIpRequest(task_id=TASK_ID))
    assert rollback.status_code == 204
    clock.advance(5)
    assert dcs.show_migration_task(show).task_status == "ROLLBACK_SUCCESS"


def test_stop_migration_task(dcs: DcsClient, clock: ManualClock) -> None:
    """stop_migration_task: the SDK parses the answer as a task, TERMINATING."""
    clock.advance(10)
    stopped = dcs.stop_migration_task(StopMigrationTaskRequest(task_id=TASK_ID))
    assert (stopped.status_code, stopped.status) == (200, "TERMINATING")


def test_not_found_is_a_client_error_with_code_and_request_id(dcs: DcsClient) -> None:
    """An unknown task: the SDK raises ClientRequestException 400 DCS.4133 with the request id."""
    with pytest.raises(ClientRequestException) as caught:
        dcs.show_migration_task(
            ShowMigrationTaskRequest(task_id="0000000000000000000000000000dead")
        )
    error = caught.value
    assert (error.status_code, error.error_code) == (400, "DCS.4133")
    assert re.match(r"^[0-9a-f]{32}$", error.request_id)


@pytest.mark.parametrize(
    ("access_key", "secret_key", "fragment"),
    [
        pytest.param(None, "x" * 40, "verify aksk signature fail", id="wrong-secret"),
        pytest.param("UNKNOWNKEY0000000000", "x" * 40, "ak not exist", id="unknown-key"),
    ],
)
def test_bad_aksk_is_the_gateways_401(
    sandbox: SandboxHandle, access_key: str | None, secret_key: str, fragment: str
) -> None:
    """The SDK with a bad AK/SK reads the gateway's refusal: 401 APIGW.0301 and a request id."""
    access_key = access_key or sandbox.credentials["access_key"]
    client = build_client(sandbox, BasicCredentials(access_key, secret_key, sandbox.project_id))
    with pytest.raises(ClientRequestException) as caught:
        client.show_migration_task(ShowMigrationTaskRequest(task_id=TASK_ID))
    client.get_http_client().close()
    error = caught.value
    assert (error.status_code, error.error_code) == (401, "APIGW.0301")
    assert error.error_msg.startswith("Incorrect IAM authentication information: ")
    assert fragment in error.error_msg
    assert error.request_id == sandbox.state.requests[-1].request_id


def test_temporary_key_with_security_token(sandbox: SandboxHandle) -> None:
    """The SDK with a temporary key and its security token (X-Security-Token) is accepted."""
    creds = sandbox.credentials
    credentials = BasicCredentials(
        creds["temporary_access_key"], creds["temporary_secret_key"], sandbox.project_id
    ).with_security_token(creds["security_token"])
    client = build_client(sandbox, credentials)
    task = client.show_migration_task(ShowMigrationTaskRequest(task_id=TASK_ID))
    client.get_http_client().close()
    assert task.status == "RUNNING"
    assert sandbox.state.requests[-1].auth == "temporary_aksk"
