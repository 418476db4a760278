"""The sandbox's own verifier of Huawei Cloud AK/SK signatures (SDK-HMAC-SHA256).

Written from the algorithm in DESIGN.md, independently of any client: the canonical
request is rebuilt from the request *as received* and the signature recomputed.

    canonical request = METHOD \\n URI \\n QUERY \\n HEADERS \\n signed;headers \\n PAYLOAD-HASH
    string to sign    = "SDK-HMAC-SHA256" \\n X-Sdk-Date \\n hex(sha256(canonical request))
    signature         = hex(hmac-sha256(secret key, string to sign))

>>> canonical_uri("/v2/p/migration-task/a%20b")
'/v2/p/migration-task/a%20b/'
>>> canonical_query("name=mig%201&limit=10&offset=0")
'limit=10&name=mig%201&offset=0'
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: How far `X-Sdk-Date` may be from the sandbox's clock, either way.
MAX_CLOCK_SKEW = timedelta(minutes=15)
#: A body that is not hashed: the SDK sends it for content types other than JSON.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_AUTHORIZATION = re.compile(
    rf"^{ALGORITHM}\s+Access=(?P<access>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)


class SignatureError(Exception):
    """The request's AK/SK signature is refused; `reason` says why (never a secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownAccessKey(SignatureError):
    """The signing access key is not one the sandbox knows."""


@dataclass(frozen=True)
class Authorization:
    """The parts of an `Authorization: SDK-HMAC-SHA256 ...` header."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    """Split an Authorization header; raises `SignatureError` if it is not SDK-HMAC-SHA256."""
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        msg = f"Authorization is not '{ALGORITHM} Access=..., SignedHeaders=..., Signature=...'"
        raise SignatureError(msg)
    headers = tuple(match["headers"].split(";"))
    return Authorization(match["access"], headers, match["signature"].lower())


def _encode(value: str) -> str:
    return quote(value, safe="~")


def canonical_uri(raw_path: str) -> str:
    """Each segment of the (decoded) path re-encoded with only `~` safe, and a trailing `/`."""
    uri = "/".join(_encode(segment) for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    """Sorted decoded (key, value) pairs, each re-encoded with only `~` safe."""
    # parse_qsl decodes `+` as a space, as form-encoding clients (httpx) mean it; the
    # official SDK never sends a bare `+`, so its requests are read the same either way.
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def payload_hash(body: bytes, declared: str | None) -> str:
    """The body's hash as signed: declared in `X-Sdk-Content-Sha256`, or computed."""
    if not body:
        # The SDK signs the empty hash for an empty body, whatever it declared.
        return EMPTY_SHA256
    actual = hashlib.sha256(body).hexdigest()
    if declared is None:
        return actual
    if declared == UNSIGNED_PAYLOAD:
        return declared
    if not hmac.compare_digest(declared.lower(), actual):
        msg = "X-Sdk-Content-Sha256 does not match the body"
        raise SignatureError(msg)
    return declared


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    body: bytes,
) -> str:
    """The canonical request of a received request; `headers` keys are lower-case."""
    lines = []
    for name in signed_headers:
        value = headers.get(name.lower())
        if value is None:
            msg = f"signed header {name!r} is missing from the request"
            raise SignatureError(msg)
        lines.append(f"{name}:{value.strip()}\n")
    digest = payload_hash(body, headers.get("x-sdk-content-sha256"))
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            "".join(lines),
            ";".join(signed_headers),
            digest,
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret_key: str, text: str) -> str:
    """hex(HMAC-SHA256(secret_key, text))."""
    return hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def check_date(value: str | None, now: datetime, max_skew: timedelta = MAX_CLOCK_SKEW) -> None:
    """Refuse a missing, unparseable or too distant `X-Sdk-Date`."""
    if value is None:
        msg = "X-Sdk-Date header is missing"
        raise SignatureError(msg)
    try:
        signed_at = datetime.strptime(value.strip(), DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        msg = f"X-Sdk-Date {value!r} is not {DATE_FORMAT}"
        raise SignatureError(msg) from None
    skew = abs(now - signed_at)
    if skew > max_skew:
        msg = f"X-Sdk-Date {value!r} is {skew} away from the server clock (at most {max_skew})"
        raise SignatureError(msg)


def verify_request(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> Authorization:
    """Check a request's signature; return its `Authorization` or raise `SignatureError`.

    `headers` maps lower-case names to values as received; `secret_for(access_key)` gives
    the secret key, or None for an unknown key.
    """
    value = headers.get("authorization")
    if value is None:
        msg = "Authorization header is missing"
        raise SignatureError(msg)
    auth = parse_authorization(value)
    if "x-sdk-date" not in auth.signed_headers:
        # An unsigned date could be replayed for ever.
        msg = "X-Sdk-Date must be one of the SignedHeaders"
        raise SignatureError(msg)
    check_date(headers.get("x-sdk-date"), now, max_skew)
    secret = secret_for(auth.access_key)
    if secret is None:
        msg = "unknown access key"
        raise UnknownAccessKey(msg)
    canonical = canonical_request(method, raw_path, raw_query, headers, auth.signed_headers, body)
    expected = signature(secret, string_to_sign(canonical, headers["x-sdk-date"].strip()))
    if not hmac.compare_digest(expected, auth.signature):
        msg = "signature does not match the request"
        raise SignatureError(msg)
    return auth


__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "EMPTY_SHA256",
    "MAX_CLOCK_SKEW",
    "UNSIGNED_PAYLOAD",
    "Authorization",
    "SignatureError",
    "UnknownAccessKey",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "check_date",
    "parse_authorization",
    "payload_hash",
    "signature",
    "string_to_sign",
    "verify_request",
]
