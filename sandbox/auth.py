"""Who is calling: an IAM token (`X-Auth-Token`) or an AK/SK signature, as DCS checks them.

Two services refuse a request, each in its own words. DCS checks tokens and answers with its
own codes and body: 401 DCS.1001 invalid token, DCS.1002 token expired, DCS.1003 no token,
DCS.1004 project does not match the token; 403 DCS.2003 no permission (DCS's error-code
table, e.g. opentelekomcloud-docs/distributed-cache-service, api-ref/source/appendix/
error_codes.rst). The API gateway in front checks AK/SK signatures and refuses them with 401
APIGW.0301 and a body of `{error_msg, error_code, request_id}` whose message starts
"Incorrect IAM authentication information: " (Huawei's API Request Signing Guide, FAQ
"Common Errors Related to IAM Authentication Information").

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
from sandbox.signing import SignatureError, UnknownAccessKey, verify_request
from sandbox.state import AuthKind

INVALID_TOKEN = "DCS.1001"  # noqa: S105 (an error code, not a secret)
EXPIRED_TOKEN = "DCS.1002"  # noqa: S105
NO_TOKEN = "DCS.1003"  # noqa: S105
TOKEN_PROJECT_MISMATCH = "DCS.1004"  # noqa: S105
WRONG_PROJECT = "DCS.2003"
#: The API gateway's "Incorrect IAM authentication information".
GATEWAY_AUTH_REFUSED = "APIGW.0301"
_GATEWAY_PREFIX = "Incorrect IAM authentication information: "


class AuthRefused(Exception):
    """A request refused before it reaches DCS: status, DCS code, message (never a secret)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class GatewayRefused(AuthRefused):
    """The API gateway refuses the AK/SK authentication: 401 APIGW.0301, gateway-shaped body."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, GATEWAY_AUTH_REFUSED, _GATEWAY_PREFIX + detail)


def _signature_refusal(error: SignatureError) -> GatewayRefused:
    if isinstance(error, UnknownAccessKey):
        # The gateway masks the access key it could not find.
        return GatewayRefused("Get secretKey failed,ak:******,err:ak not exist")
    return GatewayRefused(f"verify aksk signature fail, {error.reason}")


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
        raise AuthRefused(401, NO_TOKEN, "no X-Auth-Token or Authorization header")

    def _token(self, value: str) -> AuthKind:
        fixed = self._scenario.token
        if fixed is not None and hmac.compare_digest(value.encode("utf-8"), fixed.encode("utf-8")):
            return "token"
        issued = self._tokens.get(value)
        if issued is None:
            raise AuthRefused(401, INVALID_TOKEN, "the token is not valid")
        if self._tokens.expired(issued):
            if issued.cut_short:
                # Dead before its announced expiry, as a revoked token is: not "expired".
                raise AuthRefused(401, INVALID_TOKEN, "the token is no longer valid")
            raise AuthRefused(401, EXPIRED_TOKEN, "the token has expired")
        return "iam_token"

    def check_project(self, kind: AuthKind, project_id: str | None) -> None:
        """Refuse a path naming a project other than the caller's, as DCS words it."""
        if project_id == self._scenario.project_id:
            return
        msg = f"no access to project {project_id!r}"
        if kind in ("token", "iam_token"):
            # Every token the sandbox knows is scoped to the scenario's one project.
            raise AuthRefused(401, TOKEN_PROJECT_MISMATCH, f"{msg}: the token is not scoped to it")
        raise AuthRefused(403, WRONG_PROJECT, msg)

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
            raise _signature_refusal(error) from None
        kind: AuthKind = "aksk"
        temporary = next(
            (key for key in self._scenario.temporary_keys if key.access_key == auth.access_key),
            None,
        )
        if temporary is not None:
            sent = headers.get("x-security-token")
            if sent is None or "x-security-token" not in auth.signed_headers:
                msg = "a temporary access key needs a signed security token (X-Security-Token)"
                raise GatewayRefused(msg)
            if not hmac.compare_digest(sent.strip().encode(), temporary.security_token.encode()):
                raise GatewayRefused("the security token does not match the access key")
            kind = "temporary_aksk"
        project_id = headers.get("x-project-id")
        if project_id is None:
            raise GatewayRefused("X-Project-Id header is missing")
        if project_id.strip() != self._scenario.project_id:
            raise AuthRefused(403, WRONG_PROJECT, f"no access to project {project_id.strip()!r}")
        return kind


__all__ = [
    "EXPIRED_TOKEN",
    "GATEWAY_AUTH_REFUSED",
    "INVALID_TOKEN",
    "NO_TOKEN",
    "TOKEN_PROJECT_MISMATCH",
    "WRONG_PROJECT",
    "AuthRefused",
    "Authenticator",
    "GatewayRefused",
]
