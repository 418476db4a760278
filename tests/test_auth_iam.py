"""TokenAuth and IamPasswordAuth: the token header; IAM tokens fetched once, shared, renewed."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import AkSkAuth, IamPasswordAuth, TokenAuth
from blocks.errors import DcsAuthError, DcsServerError
from flows.clock import FakeTime
from tests.conftest import StubDcs
from tests.fakes import FakeDcs, FakeIam, cloud, for_stub
from tests.test_auth_signing import AK, ENDPOINT, NOW, PROJECT, SK, STS_TOKEN, TASK, capture

IAM = "https://iam.ap-southeast-1.myhuaweicloud.com"
PASSWORD = "Pa55-w0rd!-never-shown"
EXPIRES_AT = "2026-01-15T09:30:00.000000Z"  # an hour after NOW
TASK_ID = TASK.rsplit("/", 1)[1]


# --- TokenAuth -------------------------------------------------------------------------------


def test_token_auth_sets_x_auth_token() -> None:
    """TokenAuth sends the token in X-Auth-Token and nothing else."""
    client, seen = capture(TokenAuth(SecretStr("tok-123")))
    with client:
        client.get(f"{ENDPOINT}{TASK}")
    assert seen[0].headers["X-Auth-Token"] == "tok-123"
    assert "authorization" not in seen[0].headers


# --- IamPasswordAuth -------------------------------------------------------------------------


def iam_auth(clock: FakeTime | None = None, endpoint: str = IAM) -> IamPasswordAuth:
    clock = clock or FakeTime(NOW)
    user = ("ops", SecretStr(PASSWORD), "acme")
    return IamPasswordAuth(*user, project_id=PROJECT, iam_endpoint=endpoint, clock=clock.now)


@pytest.fixture
def iam() -> FakeIam:
    """IAM issuing tokens that expire an hour after NOW."""
    return FakeIam(EXPIRES_AT)


@pytest.fixture
def dcs() -> FakeDcs:
    """DCS with the one task these tests read; it keeps each request's token."""
    return FakeDcs({TASK_ID: ["MIGRATING"]})


@pytest.fixture
def transport(iam: FakeIam, dcs: FakeDcs) -> httpx.MockTransport:
    """IAM and DCS behind one transport."""
    return httpx.MockTransport(cloud(iam, dcs))


def test_token_is_fetched_once_and_reused(
    iam: FakeIam, dcs: FakeDcs, transport: httpx.MockTransport
) -> None:
    """One IAM request, with the documented body, serves every later request."""
    with httpx.Client(transport=transport, auth=iam_auth()) as client:
        responses = [client.get(f"{ENDPOINT}{TASK}") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert dcs.tokens == ["token-1"] * 3
    user = {"name": "ops", "password": PASSWORD, "domain": {"name": "acme"}}
    auth = {"identity": {"methods": ["password"], "password": {"user": user}}}
    auth["scope"] = {"project": {"id": PROJECT}}
    assert iam.bodies == [{"auth": auth}]
    assert "x-subject-token" not in responses[0].history[0].headers


@pytest.mark.parametrize(
    ("expires_at", "refresh_after"),
    [
        pytest.param("2026-01-15T09:30:00.000000Z", 50 * 60, id="refresh-before-expires-at"),
        pytest.param(None, 22 * 3600 + 50 * 60, id="no-expiry-assumes-23h"),
    ],
)
def test_token_is_refreshed_before_it_expires(
    dcs: FakeDcs, expires_at: str | None, refresh_after: int
) -> None:
    """The token is renewed refresh_before_seconds (600) before its expiry, not after."""
    transport, clock = httpx.MockTransport(cloud(FakeIam(expires_at), dcs)), FakeTime(NOW)
    with httpx.Client(transport=transport, auth=iam_auth(clock)) as client:
        for seconds in (0, refresh_after - 1, refresh_after):
            clock.elapsed = seconds  # the wall clock now reads NOW + seconds
            client.get(f"{ENDPOINT}{TASK}")
    assert dcs.tokens == ["token-1", "token-1", "token-2"]


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        pytest.param({"token-1"}, 200, id="refresh-then-success"),
        pytest.param({"token-1", "token-2"}, 401, id="second-401-returned"),
    ],
)
def test_a_401_refreshes_once_and_resends_once(
    iam: FakeIam, dcs: FakeDcs, transport: httpx.MockTransport, refused: set[str], status: int
) -> None:
    """A 401 gets one new token and one resend; a second 401 is returned as is."""
    dcs.refused_tokens = refused
    with httpx.Client(transport=transport, auth=iam_auth()) as client:
        response = client.post(f"{ENDPOINT}{TASK}/stop", json={"x": 1})
    assert response.status_code == status
    assert dcs.tokens == ["token-1", "token-2"]
    assert len(iam.bodies) == 2


@pytest.mark.parametrize(
    ("status", "error", "error_type", "words"),
    [
        pytest.param(401, {"error": {"code": 401, "message": "wrong password"}}, DcsAuthError,
                     "HTTP 401", id="iam-401"),
        pytest.param(400, {"error": {"code": 400, "message": "bad domain"}}, DcsAuthError,
                     "HTTP 400", id="iam-400"),
        pytest.param(503, None, DcsServerError, "HTTP 503", id="iam-503-stays-transient"),
        pytest.param(201, {"token": {}}, DcsAuthError, "without an X-Subject-Token",
                     id="no-subject-token"),
    ],
)  # fmt: skip
def test_iam_refusal_names_user_and_domain_never_the_password(
    iam: FakeIam,
    dcs: FakeDcs,
    transport: httpx.MockTransport,
    status: int,
    error: dict[str, Any] | None,
    error_type: type,
    words: str,
) -> None:
    """IAM refusing raises a DcsApiError naming user and domain, without the password."""
    iam.status, iam.error = status, error
    with (
        httpx.Client(transport=transport, auth=iam_auth()) as client,
        pytest.raises(error_type) as caught,
    ):
        client.get(f"{ENDPOINT}{TASK}")
    message = str(caught.value)
    assert type(caught.value) is error_type
    assert caught.value.operation == "iam_get_token"
    assert all(word in message for word in (words, "'ops'", "'acme'"))
    assert PASSWORD not in message
    assert PASSWORD not in repr(caught.value)
    assert dcs.tokens == []


async def gated_burst(
    iam: FakeIam, dcs: FakeDcs, auth: IamPasswordAuth, n: int, hold_401s: bool = False
) -> list[int]:
    """n concurrent requests; IAM answers only once all n wait (with hold_401s: all got 401)."""
    iam_started, gate, all_refused = asyncio.Event(), asyncio.Event(), asyncio.Event()
    held: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            iam_started.set()
            await gate.wait()
        elif hold_401s and request.headers["X-Auth-Token"] in dcs.refused_tokens:
            held.append(request)
            if len(held) == n:
                all_refused.set()
            # Bounded: a regression that sends fewer than n refused requests fails, not hangs.
            await asyncio.wait_for(all_refused.wait(), timeout=10)
        return cloud(iam, dcs)(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
        tasks = [asyncio.create_task(client.get(f"{ENDPOINT}{TASK}")) for _ in range(n)]
        await asyncio.wait_for(iam_started.wait(), timeout=10)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(task.done() for task in tasks)
        gate.set()
        return [response.status_code for response in await asyncio.gather(*tasks)]


async def test_concurrent_async_requests_share_one_token_request(
    iam: FakeIam, dcs: FakeDcs
) -> None:
    """20 concurrent async requests without a token cause exactly one IAM request."""
    assert await gated_burst(iam, dcs, iam_auth(), 20) == [200] * 20
    assert len(iam.bodies) == 1


async def test_concurrent_401s_cause_one_refresh(
    iam: FakeIam, dcs: FakeDcs, transport: httpx.MockTransport
) -> None:
    """20 requests refused at once drop their shared token once: one refresh, not twenty."""
    auth = iam_auth()
    async with httpx.AsyncClient(transport=transport, auth=auth) as client:
        await client.get(f"{ENDPOINT}{TASK}")  # caches token-1
    dcs.refused_tokens = {"token-1"}
    assert await gated_burst(iam, dcs, auth, 20, hold_401s=True) == [200] * 20
    assert dcs.tokens == ["token-1"] * 21 + ["token-2"] * 20
    assert len(iam.bodies) == 2


def test_concurrent_threads_share_one_token_request(iam: FakeIam, dcs: FakeDcs) -> None:
    """8 threads on one sync client without a token cause exactly one IAM request."""
    iam_started, gate, barrier = threading.Event(), threading.Event(), threading.Barrier(9)
    statuses: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            iam_started.set()
            gate.wait(timeout=5)
        return cloud(iam, dcs)(request)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=iam_auth()) as client:

        def call() -> None:
            barrier.wait()
            statuses.append(client.get(f"{ENDPOINT}{TASK}").status_code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        barrier.wait()
        assert iam_started.wait(timeout=5)
        time.sleep(0.05)  # let the other seven reach the lock
        gate.set()
        for thread in threads:
            thread.join(timeout=5)
    assert statuses == [200] * 8
    assert len(iam.bodies) == 1


def test_a_copy_starts_without_the_token(dcs: FakeDcs, transport: httpx.MockTransport) -> None:
    """deepcopy (as a Prefect block copy may do) works and does not carry the live token."""
    auth = iam_auth()
    with httpx.Client(transport=transport, auth=auth) as client:
        client.get(f"{ENDPOINT}{TASK}")
    with httpx.Client(transport=transport, auth=copy.deepcopy(auth)) as client:
        client.get(f"{ENDPOINT}{TASK}")
    assert dcs.tokens == ["token-1", "token-2"]


def test_one_auth_serves_several_event_loops(iam: FakeIam, dcs: FakeDcs) -> None:
    """The same auth object works, with contention, in one event loop after another."""
    clock = FakeTime(NOW)
    auth = iam_auth(clock)
    results: list[list[int]] = []
    for minutes in (0, 55):  # the second loop finds token-1 due for refresh
        clock.elapsed = minutes * 60  # the wall clock now reads NOW + minutes
        thread = threading.Thread(
            target=lambda: results.append(asyncio.run(gated_burst(iam, dcs, auth, 5)))
        )
        thread.start()
        thread.join(timeout=5)
    assert results == [[200] * 5, [200] * 5]
    assert dcs.tokens == ["token-1"] * 5 + ["token-2"] * 5


@pytest.mark.parametrize("flavour", [pytest.param(f, id=f) for f in ("sync", "async")])
async def test_token_request_leaves_no_secret_in_the_history(
    stub_dcs: StubDcs, iam: FakeIam, dcs: FakeDcs, flavour: str
) -> None:
    """Over a real socket, the IAM step in response.history holds neither password nor token."""
    stub_dcs.handler = for_stub(cloud(iam, dcs))
    base, received = stub_dcs.url, stub_dcs.requests
    auth = iam_auth(endpoint=base)

    def sync_get() -> httpx.Response:
        with httpx.Client(auth=auth, trust_env=False) as client:
            return client.get(f"{base}{TASK}")

    if flavour == "sync":
        response = await asyncio.to_thread(sync_get)
    else:
        async with httpx.AsyncClient(auth=auth, trust_env=False) as client:
            response = await client.get(f"{base}{TASK}")
    (iam_step,) = response.history
    assert [target for _, target, _, _ in received] == ["/v3/auth/tokens", TASK]
    assert PASSWORD.encode() in received[0][3]
    assert received[1][2]["x-auth-token"] == "token-1"
    stream: Any = iam_step.request.stream
    rest = b"".join(stream) if flavour == "sync" else b"".join([c async for c in stream])
    assert PASSWORD.encode() not in rest
    assert "x-subject-token" not in iam_step.headers


# --- no secret in repr -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "shown"),
    [
        pytest.param(TokenAuth(SecretStr("tok-123")), [], id="token"),
        pytest.param(
            AkSkAuth(AK, SecretStr(SK), project_id=PROJECT, security_token=SecretStr(STS_TOKEN)),
            [AK, PROJECT],
            id="ak-sk",
        ),
        pytest.param(iam_auth(), ["ops", "acme", PROJECT], id="iam-password"),
    ],
)
def test_repr_names_the_identity_never_a_secret(auth: httpx.Auth, shown: list[str]) -> None:
    """repr() shows who (key id, user) and never the secret key, token or password."""
    text = repr(auth)
    assert not any(secret in text for secret in ("tok-123", SK, STS_TOKEN, PASSWORD))
    assert all(value in text for value in shown)
    secrets = [v for k, v in vars(auth).items() if k in {"token", "secret_key", "password"}]
    assert secrets
    assert all(isinstance(v, SecretStr) for v in secrets)
