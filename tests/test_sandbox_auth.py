"""How the sandbox lets callers in: fixed and IAM-issued tokens (with expiry), AK/SK
signatures made by the official SDK, and the project in the path."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from sandbox import ManualClock, MigrationScript, SandboxApp, Scenario, TemporaryKey, create_app
from sandbox.iam import password_request
from tests.test_sandbox_support import NOW, asgi_client, sdk_auth, task_url, token_headers

SCENARIO = Scenario(
    speed=2,
    token_lifetime_seconds=3600,
    temporary_keys=[
        TemporaryKey(access_key="TEMPKEY0000000000001", secret_key="t" * 40, security_token="sts-1")
    ],
    tasks=[MigrationScript.incremental("inc", full_seconds=30)],
)
SHOW = task_url(SCENARIO, "inc")
LIST = f"/v2/{SCENARIO.project_id}/migration-tasks"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> SandboxApp:
    return create_app(SCENARIO, clock, utc_now=lambda: NOW)


@pytest.fixture
async def client(app: SandboxApp) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client with no credentials of its own."""
    async with asgi_client(app) as client:
        yield client


def login_body(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "username": SCENARIO.iam_username,
        "password": SCENARIO.iam_password,
        "domain_name": SCENARIO.iam_domain_name,
        "project_id": SCENARIO.project_id,
    }
    values.update(changes)
    return password_request(
        values["username"],
        values["password"],
        values["domain_name"],
        project_id=values["project_id"],
    )


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error_code"]
    return code


def assert_gateway_refusal(response: httpx.Response, fragment: str) -> None:
    """401 APIGW.0301 in the API gateway's body shape, its request id that of the header."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "request_id"}
    assert body["error_code"] == "APIGW.0301"
    assert body["error_msg"].startswith("Incorrect IAM authentication information: ")
    assert fragment in body["error_msg"]
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, "DCS.1003", id="no-credentials"),
        pytest.param({"X-Auth-Token": "MIIforged"}, "DCS.1001", id="unknown-token"),
        pytest.param({"X-Auth-Token": ""}, "DCS.1001", id="empty-token"),
    ],
)
async def test_token_refusals_are_401_with_a_dcs_code(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    """No credentials or a token DCS does not know: 401 with DCS's code, body and request id."""
    response = await client.get(SHOW, headers=headers)
    assert (response.status_code, error_code(response)) == (401, code)
    assert response.json()["error_ext_msg"] is None
    assert response.headers["x-request-id"]


async def test_an_authorization_that_is_not_a_signature_is_refused_by_the_gateway(
    client: httpx.AsyncClient,
) -> None:
    """`Authorization: Bearer x` is no AK/SK signature: the gateway's 401 APIGW.0301."""
    response = await client.get(SHOW, headers={"Authorization": "Bearer x"})
    assert_gateway_refusal(response, "verify aksk signature fail")


async def test_fixed_token_is_accepted(client: httpx.AsyncClient, app: SandboxApp) -> None:
    """The scenario's fixed token opens every route; the log records the kind, not the token."""
    response = await client.get(SHOW, headers=token_headers(SCENARIO))
    assert response.status_code == 200
    assert app.sandbox_state.requests[-1].auth == "token"


async def test_a_token_for_another_project_is_401_dcs_1004(client: httpx.AsyncClient) -> None:
    """A token used on a project it is not scoped to: 401 DCS.1004 (project does not match)."""
    response = await client.get(
        f"/v2/{'f' * 32}/migration-task/inc", headers=token_headers(SCENARIO)
    )
    assert (response.status_code, error_code(response)) == (401, "DCS.1004")


async def test_aksk_on_another_project_in_the_path_is_403(client: httpx.AsyncClient) -> None:
    """An AK/SK request whose path names a project other than its X-Project-Id: 403 DCS.2003."""
    path = f"/v2/{'f' * 32}/migration-task/inc"
    response = await client.get(path, auth=sdk_auth(SCENARIO))
    assert (response.status_code, error_code(response)) == (403, "DCS.2003")


async def test_iam_issues_a_token_that_works(client: httpx.AsyncClient, app: SandboxApp) -> None:
    """POST /v3/auth/tokens: 201, X-Subject-Token, `expires_at` the lifetime (in real time) away."""
    response = await client.post("/v3/auth/tokens", json=login_body())
    assert response.status_code == 201
    token = response.headers["x-subject-token"]
    body = response.json()["token"]
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    # 3600 scenario seconds at speed 2 are 30 real minutes.
    assert expires.replace(tzinfo=timezone.utc) == NOW + timedelta(minutes=30)
    assert body["project"]["id"] == SCENARIO.project_id
    shown = await client.get(SHOW, headers={"X-Auth-Token": token})
    assert shown.status_code == 200
    assert app.sandbox_state.requests[-1].auth == "iam_token"
    assert app.sandbox_state.tokens_issued == 1
    assert token not in json.dumps(app.sandbox_state.as_dict())


async def test_issued_token_expires(client: httpx.AsyncClient, clock: ManualClock) -> None:
    """An issued token is refused once its lifetime passed (401 DCS.1002); a new one works."""
    old = (await client.post("/v3/auth/tokens", json=login_body())).headers["x-subject-token"]
    clock.advance(3599)
    assert (await client.get(SHOW, headers={"X-Auth-Token": old})).status_code == 200
    clock.advance(1)
    expired = await client.get(SHOW, headers={"X-Auth-Token": old})
    assert (expired.status_code, error_code(expired)) == (401, "DCS.1002")
    assert "expired" in expired.json()["error_msg"]
    new = (await client.post("/v3/auth/tokens", json=login_body())).headers["x-subject-token"]
    assert (await client.get(SHOW, headers={"X-Auth-Token": new})).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(login_body(password="wrong"), 401, id="wrong-password"),
        pytest.param(login_body(username="someone"), 401, id="wrong-user"),
        pytest.param(login_body(domain_name="other"), 401, id="wrong-domain"),
        pytest.param(login_body(project_id="f" * 32), 401, id="other-project"),
        pytest.param({"auth": {}}, 400, id="no-identity"),
        pytest.param([], 400, id="not-an-object"),
    ],
)
async def test_iam_refuses_wrong_credentials(
    client: httpx.AsyncClient, app: SandboxApp, body: Any, status: int
) -> None:
    """IAM answers a wrong identity with 401 and a malformed body with 400 (Keystone errors)."""
    response = await client.post("/v3/auth/tokens", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == status
    assert "x-subject-token" not in response.headers
    assert app.sandbox_state.tokens_issued == 0


async def test_iam_accepts_a_project_scoped_by_name(client: httpx.AsyncClient) -> None:
    """A scope by project name (the region) is this sandbox's only project."""
    body = login_body()
    body["auth"]["scope"] = {"project": {"name": "cn-north-4"}}
    assert (await client.post("/v3/auth/tokens", json=body)).status_code == 201


async def test_aksk_signed_by_the_sdk_is_accepted(
    client: httpx.AsyncClient, app: SandboxApp, clock: ManualClock
) -> None:
    """GET with a query and POST with a JSON body, signed by huaweicloudsdkcore, are let in."""
    auth = sdk_auth(SCENARIO)
    listed = await client.get(LIST, params={"name": "migration inc", "limit": 5}, auth=auth)
    assert listed.status_code == 200, listed.text
    clock.advance(40)
    body = {"exchanged_ip": ["192.168.1.2"], "is_exchange_domain": False}
    exchanged = await client.post(f"{SHOW}/exchange-ip", json=body, auth=auth)
    assert exchanged.status_code == 204, exchanged.text
    assert [record.auth for record in app.sandbox_state.requests] == ["aksk", "aksk"]


async def test_temporary_key_needs_its_security_token(client: httpx.AsyncClient) -> None:
    """A temporary key works with its signed X-Security-Token, and not with another one."""
    key = SCENARIO.temporary_keys[0]
    good = sdk_auth(
        SCENARIO,
        access_key=key.access_key,
        secret_key=key.secret_key,
        security_token=key.security_token,
    )
    assert (await client.get(SHOW, auth=good)).status_code == 200
    other = sdk_auth(
        SCENARIO, access_key=key.access_key, secret_key=key.secret_key, security_token="sts-2"
    )
    assert_gateway_refusal(await client.get(SHOW, auth=other), "security token")
    unsigned = sdk_auth(SCENARIO, access_key=key.access_key, secret_key=key.secret_key)
    assert_gateway_refusal(await client.get(SHOW, auth=unsigned), "security token")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"secret_key": "x" * 40}, "verify aksk signature fail", id="wrong-secret"),
        pytest.param({"access_key": "UNKNOWNKEY0000000000"}, "ak not exist", id="unknown-key"),
        pytest.param({"date": NOW - timedelta(minutes=16)}, "X-Sdk-Date", id="stale-date"),
    ],
)
async def test_aksk_refusals_are_the_gateways(
    client: httpx.AsyncClient, overrides: dict[str, Any], fragment: str
) -> None:
    """A wrong secret, unknown key or stale date: 401 APIGW.0301 with the request id, no secret."""
    response = await client.get(SHOW, auth=sdk_auth(SCENARIO, **overrides))
    assert_gateway_refusal(response, fragment)
    assert SCENARIO.secret_key not in response.text
    assert "UNKNOWNKEY" not in response.text  # the gateway masks the access key too


async def test_aksk_with_another_x_project_id_is_403(client: httpx.AsyncClient) -> None:
    """A valid signature whose X-Project-Id is another project: 403 DCS.2003, from DCS."""
    response = await client.get(SHOW, auth=sdk_auth(SCENARIO, project_id="f" * 32))
    assert (response.status_code, error_code(response)) == (403, "DCS.2003")
