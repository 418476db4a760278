"""Helpers shared by the sandbox tests (no tests here): an in-process client, and AK/SK
signing by the official SDK (`huaweicloudsdkcore`, a test-only oracle)."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import httpx
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

from sandbox import SandboxApp, Scenario

#: The wall clock the tests give the sandbox and the signer (X-Sdk-Date is checked against it).
NOW = datetime(2026, 5, 10, 12, 0, 0, tzinfo=timezone.utc)
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
HOST = "127.0.0.1:8000"


def asgi_client(app: SandboxApp) -> httpx.AsyncClient:
    """An httpx client talking to the app in-process (no socket, no thread)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=f"http://{HOST}")


def token_headers(scenario: Scenario) -> dict[str, str]:
    assert scenario.token is not None
    return {"X-Auth-Token": scenario.token}


def task_url(scenario: Scenario, task_id: str, suffix: str = "") -> str:
    return f"/v2/{scenario.project_id}/migration-task/{task_id}{suffix}"


@dataclass(frozen=True)
class Signed:
    """A request as the server receives it, after the official SDK signed it."""

    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes


def sdk_sign(
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    access_key: str,
    secret_key: str,
    project_id: str,
    security_token: str | None = None,
    date: datetime = NOW,
    host: str = HOST,
) -> Signed:
    """Sign with huaweicloudsdkcore exactly as its clients do, and return what goes on the wire."""
    header_params = {
        "Content-Type": "application/json",
        "User-Agent": "huaweicloud-usdk-python/3.0",
        "X-Sdk-Date": date.strftime(SDK_DATE_FORMAT),
        **(headers or {}),
    }
    request = SdkRequest(
        method=method,
        schema="http",
        host=host,
        resource_path=path,
        query_params=list(query or []),
        header_params=header_params,
        body=body,
    )
    credentials = BasicCredentials(access_key, secret_key, project_id)
    if security_token is not None:
        credentials.with_security_token(security_token)
    signed = credentials.sign_request(request)
    # The SDK hands `requests` latin-1 strings of the UTF-8 bytes; the server sees the bytes.
    wire = {
        name.lower(): str(value).encode("latin-1").decode("utf-8")
        for name, value in signed.header_params.items()
    }
    return Signed(method, path, signed.uri.partition("?")[2], wire, body)


@dataclass
class SdkSigningAuth(httpx.Auth):
    """httpx auth that signs each request with the official SDK's signer."""

    access_key: str
    secret_key: str
    project_id: str
    security_token: str | None = None
    date: datetime = NOW
    extra_headers: dict[str, str] = field(default_factory=dict)

    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        query = parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
        signed = sdk_sign(
            request.method,
            request.url.raw_path.split(b"?")[0].decode("ascii"),
            query=query,
            body=request.content,
            headers={"Host": request.url.netloc.decode("ascii"), **self.extra_headers},
            access_key=self.access_key,
            secret_key=self.secret_key,
            project_id=self.project_id,
            security_token=self.security_token,
            date=self.date,
            host=request.url.netloc.decode("ascii"),
        )
        # Send what the SDK sends: its canonical query string and every header it signed.
        raw_path = signed.raw_path + (f"?{signed.raw_query}" if signed.raw_query else "")
        request.url = request.url.copy_with(raw_path=raw_path.encode("ascii"))
        for name, value in signed.headers.items():
            request.headers[name] = value
        yield request


def sdk_auth(scenario: Scenario, **overrides: Any) -> SdkSigningAuth:
    """SDK signing with the scenario's permanent key (any field overridable)."""
    assert scenario.access_key is not None
    assert scenario.secret_key is not None
    auth = SdkSigningAuth(scenario.access_key, scenario.secret_key, scenario.project_id)
    return replace(auth, **overrides)
