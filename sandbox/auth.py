"""Who is calling: an IAM token (`X-Auth-Token`) or an AK/SK signature, as DCS checks them.

>>> from sandbox.clock import ManualClock
>>> from sandbox.scenario import Scenario
>>> scenario = Scenario()
>>> auth = Authenticator(scenario, TokenStore(ManualClock()))
>>> auth.authenticate(method="GET", raw_path="/", raw_query="", body=b"",
...                   headers={"x-auth-token": scenario.token or ""})
'token'
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import datetime

from sandbox.clock import utc_now
from sandbox.iam import TokenStore
from sandbox.scenario import Scenario
from sandbox.signing import SignatureError, verify_request
from sandbox.state import AuthKind

#: 401 codes: a token problem, an AK/SK problem. 403: the project is not the caller's.
BAD_TOKEN = "DCS.1001"  # noqa: S105 (an error code, not a secret)
BAD_SIGNATURE = "DCS.1002"
WRONG_PROJECT = "DCS.2003"


class AuthRefused(Exception):
    """A request refused before it reaches DCS: status, DCS code, message (never a secret)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Authenticator:
    """Checks a request's credentials against a scenario's and the tokens issued so far."""

    def __init__(
        self,
        scenario: Scenario,
        tokens: TokenStore,
        utc_now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._scenario = scenario
        self._tokens = tokens
        self._utc_now = utc_now

    def authenticate(
        self,
        *,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> AuthKind:
        """The kind of credentials that let this request in, or raise `AuthRefused`."""
        token = headers.get("x-auth-token")
        if token is not None:
            return self._token(token.strip())
        if "authorization" in headers:
            return self._signature(method, raw_path, raw_query, headers, body)
        raise AuthRefused(401, BAD_TOKEN, "no X-Auth-Token or Authorization header")

    def _token(self, value: str) -> AuthKind:
        fixed = self._scenario.token
        if fixed is not None and hmac.compare_digest(value.encode("utf-8"), fixed.encode("utf-8")):
            return "token"
        issued = self._tokens.get(value)
        if issued is None:
            raise AuthRefused(401, BAD_TOKEN, "the token is not valid")
        if self._tokens.expired(issued):
            raise AuthRefused(401, BAD_TOKEN, "the token has expired")
        return "iam_token"

    def _secret_for(self, access_key: str) -> str | None:
        if access_key == self._scenario.access_key:
            return self._scenario.secret_key
        for key in self._scenario.temporary_keys:
            if key.access_key == access_key:
                return key.secret_key
        return None

    def _signature(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> AuthKind:
        try:
            auth = verify_request(
                method=method,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=headers,
                body=body,
                secret_for=self._secret_for,
                now=self._utc_now(),
            )
        except SignatureError as error:
            raise AuthRefused(
                401, BAD_SIGNATURE, f"AK/SK authentication failed: {error.reason}"
            ) from None
        kind: AuthKind = "aksk"
        temporary = next(
            (key for key in self._scenario.temporary_keys if key.access_key == auth.access_key),
            None,
        )
        if temporary is not None:
            sent = headers.get("x-security-token")
            if sent is None or "x-security-token" not in auth.signed_headers:
                msg = "a temporary access key needs a signed X-Security-Token"
                raise AuthRefused(401, BAD_SIGNATURE, msg)
            if not hmac.compare_digest(sent.strip().encode(), temporary.security_token.encode()):
                raise AuthRefused(
                    401, BAD_SIGNATURE, "the security token does not match the access key"
                )
            kind = "temporary_aksk"
        project_id = headers.get("x-project-id")
        if project_id is None:
            raise AuthRefused(401, BAD_SIGNATURE, "X-Project-Id header is missing")
        if project_id.strip() != self._scenario.project_id:
            raise AuthRefused(403, WRONG_PROJECT, f"no access to project {project_id.strip()!r}")
        return kind


__all__ = ["BAD_SIGNATURE", "BAD_TOKEN", "WRONG_PROJECT", "AuthRefused", "Authenticator"]
