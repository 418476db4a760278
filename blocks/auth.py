"""How a request proves who sent it: three `httpx.Auth` classes for `Client` and `AsyncClient`.

- `TokenAuth`: a ready IAM token in `X-Auth-Token`.
- `AkSkAuth`: `SDK-HMAC-SHA256` request signing with an access key pair (optionally a temporary
  one, with its `X-Security-Token`), byte-identical to the official SDK's signer.
- `IamPasswordAuth`: exchanges an IAM user's password for a project-scoped token, caches it,
  refreshes it before it expires and once after a 401.

The signing itself is a handful of pure functions (`canonical_request`, `string_to_sign`,
`sign_request`, ...) so that a server, or a test, can recompute a signature step by step.

Example:

    >>> import httpx
    >>> from pydantic import SecretStr
    >>> auth = AkSkAuth("AKEXAMPLE", SecretStr("sk"), project_id="0123456789abcdef")
    >>> with httpx.Client(base_url="https://dcs.ap-southeast-1.myhuaweicloud.com", auth=auth):
    ...     pass
    >>> auth
    AkSkAuth(access_key='AKEXAMPLE', project_id='0123456789abcdef', security_token=None)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import TypeAlias
from urllib.parse import parse_qsl, quote, unquote

import httpx
from pydantic import SecretStr

from blocks.endpoint import check_endpoint
from blocks.errors import DcsAuthError, DcsValidationError, error_from_response
from blocks.redaction import attach_log_filters

ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

#: Headers that belong to one connection, not to the request: HTTP/2 drops them (h2 strips
#: `connection`, httpcore turns `host` into `:authority` but keeps its value) and proxies may
#: rewrite them, so a server could never recompute a signature over them. The SDK never signs
#: them either: `requests` adds `Connection` after the SDK has signed.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

HeadersLike: TypeAlias = httpx.Headers | Mapping[str, str] | Sequence[tuple[str, str]]
Clock: TypeAlias = Callable[[], datetime]

_IAM_OPERATION = "iam_get_token"
_ASSUMED_TOKEN_LIFETIME = timedelta(hours=23)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _as_utc(moment: datetime) -> datetime:
    # A naive datetime from an injected clock is taken to be UTC, never local time.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _require(value: str, what: str) -> str:
    if not value or not value.strip():
        msg = f"{what} must not be empty"
        raise DcsValidationError(msg)
    return value


def _text(raw: bytes) -> str:
    # surrogateescape round-trips any byte, so what is hashed is exactly what is sent.
    return raw.decode("utf-8", "surrogateescape")


def _encode(text: str) -> str:
    return quote(text, safe="~")


# --- SDK-HMAC-SHA256: pure functions --------------------------------------------------------


def sdk_date(moment: datetime) -> str:
    """The `X-Sdk-Date` value for a moment: UTC, `%Y%m%dT%H%M%SZ`."""
    return _as_utc(moment).strftime(SDK_DATE_FORMAT)


def canonical_uri(raw_path: str) -> str:
    """Each path segment percent-encoded with only `~` safe, with a trailing `/` added."""
    # Like the SDK: decode first, so `%2F` in a segment becomes a separator (the client
    # refuses ids with `/` before any request, so this never changes a real signature).
    uri = "/".join(_encode(segment) for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    """Sorted (key, value) pairs, both percent-encoded with only `~` safe, joined with `&`."""
    # Sorted on the decoded pairs, as the SDK sorts its (key, value) tuples; `+` is a space
    # (that is how httpx encodes one, and a literal `+` arrives as `%2B`).
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def _header_items(headers: HeadersLike) -> list[tuple[str, str]]:
    raw = headers.raw if isinstance(headers, httpx.Headers) else httpx.Headers(headers).raw
    return [(_text(name).lower(), _text(value)) for name, value in raw]


def is_signed_header(name: str) -> bool:
    """Whether a header takes part in the signature: not `_`, not hop-by-hop, not the signature."""
    name = name.lower()
    return "_" not in name and name not in HOP_BY_HOP_HEADERS and name != "authorization"


def signed_header_names(headers: HeadersLike) -> list[str]:
    """The lower-cased, sorted names of the headers that are signed."""
    return sorted({name for name, _ in _header_items(headers) if is_signed_header(name)})


def _header_value(headers: HeadersLike, name: str) -> str | None:
    values = [value for key, value in _header_items(headers) if key == name]
    return ", ".join(values) if values else None


def payload_hash(headers: HeadersLike, body: bytes) -> str:
    """Hex SHA-256 of the body; `X-Sdk-Content-Sha256` stands in for it when present."""
    if not body:
        return EMPTY_BODY_SHA256
    declared = _header_value(headers, "x-sdk-content-sha256")
    return declared or hashlib.sha256(body).hexdigest()


def canonical_request(method: str, url: httpx.URL | str, headers: HeadersLike, body: bytes) -> str:
    """`METHOD\\nURI\\nQUERY\\nHEADERS\\nsigned;list\\nPAYLOAD-HASH` for a request as sent."""
    url = httpx.URL(url)
    raw_path, _, raw_query = _text(url.raw_path).partition("?")
    names = signed_header_names(headers)
    values: dict[str, list[str]] = {}
    for name, value in _header_items(headers):
        values.setdefault(name, []).append(value.strip())
    canonical_headers = "".join(f"{name}:{', '.join(values[name])}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            canonical_headers,
            ";".join(names),
            payload_hash(headers, body),
        ]
    )


def string_to_sign(canonical: str, date: str) -> str:
    """`SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex sha256(canonical request)}`."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{date}\n{digest}"


def sign_request(
    method: str,
    url: httpx.URL | str,
    headers: HeadersLike,
    body: bytes,
    access_key: str,
    secret_key: str,
) -> tuple[str, list[str]]:
    """The `Authorization` value and the signed header names for a request as it will be sent.

    `headers` must already hold everything that is sent, `X-Sdk-Date` included: the date
    signed is the one in the header, as the server reads it.

        >>> sign_request(
        ...     "GET", "https://dcs.example.com/v2/p/migration-tasks",
        ...     {"Host": "dcs.example.com", "X-Sdk-Date": "20260101T000000Z"}, b"", "AK", "SK",
        ... )[1]
        ['host', 'x-sdk-date']
    """
    date = _header_value(headers, "x-sdk-date")
    if date is None:
        msg = "cannot sign a request without an X-Sdk-Date header"
        raise DcsValidationError(msg)
    canonical = canonical_request(method, url, headers, body)
    signature = hmac.new(
        secret_key.encode(), string_to_sign(canonical, date).encode(), hashlib.sha256
    ).hexdigest()
    names = signed_header_names(headers)
    authorization = (
        f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return authorization, names


# --- The auth classes ------------------------------------------------------------------------


class TokenAuth(httpx.Auth):
    """Sends a ready IAM token in `X-Auth-Token` (a token lives 24 h: fine for a one-off run)."""

    def __init__(self, token: SecretStr) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Auth-Token"] = self.token.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return "TokenAuth(token=SecretStr('**********'))"


class AkSkAuth(httpx.Auth):
    """Signs each request with an access key pair (`SDK-HMAC-SHA256`), as the official SDK does.

    Adds `X-Sdk-Date`, `Host`, `X-Project-Id` (and `X-Security-Token` for a temporary key),
    rewrites the query string into its canonical form (as the SDK sends it, so the server
    reads exactly the pairs that were signed) and signs every end-to-end header of the
    request as it will be sent. A signature is valid for 15 minutes around the server's clock.
    """

    requires_request_body = True

    def __init__(
        self,
        access_key: str,
        secret_key: SecretStr,
        *,
        project_id: str,
        security_token: SecretStr | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.access_key = _require(access_key, "access_key")
        _require(secret_key.get_secret_value(), "secret_key")
        self.secret_key = secret_key
        self.project_id = _require(project_id, "project_id")
        self.security_token = security_token
        self._clock = clock or _utc_now

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add the signing headers and the `Authorization` header to `request`, in place."""
        headers = request.headers
        headers["X-Sdk-Date"] = sdk_date(self._clock())
        if "host" not in headers:
            headers["Host"] = request.url.netloc.decode("ascii")
        headers["X-Project-Id"] = self.project_id
        if self.security_token is not None:
            headers["X-Security-Token"] = self.security_token.get_secret_value()
        content_type = headers.get("content-type")
        if content_type and not content_type.startswith(("application/json", "application/bson")):
            # The SDK's rule: a body that is not JSON is not hashed, and says so.
            headers["X-Sdk-Content-Sha256"] = UNSIGNED_PAYLOAD
        raw_query = _text(request.url.query)
        if raw_query:
            request.url = request.url.copy_with(query=canonical_query(raw_query).encode("ascii"))
        authorization, _ = sign_request(
            request.method,
            request.url,
            headers,
            request.content,
            self.access_key,
            self.secret_key.get_secret_value(),
        )
        headers["Authorization"] = authorization

    def __repr__(self) -> str:
        token = "None" if self.security_token is None else "SecretStr('**********')"
        return (
            f"AkSkAuth(access_key={self.access_key!r}, project_id={self.project_id!r}, "
            f"security_token={token})"
        )


@dataclass(frozen=True, eq=False)
class _Token:
    value: SecretStr
    expires_at: datetime
    refresh_at: datetime


class _OnceBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body that forgets itself once sent.

    The token request travels through the client, so it ends up in `response.history`; this
    way no copy of the password stays there.
    """

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def _take(self) -> bytes:
        body, self._body = self._body, None
        return body or b""

    def __iter__(self) -> Iterator[bytes]:
        yield self._take()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._take()


def _parse_expiry(body: bytes) -> datetime | None:
    try:
        data = json.loads(body)
        text = data["token"]["expires_at"]
        if not isinstance(text, str):
            return None
        moment = _as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    # RecursionError: JSON nested too deeply; OverflowError: a date with no UTC equivalent.
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError):
        return None
    return moment


class IamPasswordAuth(httpx.Auth):
    """Gets a project-scoped IAM token with a user's password and sends it in `X-Auth-Token`.

    The token request is sent through the same client (and transport) as the DCS request.
    The token is cached and shared by every request, refreshed `refresh_before_seconds`
    before it expires, and refreshed once when DCS answers 401 (then the request is sent
    again, once). Concurrent requests that find no valid token wait for a single token
    request: one for all threads on the sync path, one per event loop on the async path
    (asyncio only). A copy or unpickled instance starts without a token.
    """

    requires_request_body = True  # the body must be replayable for the resend after a 401

    def __init__(
        self,
        username: str,
        password: SecretStr,
        domain_name: str,
        *,
        project_id: str,
        iam_endpoint: str,
        refresh_before_seconds: float = 600,
        clock: Clock | None = None,
    ) -> None:
        self.username = _require(username, "username")
        self.password = password
        self.domain_name = _require(domain_name, "domain_name")
        self.project_id = _require(project_id, "project_id")
        self.iam_endpoint = check_endpoint("iam_endpoint", _require(iam_endpoint, "iam_endpoint"))
        if refresh_before_seconds < 0:
            msg = f"refresh_before_seconds must be >= 0, got {refresh_before_seconds!r}"
            raise DcsValidationError(msg)
        self.refresh_before = timedelta(seconds=refresh_before_seconds)
        self._clock = clock or _utc_now
        self._start_afresh()

    def _start_afresh(self) -> None:
        self._token: _Token | None = None
        self._thread_lock = threading.Lock()
        # asyncio locks belong to one event loop; one auth object may outlive several loops.
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_locks_guard = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        # Locks cannot be copied, and a live token should not travel: a copy starts afresh.
        fresh = ("_token", "_thread_lock", "_loop_locks", "_loop_locks_guard")
        return {k: v for k, v in self.__dict__.items() if k not in fresh}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._start_afresh()

    # -- shared logic, no I/O

    def _usable_token(self, stale: _Token | None) -> _Token | None:
        token = self._token
        if token is None or token is stale or _as_utc(self._clock()) >= token.refresh_at:
            return None
        return token

    def _discard(self, stale: _Token | None) -> None:
        # Only the token this request used: another request may already have replaced it.
        if stale is not None and self._token is stale:
            self._token = None

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        # Its answer carries the token in a header, which httpcore's DEBUG trace prints.
        attach_log_filters()
        body = json.dumps(
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": self.username,
                                "password": self.password.get_secret_value(),
                                "domain": {"name": self.domain_name},
                            }
                        },
                    },
                    "scope": {"project": {"id": self.project_id}},
                }
            }
        ).encode()
        url = httpx.URL(f"{self.iam_endpoint}/v3/auth/tokens")
        return httpx.Request(
            "POST",
            url,
            headers={
                # httpx adds Host only to requests it encodes itself, not to a given stream.
                "Host": url.netloc.decode("ascii"),
                "Content-Type": "application/json;charset=utf8",
                "Accept": "application/json",
                "Content-Length": str(len(body)),
            },
            stream=_OnceBody(body),
            # A request built here gets no timeout from the client: borrow the DCS request's.
            extensions={k: v for k, v in request.extensions.items() if k == "timeout"},
        )

    def _who(self) -> str:
        return f"IAM user {self.username!r} in domain {self.domain_name!r}"

    def _accept(self, response: httpx.Response) -> _Token:
        if not response.is_success:
            error = error_from_response(
                response.status_code,
                response.content,
                response.headers,
                operation=_IAM_OPERATION,
                project_id=self.project_id,
            )
            if not error.transient:
                # Any refusal that is not "try again later" is a credentials problem.
                error = DcsAuthError(
                    str(error),
                    status_code=error.status_code,
                    operation=error.operation,
                    project_id=error.project_id,
                    error_code=error.error_code,
                    error_msg=error.error_msg,
                    request_id=error.request_id,
                )
            error.args = (f"IAM refused a token to {self._who()} at {self.iam_endpoint}: {error}",)
            raise error
        value = response.headers.get("x-subject-token")
        if not value:
            request_id = response.headers.get("x-request-id")
            msg = (
                f"IAM answered HTTP {response.status_code} to the token request for "
                f"{self._who()} at {self.iam_endpoint} without an X-Subject-Token header "
                f"(request {request_id})"
            )
            raise DcsAuthError(
                msg,
                status_code=response.status_code,
                operation=_IAM_OPERATION,
                project_id=self.project_id,
                request_id=request_id,
            )
        # The response stays in `response.history`: keep the token out of it.
        del response.headers["x-subject-token"]
        now = _as_utc(self._clock())
        expires_at = _parse_expiry(response.content) or now + _ASSUMED_TOKEN_LIFETIME
        # A token that lives less than twice the margin is refreshed half-way, not on every call.
        margin = min(self.refresh_before, max(expires_at - now, timedelta(0)) / 2)
        token = _Token(SecretStr(value), expires_at, expires_at - margin)
        self._token = token
        return token

    @staticmethod
    def _apply(request: httpx.Request, token: _Token) -> None:
        request.headers["X-Auth-Token"] = token.value.get_secret_value()

    # -- the sync and async twins: the same steps, each with its own lock

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        stale: _Token | None = None
        for _ in range(2):  # the request, then at most one resend after a 401
            token = self._usable_token(stale)
            if token is None:
                with self._thread_lock:
                    self._discard(stale)
                    token = self._usable_token(stale)
                    if token is None:
                        iam_response = yield self._token_request(request)
                        iam_response.read()
                        token = self._accept(iam_response)
            self._apply(request, token)
            response = yield request
            if response.status_code != HTTPStatus.UNAUTHORIZED:
                return
            stale = token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        stale: _Token | None = None
        for _ in range(2):  # the request, then at most one resend after a 401
            token = self._usable_token(stale)
            if token is None:
                async with self._loop_lock():
                    self._discard(stale)
                    token = self._usable_token(stale)
                    if token is None:
                        iam_response = yield self._token_request(request)
                        await iam_response.aread()
                        token = self._accept(iam_response)
            self._apply(request, token)
            response = yield request
            if response.status_code != HTTPStatus.UNAUTHORIZED:
                return
            stale = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        msg = "IamPasswordAuth runs only inside httpx.Client or httpx.AsyncClient"
        raise NotImplementedError(msg)
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._loop_locks_guard:
            lock = self._loop_locks.get(loop)
            if lock is None:
                lock = self._loop_locks[loop] = asyncio.Lock()
            return lock

    def __repr__(self) -> str:
        return (
            f"IamPasswordAuth(username={self.username!r}, domain_name={self.domain_name!r}, "
            f"project_id={self.project_id!r}, iam_endpoint={self.iam_endpoint!r})"
        )


__all__ = [
    "ALGORITHM",
    "HOP_BY_HOP_HEADERS",
    "AkSkAuth",
    "IamPasswordAuth",
    "TokenAuth",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "is_signed_header",
    "payload_hash",
    "sdk_date",
    "sign_request",
    "signed_header_names",
    "string_to_sign",
]
