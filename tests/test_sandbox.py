"""The sandbox's DCS routes: documented bodies, the scripted life over injected time, the
IP exchange and its counting, and the admin view. In-process: no socket, no waiting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox import ManualClock, MigrationScript, SandboxApp, Scenario, create_app
from tests.test_sandbox_support import NOW, asgi_client, task_url, token_headers

SCENARIO = Scenario(
    tasks=[
        MigrationScript.incremental("inc", task_name="orders-cache", full_seconds=30),
        MigrationScript.full("full", task_name="sessions", full_seconds=20),
        MigrationScript.failing("fail", task_name="ORDERS-archive", fail_after_seconds=10),
        MigrationScript.deleted("gone", task_name="gone", deleted_after_seconds=10),
        MigrationScript.unknown_status("odd", task_name="odd", after_seconds=5),
        MigrationScript.backup_import("import", task_name="import", import_seconds=20),
    ]
)
DCS_DATE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}$")
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def clock() -> ManualClock:
    """Scenario time, moved by hand."""
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


async def show(client: httpx.AsyncClient, task_id: str, suffix: str = "") -> httpx.Response:
    return await client.get(task_url(SCENARIO, task_id, suffix))


def assert_dcs_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error_code", "error_msg", "error_ext_msg"}
    assert body["error_code"] == code
    assert body["error_ext_msg"] is None
    return body


async def test_show_serves_the_documented_body(client: httpx.AsyncClient) -> None:
    """GET migration-task has the seed's fields and quirks: plain passwords, string numbers."""
    response = await show(client, "inc")
    assert response.status_code == 200
    assert REQUEST_ID.match(response.headers["x-request-id"])
    body = response.json()
    assert body["task_id"] == "inc"
    assert body["task_name"] == "orders-cache"
    assert body["status"] == "RUNNING"
    assert (body["migration_type"], body["migration_method"]) == (
        "online_migration", "incremental_migration",
    )  # fmt: skip
    assert body["source_instance"]["password"] == "DCStest123"
    assert body["target_instance"]["password"] == "DCStarget456"
    assert body["source_instance"]["port"] == "6379"
    assert body["target_instance"]["port"] == 6379
    assert body["bandwidth_limit_mb"] == "100"
    assert DCS_DATE.match(body["created_at"])
    assert DCS_DATE.match(body["updated_at"])
    assert body["sandbox_note"]
    assert "task_status" not in body


@pytest.mark.parametrize(
    ("seconds", "status", "progress"),
    [
        pytest.param(0, "RUNNING", "0", id="start"),
        pytest.param(1.9, "RUNNING", "0", id="still-pending"),
        pytest.param(2, "FULLMIGRATING", "0", id="full-starts"),
        pytest.param(17, "FULLMIGRATING", "50", id="halfway"),
        pytest.param(24.5, "FULLMIGRATING", "75", id="three-quarters"),
        pytest.param(32, "INCRMIGEATING", "100", id="incremental"),
        pytest.param(86400, "INCRMIGEATING", "100", id="for-ever"),
    ],
)
async def test_status_and_progress_follow_the_script(
    client: httpx.AsyncClient, clock: ManualClock, seconds: float, status: str, progress: str
) -> None:
    """RUNNING 2 s -> FULLMIGRATING 30 s (progress linear) -> INCRMIGEATING, on injected time."""
    clock.advance(seconds)
    assert (await show(client, "inc")).json()["status"] == status
    stats = (await show(client, "inc", "/stats")).json()
    assert stats["full_migration_progress"] == progress


@pytest.mark.parametrize(
    ("task_id", "seconds", "status"),
    [
        pytest.param("full", 22, "SUCCESS", id="full-succeeds"),
        pytest.param("fail", 6, "FULLMIGRATING", id="failing-runs"),
        pytest.param("fail", 12, "MIGRATION_FAILED", id="failing-fails"),
        pytest.param("odd", 5, "PAUSED_FOR_UPGRADE", id="unknown-status"),
        pytest.param("import", 0, "MIGRATING", id="import-runs"),
        pytest.param("import", 20, "SUCCESS", id="import-succeeds"),
    ],
)
async def test_each_script_reaches_its_status(
    client: httpx.AsyncClient, clock: ManualClock, task_id: str, seconds: float, status: str
) -> None:
    """Full, failing, unknown-status and backup-import scripts report what they script."""
    clock.advance(seconds)
    assert (await show(client, task_id)).json()["status"] == status


async def test_stats_body_as_the_sdk_declares(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Stats carry the SDK's seven fields, all strings (key counts too) but `is_migrating`."""
    clock.advance(17)
    body = (await show(client, "inc", "/stats")).json()
    assert set(body) == {
        "full_migration_progress", "offset", "source_dbsize", "target_dbsize",
        "target_input_kbps", "target_ops", "is_migrating",
    }  # fmt: skip
    assert body["is_migrating"] is True
    assert body["source_dbsize"] == "100000"
    assert body["target_dbsize"] == "50000"
    assert all(isinstance(value, str) for key, value in body.items() if key != "is_migrating")


async def test_backup_import_has_backup_files_and_no_source(client: httpx.AsyncClient) -> None:
    """A backup-file import describes its files and has no source instance."""
    body = (await show(client, "import")).json()
    assert (body["migration_type"], body["migration_method"]) == (
        "backupfile_import", "full_amount_migration",
    )  # fmt: skip
    assert "source_instance" not in body
    assert body["backup_files"]["files"][0]["file_name"] == "appendonly.aof"


@pytest.mark.parametrize(
    ("params", "count", "names"),
    [
        pytest.param({}, 6, None, id="all"),
        pytest.param({"name": "orders"}, 2, ["orders-cache", "ORDERS-archive"], id="substring"),
        pytest.param({"name": "ORDERS-C"}, 1, ["orders-cache"], id="case-insensitive"),
        pytest.param({"name": "nothing"}, 0, [], id="no-match"),
        pytest.param({"offset": 1, "limit": 2}, 6, ["sessions", "ORDERS-archive"], id="page"),
        pytest.param({"offset": 6}, 6, [], id="past-the-end"),
    ],
)
async def test_list_filters_by_name_and_pages(
    client: httpx.AsyncClient, params: dict[str, Any], count: int, names: list[str] | None
) -> None:
    """GET migration-tasks: `count` is every match, `migration_tasks` one page of them."""
    response = await client.get(f"/v2/{SCENARIO.project_id}/migration-tasks", params=params)
    body = response.json()
    assert body["count"] == count
    if names is not None:
        assert [task["task_name"] for task in body["migration_tasks"]] == names
    for task in body["migration_tasks"]:
        assert {"task_id", "status", "data_source", "target_instance_addrs"} <= set(task)
        assert "task_status" not in task


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("limit=ten", id="not-a-number"),
        pytest.param("offset=-1", id="negative"),
        pytest.param("limit=0", id="limit-zero"),
        pytest.param("limit=1001", id="limit-too-large"),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/migration-tasks", id="list"),
        pytest.param("/migration-task/inc/logs", id="logs"),
    ],
)
async def test_bad_paging_is_a_400(client: httpx.AsyncClient, query: str, path: str) -> None:
    """Offset below 0 or limit outside 1-1000 on a list is 400 DCS.4800 ("Invalid {0}")."""
    response = await client.get(f"/v2/{SCENARIO.project_id}{path}?{query}")
    body = assert_dcs_error(response, 400, "DCS.4800")
    assert query.split("=")[0] in body["error_msg"]


async def test_limit_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    """`limit` 1 and 1000, the ends of the documented range, are accepted."""
    for limit in (1, 1000):
        response = await client.get(f"/v2/{SCENARIO.project_id}/migration-tasks?limit={limit}")
        assert response.status_code == 200, response.text


async def test_deleted_task_disappears(client: httpx.AsyncClient, clock: ManualClock) -> None:
    """After `deleted_after_seconds` a task answers 400 DCS.4133 and leaves the list."""
    assert (await show(client, "gone")).status_code == 200
    clock.advance(10)
    for suffix in ("", "/stats", "/logs"):
        assert_dcs_error(await show(client, "gone", suffix), 400, "DCS.4133")
    listed = (await client.get(f"/v2/{SCENARIO.project_id}/migration-tasks")).json()
    assert "gone" not in [task["task_id"] for task in listed["migration_tasks"]]


async def test_unknown_task_is_dcs_4133(client: httpx.AsyncClient) -> None:
    """A task id the scenario does not have is 400 DCS.4133 (as DCS sends it), with a request id."""
    response = await show(client, "0000000000000000000000000000dead")
    body = assert_dcs_error(response, 400, "DCS.4133")
    assert "0000000000000000000000000000dead" in body["error_msg"]
    assert REQUEST_ID.match(response.headers["x-request-id"])


async def test_logs_list_transitions_newest_first(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Logs: `log_num` counts the matches, entries have the SDK's fields, newest first."""
    clock.advance(40)
    body = (await show(client, "inc", "/logs")).json()
    assert body["log_num"] == 3
    assert [entry["keyword"] for entry in body["migration_logs"]] == [
        ["INCRMIGEATING"], ["FULLMIGRATING"], ["RUNNING"],
    ]  # fmt: skip
    entry = body["migration_logs"][0]
    assert set(entry) == {"created_at", "log_level", "message", "log_code", "keyword"}
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", entry["created_at"])
    page = await client.get(task_url(SCENARIO, "inc", "/logs"), params={"offset": 1, "limit": 1})
    assert [e["keyword"] for e in page.json()["migration_logs"]] == [["FULLMIGRATING"]]


async def test_logs_filter_by_level(client: httpx.AsyncClient, clock: ManualClock) -> None:
    """`log_level=ERROR` keeps the failure only."""
    clock.advance(20)
    response = await client.get(task_url(SCENARIO, "fail", "/logs"), params={"log_level": "error"})
    body = response.json()
    assert body["log_num"] == 1
    assert body["migration_logs"][0]["log_code"] == "MIGRATION_MIGRATION_FAILED"


async def test_stop_terminates_then_terminated(
    client: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """POST stop answers the task TERMINATING, which becomes TERMINATED; progress freezes."""
    clock.advance(17)
    response = await client.post(task_url(SCENARIO, "inc", "/stop"))
    assert response.status_code == 200
    assert response.json()["status"] == "TERMINATING"
    clock.advance(3)
    assert (await show(client, "inc")).json()["status"] == "TERMINATED"
    assert (await show(client, "inc", "/stats")).json()["full_migration_progress"] == "50"
    again = await client.post(task_url(SCENARIO, "inc", "/stop"))
    assert_dcs_error(again, 400, "DCS.4000")
    assert app.sandbox_state.stop_requests("inc") == 2


async def exchange(client: httpx.AsyncClient, task_id: str = "inc") -> httpx.Response:
    body = {"exchanged_ip": ["192.168.1.2", "192.168.1.3"], "is_exchange_domain": False}
    return await client.post(task_url(SCENARIO, task_id, "/exchange-ip"), json=body)


async def task_status(client: httpx.AsyncClient, task_id: str = "inc") -> str | None:
    status: str | None = (await show(client, task_id)).json().get("task_status")
    return status


async def test_exchange_is_exchanging_then_success_and_counted(
    client: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """POST exchange-ip: 204, task_status EXCHANGING for 5 s then EXCHANGE_SUCCESS; counted."""
    clock.advance(40)
    response = await exchange(client)
    assert response.status_code == 204
    assert response.content == b""
    assert await task_status(client) == "EXCHANGING"
    clock.advance(5)
    assert await task_status(client) == "EXCHANGE_SUCCESS"
    state = app.sandbox_state
    assert (state.exchange_requests("inc"), state.exchanges("inc")) == (1, 1)
    assert state.task("inc").addresses_swapped is True
    assert state.ip_actions("inc")[0].exchanged_ip == ("192.168.1.2", "192.168.1.3")


async def test_a_second_exchange_is_accepted_and_swaps_back(
    client: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """A repeated exchange is accepted as DCS would: counted twice, addresses swapped back."""
    clock.advance(40)
    await exchange(client)
    clock.advance(1)
    assert (await exchange(client)).status_code == 204
    clock.advance(10)
    state = app.sandbox_state
    assert state.exchanges("inc") == 2
    assert state.task("inc").addresses_swapped is False
    assert app.sandbox_state.as_dict()["tasks"]["inc"]["exchanges"] == 2


async def test_exchange_outcome_failure(clock: ManualClock) -> None:
    """`exchange.outcome: failure` ends in EXCHANGE_FAILED."""
    script = MigrationScript.incremental("t", full_seconds=1, exchange_outcome="failure")
    scenario = Scenario(tasks=[script])
    async with asgi_client(create_app(scenario, clock)) as client:
        client.headers.update(token_headers(scenario))
        clock.advance(10)
        url = task_url(scenario, "t")
        assert (
            await client.post(f"{url}/exchange-ip", json={"exchanged_ip": []})
        ).status_code == 204
        clock.advance(5)
        assert (await client.get(url)).json()["task_status"] == "EXCHANGE_FAILED"


async def test_exchange_refused_before_incremental_sync(
    client: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """An exchange while FULLMIGRATING is 400: counted as a request, not as an exchange."""
    clock.advance(5)
    assert_dcs_error(await exchange(client), 400, "DCS.4000")
    assert app.sandbox_state.exchange_requests("inc") == 1
    assert app.sandbox_state.exchanges("inc") == 0


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"exchanged_ip": "192.168.1.2"}', id="ip-not-a-list"),
        pytest.param(b'{"is_exchange_domain": "yes"}', id="domain-not-a-bool"),
    ],
)
async def test_exchange_bad_body_is_a_400(
    client: httpx.AsyncClient, clock: ManualClock, content: bytes
) -> None:
    """An exchange body that is not the documented shape is DCS.4000."""
    clock.advance(40)
    response = await client.post(task_url(SCENARIO, "inc", "/exchange-ip"), content=content)
    assert_dcs_error(response, 400, "DCS.4000")


async def test_rollback_after_exchange(
    client: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """rollback-ip is refused with no exchange; after one: EXCHANGING then ROLLBACK_SUCCESS."""
    clock.advance(40)
    rollback = task_url(SCENARIO, "inc", "/rollback-ip")
    assert_dcs_error(await client.post(rollback), 400, "DCS.4000")
    await exchange(client)
    clock.advance(5)
    assert (await client.post(rollback)).status_code == 204
    assert await task_status(client) == "EXCHANGING"
    clock.advance(5)
    assert await task_status(client) == "ROLLBACK_SUCCESS"
    assert (app.sandbox_state.rollback_requests("inc"), app.sandbox_state.rollbacks("inc")) == (
        2,
        1,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/v2/{project}/migration-task", id="unknown-path"),
        pytest.param("DELETE", "/v2/{project}/migration-task/inc", id="wrong-method"),
        pytest.param("GET", "/v2/{project}/migration-task/inc/", id="trailing-slash"),
    ],
)
async def test_unknown_api_is_a_gateway_404(
    client: httpx.AsyncClient, app: SandboxApp, method: str, path: str
) -> None:
    """A path or method DCS does not have: 404 from the gateway, with a request id, recorded."""
    response = await client.request(method, path.format(project=SCENARIO.project_id))
    assert response.status_code == 404
    assert response.json()["error_code"] == "APIGW.0101"
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert app.sandbox_state.count("unknown") == 1


async def test_admin_state_counts_without_secrets(
    client: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """/_sandbox/state counts per route, status and task; it names no credential or password."""
    clock.advance(40)
    await show(client, "inc")
    await show(client, "inc", "/stats")
    await exchange(client)
    await show(client, "missing")
    response = await client.get("/_sandbox/state", headers={"X-Auth-Token": ""})
    state = response.json()
    assert state["requests"]["by_route"] == {
        "show_migration_task": 2, "show_migration_task_stats": 1, "exchange_instance_ip": 1,
    }  # fmt: skip
    assert state["requests"]["by_status"] == {"200": 2, "204": 1, "400": 1}
    assert state["requests"]["by_auth"] == {"token": 4}
    assert state["tasks"]["inc"]["task_status"] == "EXCHANGING"
    assert state["tasks"]["inc"]["exchange_requests"] == 1
    assert state["tasks"]["inc"]["reads"] == 1  # successful GETs of the task's detail
    assert state["tasks"]["full"]["status"] == "SUCCESS"
    assert "not part of the DCS API" in state["sandbox"]
    for secret in (SCENARIO.token, SCENARIO.secret_key, SCENARIO.iam_password, "DCStest123"):
        assert secret is not None
        assert secret not in response.text


async def test_reset_starts_the_scenario_again(
    client: httpx.AsyncClient, clock: ManualClock, app: SandboxApp
) -> None:
    """POST /_sandbox/reset puts time back to 0 and forgets requests and exchanges."""
    clock.advance(40)
    await exchange(client)
    assert (await client.post("/_sandbox/reset")).json()["reset"] is True
    assert (await show(client, "inc")).json()["status"] == "RUNNING"
    assert app.sandbox_state.exchanges("inc") == 0
    assert app.sandbox_state.count() == 1


async def test_advance_moves_every_task_on_at_once(client: httpx.AsyncClient) -> None:
    """POST /_sandbox/advance?seconds=N jumps the scripts ahead; a bad N is a clear 400."""
    assert (await show(client, "inc")).json()["status"] == "RUNNING"
    assert (await client.post("/_sandbox/advance", params={"seconds": 40})).status_code == 200
    assert (await show(client, "inc")).json()["status"] == "INCRMIGEATING"
    for bad in ("-1", "soon", ""):
        refused = await client.post("/_sandbox/advance", params={"seconds": bad})
        assert refused.status_code == 400
        assert f"seconds={bad!r}" in refused.json()["error"]


async def test_admin_state_shows_the_request_log_on_a_clock_advance_does_not_move(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """?recent=N lists the last N requests with `clock_at`, which /_sandbox/advance leaves."""
    await show(client, "inc")
    clock.advance(1.5)
    assert (await client.post("/_sandbox/advance", params={"seconds": 3600})).status_code == 200
    await show(client, "full")
    recent = (await client.get("/_sandbox/state", params={"recent": 2})).json()["recent_requests"]
    assert [r["task_id"] for r in recent] == ["inc", "full"]
    assert recent[1]["at"] - recent[0]["at"] == pytest.approx(3601.5)
    assert recent[1]["clock_at"] - recent[0]["clock_at"] == pytest.approx(1.5)
    assert (await client.get("/_sandbox/state", params={"recent": 0})).json()[
        "recent_requests"
    ] == []
    for bad in ("-1", "many", "10001"):
        refused = await client.get("/_sandbox/state", params={"recent": bad})
        assert refused.status_code == 400
        assert f"recent={bad!r}" in refused.json()["error"]
