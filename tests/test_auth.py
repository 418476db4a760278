"""The auth classes: AK/SK signatures checked against the official SDK, IAM token handling."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.client import Client as SdkClient
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from blocks.auth import (
    AkSkAuth,
    IamPasswordAuth,
    TokenAuth,
    canonical_request,
    sign_request,
    signed_header_names,
    string_to_sign,
)
from blocks.errors import DcsAuthError, DcsServerError

AK, SK, STS_TOKEN = "HWTESTAK0123456789AB", "sk-0123456789-test-secret", "sts-temporary-token"
PROJECT = "0504201040a34d4a83e1e3f1e2b0c0de"
ENDPOINT = "https://dcs.ap-southeast-1.myhuaweicloud.com"
IAM = "https://iam.ap-southeast-1.myhuaweicloud.com"
NOW, SDK_DATE = datetime(2026, 1, 15, 8, 30, tzinfo=timezone.utc), "20260115T083000Z"
PASSWORD = "Pa55-w0rd!-never-shown"
TASK = f"/v2/{PROJECT}/migration-task/a7c1b6f0-task"
TASKS = f"/v2/{PROJECT}/migration-tasks"
UNSIGNED = {"authorization", "connection"}  # the signature itself, and hop-by-hop Connection
Received = list[tuple[str, str, list[tuple[str, str]], bytes]]  # method, target, headers, body


def capture(auth: httpx.Auth, seen: list[httpx.Request], **client: Any) -> httpx.Client:
    """A client whose transport records each request as it would go on the wire."""
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json={}))
    return httpx.Client(transport=transport, auth=auth, **client)


# --- AK/SK against the official SDK ---------------------------------------------------------


def send_signed(method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Request:
    """Send one request through a real client with AkSkAuth; return what the transport saw."""
    sts = SecretStr(token) if token else None
    auth = AkSkAuth(AK, SecretStr(SK), project_id=PROJECT, security_token=sts, clock=lambda: NOW)
    seen: list[httpx.Request] = []
    with capture(auth, seen, base_url=ENDPOINT) as client:
        client.request(method, path, **kwargs)
    return seen[0]


def sdk_sign(sent: httpx.Request, query: list[tuple[str, str]], token: str | None) -> SdkRequest:
    """The same request built independently and signed by the official SDK's credentials.

    The SDK gets every header httpx sent, except the ones its credentials and signer add
    themselves and `Connection`, which `requests` too adds after signing, unsigned.
    """
    skip = UNSIGNED | {"x-project-id", "x-security-token", "x-sdk-content-sha256"}
    raw = [(k.decode(), v.decode()) for k, v in sent.headers.raw]  # as sent, casing included
    request = SdkRequest(
        method=sent.method,
        schema="https",
        host=sent.url.netloc.decode(),
        resource_path=sent.url.raw_path.decode().partition("?")[0],
        query_params=list(query),
        header_params={k: v for k, v in raw if k.lower() not in skip},
        body=sent.content or None,
    )
    credentials = BasicCredentials(AK, SK, PROJECT)
    if token:
        credentials.with_security_token(token)
    return credentials.sign_request(request)


QUERY = [("name", "redis a/b+c=d&e"), ("name", "ünïcödé ~ tilde"), ("tag", "z"), ("tag", "a")]
QUERY += [("offset", "0"), ("limit", "10"), ("empty", "")]
JSON_BODY = {"json": {"exchanged_ip": ["10.0.0.1", "10.0.0.2"], "is_exchange_domain": True}}
TEXT_BODY = {"content": b"plain body", "headers": {"Content-Type": "text/plain"}}


@pytest.mark.parametrize(
    ("method", "path", "query", "kwargs", "token"),
    [
        pytest.param("GET", TASK, [], {}, None, id="get-no-query"),
        pytest.param("GET", TASKS, QUERY, {}, None, id="get-query-needs-encoding"),
        pytest.param("POST", f"{TASK}/exchange-ip", [], JSON_BODY, None, id="post-json-body"),
        pytest.param("GET", f"{TASK}/stats", [], {}, STS_TOKEN, id="temporary-key"),
        pytest.param("POST", f"{TASK}/stop", [], TEXT_BODY, None, id="text-body-unsigned-payload"),
        pytest.param("GET", f"{TASK}/a b~ü:@!", [], {}, None, id="path-needs-encoding"),
    ],
)
def test_signature_is_byte_identical_to_the_official_sdk(
    method: str, path: str, query: list[tuple[str, str]], kwargs: dict[str, Any], token: str | None
) -> None:
    """Same request through httpx and through the SDK's signer -> same Authorization and URL."""
    sent = send_signed(method, path, token, params=query or None, **kwargs)
    sdk = sdk_sign(sent, query, token)
    assert sent.headers["authorization"] == sdk.header_params["Authorization"]
    assert sent.url.raw_path.decode() == sdk.uri  # the SDK sends its canonical query; so do we
    sdk_headers = httpx.Headers(sdk.header_params)
    for name in ("X-Sdk-Date", "Host", "X-Project-Id", "X-Security-Token", "X-Sdk-Content-Sha256"):
        assert sent.headers.get(name) == sdk_headers.get(name)
    assert set(signed_header_names(sent.headers)) == set(sent.headers) - UNSIGNED


def test_canonical_request_and_string_to_sign_match_the_sdk_step_by_step() -> None:
    """canonical_request and string_to_sign equal the SDK signer's intermediate results."""
    sent = send_signed("GET", TASKS, params=QUERY)
    sdk = sdk_sign(sent, QUERY, None)
    del sdk.header_params["Authorization"]
    signer = Signer(BasicCredentials(AK, SK, PROJECT))
    sdk_names = signer._process_signed_headers(sdk)
    sdk_canonical = signer._process_canonical_request(sdk, sdk_names)
    ours = canonical_request(sent.method, sent.url, sent.headers, sent.content)
    assert signed_header_names(sent.headers) == sdk_names
    assert ours == sdk_canonical
    assert string_to_sign(ours, SDK_DATE) == signer._process_string_to_sign(sdk_canonical, NOW)


def test_request_built_by_the_sdk_client_signs_identically() -> None:
    """A request exactly as the SDK's own client builds it (its headers only) signs the same."""
    sdk_client = SdkClient().with_config(HttpConfig.get_default_config())
    sdk_client.with_credentials(BasicCredentials(AK, SK, PROJECT)).with_endpoints([ENDPOINT])
    sdk_client.init_http_client()
    try:
        sdk = sdk_client.build_future_request(
            "GET", "/v2/{project_id}/migration-tasks", {}, QUERY, {"X-Sdk-Date": SDK_DATE},
            None, None, None, None, {}, None,
        ).result()  # fmt: skip
    finally:
        sdk_client.get_http_client().executor.shutdown()
        sdk_client.get_http_client()._session.close()
    seen: list[httpx.Request] = []
    with capture(
        AkSkAuth(AK, SecretStr(SK), project_id=PROJECT, clock=lambda: NOW), seen
    ) as client:
        for name in ("Accept", "Accept-Encoding", "Connection", "User-Agent"):
            del client.headers[name]  # send only what the SDK's client sends
        own = {"User-Agent", "Content-Type"}
        client.get(sdk.url, headers={k: v for k, v in sdk.header_params.items() if k in own})
    assert seen[0].headers["authorization"] == sdk.header_params["Authorization"]
    assert str(seen[0].url) == sdk.url


def test_huawei_published_example() -> None:
    """Huawei's documented example (VPC list, 20191115T033655Z) gives the documented signature."""
    url = "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
    url += "?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"
    headers = {"Content-Type": "application/json", "Host": "service.region.example.com"}
    headers["X-Sdk-Date"] = "20191115T033655Z"
    canonical = canonical_request("GET", url, headers, b"")
    ak, sk = "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
    authorization, names = sign_request("GET", url, headers, b"", ak, sk)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    )
    assert names == ["content-type", "host", "x-sdk-date"]
    assert authorization == (
        f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders=content-type;host;x-sdk-date, "
        "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    )


query_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(query=st.lists(st.tuples(query_text, query_text), max_size=6))
def test_any_query_signs_like_the_sdk(query: list[tuple[str, str]]) -> None:
    """For arbitrary query pairs (any unicode, repeats, empties) the SDK signs identically."""
    sent = send_signed("GET", TASKS, params=query)
    sdk = sdk_sign(sent, query, None)
    assert sent.headers["authorization"] == sdk.header_params["Authorization"]
    assert sent.url.raw_path.decode() == sdk.uri


# --- what a server does: recompute the signature from the request it receives ----------------


def server_accepts(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bool:
    """An independent verifier, written from Huawei's documentation only."""
    received = {name.lower(): value.strip() for name, value in headers}
    match = re.fullmatch(
        r"SDK-HMAC-SHA256 Access=(\S+), SignedHeaders=(\S+), Signature=([0-9a-f]{64})",
        received["authorization"],
    )
    assert match is not None
    assert match[1] == AK
    signed = match[2].split(";")
    assert set(signed) == set(received) - UNSIGNED  # all that arrived is signed
    path, _, query = target.partition("?")
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    canonical = "\n".join([
        method,
        "/".join(quote(part, safe="~") for part in unquote(path).split("/")).rstrip("/") + "/",
        "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs),
        "".join(f"{name}:{received[name]}\n" for name in signed),
        ";".join(signed),
        hashlib.sha256(body).hexdigest(),
    ])  # fmt: skip
    date = received["x-sdk-date"]
    skew = abs(datetime.strptime(date, "%Y%m%dT%H%M%S%z") - datetime.now(timezone.utc))
    assert skew < timedelta(minutes=15)
    to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(SK.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match[3])


class Recorder(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    received: Received

    def _answer(self) -> None:  # record the request; answer 200, with a token for IAM
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.command, self.path, list(self.headers.items()), body))
        self.send_response(200)
        if self.path == "/v3/auth/tokens":
            self.send_header("X-Subject-Token", "loopback-token")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[tuple[str, Received]]:
    """A real HTTP server on 127.0.0.1 that records what arrives on the wire."""
    received: Received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Recorder,), {"received": received}))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join()


async def test_a_server_verifies_what_it_receives(loopback: tuple[str, Received]) -> None:
    """Over a real socket (sync and async clients), a server recomputes the same signature."""
    base, received = loopback
    auth = AkSkAuth(AK, SecretStr(SK), project_id=PROJECT, security_token=SecretStr(STS_TOKEN))
    params = [("name", "a b+c/~ü"), ("limit", "10"), ("name", "0")]

    def sync_get() -> None:
        with httpx.Client(base_url=base, auth=auth, trust_env=False) as client:
            client.get(TASKS, params=params)

    await asyncio.to_thread(sync_get)
    async with httpx.AsyncClient(base_url=base, auth=auth, trust_env=False) as client:
        await client.post(f"{TASK}/exchange-ip", json={"exchanged_ip": ["10.0.0.1"]})
    assert [(method, target.partition("?")[0]) for method, target, *_ in received] == [
        ("GET", TASKS),
        ("POST", f"{TASK}/exchange-ip"),
    ]
    assert all(server_accepts(*request) for request in received)


# --- TokenAuth -------------------------------------------------------------------------------


def test_token_auth_sets_x_auth_token() -> None:
    """TokenAuth sends the token in X-Auth-Token and nothing else."""
    seen: list[httpx.Request] = []
    with capture(TokenAuth(SecretStr("tok-123")), seen) as client:
        client.get(f"{ENDPOINT}{TASK}")
    assert seen[0].headers["X-Auth-Token"] == "tok-123"
    assert "authorization" not in seen[0].headers


# --- IamPasswordAuth -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class FakeCloud:
    """IAM and DCS behind one MockTransport: issues token-1, token-2, ...; DCS refuses some."""

    def __init__(self, expires_at: str | None = "2026-01-15T09:30:00.000000Z") -> None:
        self.expires_at = expires_at
        self.iam_bodies: list[Any] = []
        self.dcs_tokens: list[str | None] = []
        self.refused: set[str] = set()
        self.iam_status, self.iam_error = 201, None

    def iam(self, request: httpx.Request) -> httpx.Response:
        self.iam_bodies.append(json.loads(request.read()))
        if self.iam_status >= 300 or self.iam_error is not None:
            headers = {"X-Request-Id": "r1"}
            return httpx.Response(self.iam_status, json=self.iam_error, headers=headers)
        body = {"token": {"expires_at": self.expires_at} if self.expires_at else {}}
        headers = {"X-Subject-Token": f"token-{len(self.iam_bodies)}"}
        return httpx.Response(201, headers=headers, json=body)

    def dcs(self, request: httpx.Request) -> httpx.Response:
        self.dcs_tokens.append(token := request.headers.get("X-Auth-Token"))
        return httpx.Response(401 if token in self.refused else 200, json={})

    def handler(self, request: httpx.Request) -> httpx.Response:
        return (self.iam if request.url.path == "/v3/auth/tokens" else self.dcs)(request)


def iam_auth(clock: FakeClock | None = None, endpoint: str = IAM) -> IamPasswordAuth:
    clock = clock or FakeClock()
    user = ("ops", SecretStr(PASSWORD), "acme")
    return IamPasswordAuth(*user, project_id=PROJECT, iam_endpoint=endpoint, clock=clock)


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud()


def test_token_is_fetched_once_and_reused(cloud: FakeCloud) -> None:
    """One IAM request, with the documented body, serves every later request."""
    with httpx.Client(transport=httpx.MockTransport(cloud.handler), auth=iam_auth()) as client:
        responses = [client.get(f"{ENDPOINT}{TASK}") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert cloud.dcs_tokens == ["token-1"] * 3
    user = {"name": "ops", "password": PASSWORD, "domain": {"name": "acme"}}
    auth = {"identity": {"methods": ["password"], "password": {"user": user}}}
    auth["scope"] = {"project": {"id": PROJECT}}
    assert cloud.iam_bodies == [{"auth": auth}]
    assert "x-subject-token" not in responses[0].history[0].headers


@pytest.mark.parametrize(
    ("expires_at", "refresh_after"),
    [
        pytest.param("2026-01-15T09:30:00.000000Z", 50 * 60, id="refresh-before-expires-at"),
        pytest.param(None, 22 * 3600 + 50 * 60, id="no-expiry-assumes-23h"),
    ],
)
def test_token_is_refreshed_before_it_expires(expires_at: str | None, refresh_after: int) -> None:
    """The token is renewed refresh_before_seconds (600) before its expiry, not after."""
    cloud, clock = FakeCloud(expires_at), FakeClock()
    with httpx.Client(transport=httpx.MockTransport(cloud.handler), auth=iam_auth(clock)) as client:
        for seconds in (0, refresh_after - 1, refresh_after):
            clock.now = NOW + timedelta(seconds=seconds)
            client.get(f"{ENDPOINT}{TASK}")
    assert cloud.dcs_tokens == ["token-1", "token-1", "token-2"]


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        pytest.param({"token-1"}, 200, id="refresh-then-success"),
        pytest.param({"token-1", "token-2"}, 401, id="second-401-returned"),
    ],
)
def test_a_401_refreshes_once_and_resends_once(
    cloud: FakeCloud, refused: set[str], status: int
) -> None:
    """A 401 gets one new token and one resend; a second 401 is returned as is."""
    cloud.refused = refused
    with httpx.Client(transport=httpx.MockTransport(cloud.handler), auth=iam_auth()) as client:
        response = client.post(f"{ENDPOINT}{TASK}/stop", json={"x": 1})
    assert response.status_code == status
    assert cloud.dcs_tokens == ["token-1", "token-2"]
    assert len(cloud.iam_bodies) == 2


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
    cloud: FakeCloud, status: int, error: dict[str, Any] | None, error_type: type, words: str
) -> None:
    """IAM refusing raises a DcsApiError naming user and domain, without the password."""
    cloud.iam_status, cloud.iam_error = status, error
    with (
        httpx.Client(transport=httpx.MockTransport(cloud.handler), auth=iam_auth()) as client,
        pytest.raises(error_type) as caught,
    ):
        client.get(f"{ENDPOINT}{TASK}")
    message = str(caught.value)
    assert type(caught.value) is error_type
    assert caught.value.operation == "iam_get_token"
    assert all(word in message for word in (words, "'ops'", "'acme'"))
    assert PASSWORD not in message
    assert PASSWORD not in repr(caught.value)
    assert cloud.dcs_tokens == []


async def gated_burst(
    cloud: FakeCloud, auth: IamPasswordAuth, n: int, hold_401s: bool = False
) -> list[int]:
    """n concurrent requests; IAM answers only once all n wait (with hold_401s: all got 401)."""
    iam_started, gate, all_refused = asyncio.Event(), asyncio.Event(), asyncio.Event()
    held: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            iam_started.set()
            await gate.wait()
        elif hold_401s and request.headers["X-Auth-Token"] in cloud.refused:
            held.append(request)
            if len(held) == n:
                all_refused.set()
            await all_refused.wait()
        return cloud.handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
        tasks = [asyncio.create_task(client.get(f"{ENDPOINT}{TASK}")) for _ in range(n)]
        await iam_started.wait()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(task.done() for task in tasks)
        gate.set()
        return [response.status_code for response in await asyncio.gather(*tasks)]


async def test_concurrent_async_requests_share_one_token_request(cloud: FakeCloud) -> None:
    """20 concurrent async requests without a token cause exactly one IAM request."""
    assert await gated_burst(cloud, iam_auth(), 20) == [200] * 20
    assert len(cloud.iam_bodies) == 1


async def test_concurrent_401s_cause_one_refresh(cloud: FakeCloud) -> None:
    """20 requests refused at once drop their shared token once: one refresh, not twenty."""
    auth = iam_auth()
    async with httpx.AsyncClient(transport=httpx.MockTransport(cloud.handler), auth=auth) as client:
        await client.get(f"{ENDPOINT}{TASK}")  # caches token-1
    cloud.refused = {"token-1"}
    assert await gated_burst(cloud, auth, 20, hold_401s=True) == [200] * 20
    assert cloud.dcs_tokens == ["token-1"] * 21 + ["token-2"] * 20
    assert len(cloud.iam_bodies) == 2


def test_concurrent_threads_share_one_token_request(cloud: FakeCloud) -> None:
    """8 threads on one sync client without a token cause exactly one IAM request."""
    iam_started, gate, barrier = threading.Event(), threading.Event(), threading.Barrier(9)
    statuses: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            iam_started.set()
            gate.wait(timeout=5)
        return cloud.handler(request)

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
    assert len(cloud.iam_bodies) == 1


def test_a_copy_starts_without_the_token(cloud: FakeCloud) -> None:
    """deepcopy (as a Prefect block copy may do) works and does not carry the live token."""
    auth = iam_auth()
    with httpx.Client(transport=httpx.MockTransport(cloud.handler), auth=auth) as client:
        client.get(f"{ENDPOINT}{TASK}")
    with httpx.Client(
        transport=httpx.MockTransport(cloud.handler), auth=copy.deepcopy(auth)
    ) as client:
        client.get(f"{ENDPOINT}{TASK}")
    assert cloud.dcs_tokens == ["token-1", "token-2"]


def test_one_auth_serves_several_event_loops(cloud: FakeCloud) -> None:
    """The same auth object works, with contention, in one event loop after another."""
    clock = FakeClock()
    auth = iam_auth(clock)
    results: list[list[int]] = []
    for minutes in (0, 55):  # the second loop finds token-1 due for refresh
        clock.now = NOW + timedelta(minutes=minutes)
        thread = threading.Thread(
            target=lambda: results.append(asyncio.run(gated_burst(cloud, auth, 5)))
        )
        thread.start()
        thread.join(timeout=5)
    assert results == [[200] * 5, [200] * 5]
    assert cloud.dcs_tokens == ["token-1"] * 5 + ["token-2"] * 5


@pytest.mark.parametrize("flavour", [pytest.param(f, id=f) for f in ("sync", "async")])
async def test_token_request_leaves_no_secret_in_the_history(
    loopback: tuple[str, Received], flavour: str
) -> None:
    """Over a real socket, the IAM step in response.history holds neither password nor token."""
    base, received = loopback
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
    assert dict(received[1][2])["X-Auth-Token"] == "loopback-token"
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
