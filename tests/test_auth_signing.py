"""AkSkAuth: signatures byte-identical to the official SDK's, and checkable by a server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from datetime import datetime, timedelta, timezone
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
    canonical_request,
    sign_request,
    signed_header_names,
    string_to_sign,
)
from tests.conftest import StubDcs
from tests.fakes import CannedReplies, FakeDcs

AK, SK, STS_TOKEN = "HWTESTAK0123456789AB", "sk-0123456789-test-secret", "sts-temporary-token"
PROJECT = "0504201040a34d4a83e1e3f1e2b0c0de"
ENDPOINT = "https://dcs.ap-southeast-1.myhuaweicloud.com"
NOW, SDK_DATE = datetime(2026, 1, 15, 8, 30, tzinfo=timezone.utc), "20260115T083000Z"
TASK = f"/v2/{PROJECT}/migration-task/a7c1b6f0-task"
TASKS = f"/v2/{PROJECT}/migration-tasks"
UNSIGNED = {"authorization", "connection"}  # the signature itself, and hop-by-hop Connection


def capture(auth: httpx.Auth, **options: Any) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client, and the requests its transport gets, each as it would go on the wire."""
    replies = CannedReplies(httpx.Response(200, json={}))
    client = httpx.Client(transport=httpx.MockTransport(replies), auth=auth, **options)
    return client, replies.requests


# --- AK/SK against the official SDK ---------------------------------------------------------


def send_signed(method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Request:
    """Send one request through a real client with AkSkAuth; return what the transport saw."""
    sts = SecretStr(token) if token else None
    auth = AkSkAuth(AK, SecretStr(SK), project_id=PROJECT, security_token=sts, clock=lambda: NOW)
    client, seen = capture(auth, base_url=ENDPOINT)
    with client:
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
    client, seen = capture(AkSkAuth(AK, SecretStr(SK), project_id=PROJECT, clock=lambda: NOW))
    with client:
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


def server_accepts(method: str, target: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent verifier, written from Huawei's documentation only."""
    received = {name.lower(): value.strip() for name, value in headers.items()}
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


async def test_a_server_verifies_what_it_receives(stub_dcs: StubDcs) -> None:
    """Over a real socket (sync and async clients), a server recomputes the same signature."""
    stub_dcs.handler = FakeDcs().stub_handler
    base, received = stub_dcs.url, stub_dcs.requests
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
