"""The sandbox's own AK/SK verifier against the official SDK's signer (the oracle)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from sandbox.signing import (
    SignatureError,
    canonical_query,
    canonical_uri,
    parse_authorization,
    verify_request,
)
from tests.test_sandbox_support import NOW, SDK_DATE_FORMAT, Signed, sdk_sign

AK = "HPUAEXAMPLEKEY000001"
SK = "example-secret-key-for-the-verifier-tests0"
TEMP_AK = "TEMPEXAMPLEKEY000002"
TEMP_SK = "temporary-secret-key-for-the-tests-00000"
PROJECT = "0605767f8d00d5a52f4bc01f1b2d5ac5"
TASKS = f"/v2/{PROJECT}/migration-tasks"
TASK = f"/v2/{PROJECT}/migration-task/a276c1ffa0a54c2597fc824b917db317"
SECRETS = {AK: SK, TEMP_AK: TEMP_SK}


def verify(signed: Signed, **overrides: object) -> str:
    """Run the sandbox's verifier on a request as received; return the access key."""
    arguments: dict[str, object] = {
        "method": signed.method,
        "raw_path": signed.raw_path,
        "raw_query": signed.raw_query,
        "headers": signed.headers,
        "body": signed.body,
        "secret_for": SECRETS.get,
        "now": NOW,
        **overrides,
    }
    return verify_request(**arguments).access_key  # type: ignore[arg-type]


def sign(method: str = "GET", path: str = TASK, **kwargs: object) -> Signed:
    values: dict[str, object] = {"access_key": AK, "secret_key": SK, "project_id": PROJECT}
    values.update(kwargs)
    return sdk_sign(method, path, **values)  # type: ignore[arg-type]


EXCHANGE_BODY = json.dumps({"exchanged_ip": ["192.168.1.2", "192.168.1.3"]}).encode()

ACCEPTED = [
    pytest.param(lambda: sign(), id="get-no-query"),
    pytest.param(
        lambda: sign(path=TASKS, query=[("offset", "0"), ("limit", "10"), ("name", "migration1")]),
        id="get-query",
    ),
    pytest.param(
        lambda: sign(path=TASKS, query=[("name", "mig 1/ä~*+&="), ("limit", "5")]),
        id="get-query-needing-encoding",
    ),
    pytest.param(lambda: sign(path=TASKS, query=[("name", "")]), id="get-empty-query-value"),
    pytest.param(lambda: sign(path=f"/v2/{PROJECT}/migration-task/a%20b~c"), id="encoded-path"),
    pytest.param(
        lambda: sign("POST", f"{TASK}/exchange-ip", body=EXCHANGE_BODY), id="post-json-body"
    ),
    pytest.param(lambda: sign("POST", f"{TASK}/stop"), id="post-empty-body"),
    pytest.param(
        lambda: sign(access_key=TEMP_AK, secret_key=TEMP_SK, security_token="sts-token-1"),
        id="temporary-key-with-security-token",
    ),
    pytest.param(lambda: sign(headers={"X-Custom": "non-ASCII: é"}), id="utf8-header-value"),
    pytest.param(lambda: sign(date=NOW - timedelta(minutes=15)), id="date-exactly-15-minutes-old"),
]


@pytest.mark.parametrize("make", ACCEPTED)
def test_sdk_signed_requests_are_accepted(make: Callable[[], Signed]) -> None:
    """Every request the official SDK signs passes the sandbox's independent verifier."""
    signed = make()
    assert verify(signed) in SECRETS


def test_temporary_key_signs_its_security_token() -> None:
    """The SDK lists X-Security-Token among the signed headers, so changing it is refused."""
    signed = sign(access_key=TEMP_AK, secret_key=TEMP_SK, security_token="sts-token-1")
    assert "x-security-token" in parse_authorization(signed.headers["authorization"]).signed_headers
    tampered = replace(signed, headers={**signed.headers, "x-security-token": "sts-token-2"})
    with pytest.raises(SignatureError, match="signature does not match"):
        verify(tampered)


def _with_header(signed: Signed, name: str, value: str) -> Signed:
    return replace(signed, headers={**signed.headers, name: value})


def _without_header(signed: Signed, name: str) -> Signed:
    return replace(signed, headers={k: v for k, v in signed.headers.items() if k != name})


QUERY = sign(path=TASKS, query=[("name", "migration1"), ("offset", "0")])
POST = sign("POST", f"{TASK}/exchange-ip", body=EXCHANGE_BODY)
GET = sign(headers={"X-Custom": "value"})

TAMPERED = [
    pytest.param(replace(GET, raw_path=GET.raw_path[:-1] + "8"), "does not match", id="path-byte"),
    pytest.param(
        replace(GET, raw_path=GET.raw_path + "/stats"), "does not match", id="path-longer"
    ),
    pytest.param(replace(GET, method="POST"), "does not match", id="method"),
    pytest.param(
        replace(QUERY, raw_query=QUERY.raw_query.replace("migration1", "migration2")),
        "does not match",
        id="query-value",
    ),
    pytest.param(
        replace(QUERY, raw_query=QUERY.raw_query + "&limit=1"), "does not match", id="query-added"
    ),
    pytest.param(replace(QUERY, raw_query=""), "does not match", id="query-dropped"),
    pytest.param(
        replace(POST, body=POST.body.replace(b"192.168.1.3", b"192.168.1.4")),
        "does not match",
        id="body-byte",
    ),
    pytest.param(replace(POST, body=b""), "does not match", id="body-dropped"),
    pytest.param(_with_header(GET, "x-custom", "other"), "does not match", id="signed-header"),
    pytest.param(
        _with_header(GET, "x-project-id", "f" * 32), "does not match", id="signed-project-id"
    ),
    pytest.param(_with_header(GET, "host", "evil:80"), "does not match", id="signed-host"),
    pytest.param(_without_header(GET, "x-custom"), "'x-custom' is missing", id="header-dropped"),
    pytest.param(_without_header(GET, "x-sdk-date"), "X-Sdk-Date header is missing", id="no-date"),
    pytest.param(
        _with_header(GET, "x-sdk-date", "2026-05-10 12:00:00"), "is not", id="unparseable-date"
    ),
    pytest.param(
        _with_header(GET, "authorization", "Basic dXNlcjpwYXNz"),
        "Authorization is not",
        id="not-sdk-hmac",
    ),
    pytest.param(_without_header(GET, "authorization"), "missing", id="no-authorization"),
    pytest.param(
        _with_header(POST, "x-sdk-content-sha256", "0" * 64),
        "does not match the body",
        id="declared-payload-hash-wrong",
    ),
]


@pytest.mark.parametrize(("signed", "reason"), TAMPERED)
def test_tampered_requests_are_rejected(signed: Signed, reason: str) -> None:
    """Changing any signed part of an SDK-signed request (or dropping it) is refused."""
    with pytest.raises(SignatureError, match=reason):
        verify(signed)


@pytest.mark.parametrize(
    "offset",
    [
        pytest.param(timedelta(minutes=16), id="16-min-old"),
        pytest.param(-timedelta(minutes=16), id="16-min-ahead"),
    ],
)
def test_a_date_16_minutes_off_is_rejected(offset: timedelta) -> None:
    """X-Sdk-Date more than 15 minutes from the server clock is refused, either way."""
    signed = sign(date=NOW - offset)
    with pytest.raises(SignatureError, match="away from the server clock"):
        verify(signed)


@pytest.mark.parametrize(
    ("secrets", "reason"),
    [
        pytest.param({}, "unknown access key", id="unknown-access-key"),
        pytest.param({AK: "not-the-secret"}, "does not match", id="wrong-secret"),
    ],
)
def test_unknown_key_or_wrong_secret_is_rejected(secrets: dict[str, str], reason: str) -> None:
    """A key the sandbox does not know, or a signature made with another secret, is refused."""
    with pytest.raises(SignatureError, match=reason):
        verify(GET, secret_for=secrets.get)


def test_header_values_are_trimmed_as_received() -> None:
    """Spaces around a signed header's value on the wire do not break the signature."""
    assert verify(_with_header(GET, "x-custom", "  value\t")) == AK


def test_unsigned_date_is_rejected() -> None:
    """A signature that does not cover X-Sdk-Date could be replayed: refused."""
    auth = parse_authorization(GET.headers["authorization"])
    headers = ";".join(name for name in auth.signed_headers if name != "x-sdk-date")
    value = f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={headers}, Signature={auth.signature}"
    with pytest.raises(SignatureError, match="must be one of the SignedHeaders"):
        verify(_with_header(GET, "authorization", value))


def test_unsigned_payload_is_accepted_when_declared() -> None:
    """`X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` (the SDK's choice for non-JSON bodies) works."""
    signed = sign(
        "POST", f"{TASK}/stop", body=b"raw", headers={"Content-Type": "application/octet-stream"}
    )
    assert signed.headers["x-sdk-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert verify(signed) == AK


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        pytest.param("/v2/p/migration-tasks", "/v2/p/migration-tasks/", id="adds-slash"),
        pytest.param("/v2/p/", "/v2/p/", id="keeps-slash"),
        pytest.param("/a%20b/c%7Ed", "/a%20b/c~d/", id="re-encodes"),
    ],
)
def test_canonical_uri(raw_path: str, expected: str) -> None:
    """The canonical URI re-encodes each segment with only `~` safe and ends in `/`."""
    assert canonical_uri(raw_path) == expected


def test_canonical_query_sorts_and_encodes() -> None:
    """Query pairs are sorted by key then value and encoded with only `~` safe."""
    assert canonical_query("b=2&a=x%2Fy&a=1&c=%7E+") == "a=1&a=x%2Fy&b=2&c=~%20"


def test_sdk_date_format_matches() -> None:
    """The date format the tests sign with is the SDK's (a guard on the helper itself)."""
    assert sign().headers["x-sdk-date"] == NOW.strftime(SDK_DATE_FORMAT)
