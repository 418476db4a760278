"""IAM for the sandbox: `POST /v3/auth/tokens` with a password identity, and issued tokens.

Token lifetimes are in scenario seconds on the sandbox clock (a `token_expiry` fault can
cut one short); `expires_at` in the answer is the wall-clock moment that corresponds.

>>> body = password_request("u", "p", "d", project_id="p1")
>>> body["auth"]["scope"]
{'project': {'id': 'p1'}}
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.clock import Clock
from sandbox.scenario import Scenario


class IamRefused(Exception):
    """IAM refuses to issue a token: an HTTP status, a title and a message (no secret)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True)
class IssuedToken:
    """A token the sandbox issued; times are readings of the sandbox clock."""

    value: str
    issued_at: float
    expires_at: float
    cut_short: bool = False


class TokenStore:
    """Tokens issued so far (thread-safe); they survive a sandbox reset."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tokens: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()

    def issue(self, lifetime: float, *, cut_short: bool = False) -> IssuedToken:
        now = self._clock()
        token = IssuedToken(
            f"MIIsandbox{secrets.token_urlsafe(48)}", now, now + lifetime, cut_short
        )
        with self._lock:
            self._tokens[token.value] = token
        return token

    def get(self, value: str) -> IssuedToken | None:
        with self._lock:
            return self._tokens.get(value)

    def expired(self, token: IssuedToken) -> bool:
        return self._clock() >= token.expires_at


def password_request(
    username: str, password: str, domain_name: str, *, project_id: str
) -> dict[str, Any]:
    """The body a client sends for a password token scoped to a project."""
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": username,
                        "password": password,
                        "domain": {"name": domain_name},
                    }
                },
            },
            "scope": {"project": {"id": project_id}},
        }
    }


def _field(data: object, *path: str) -> object:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            msg = f"the request body has no {'.'.join(path)}"
            raise IamRefused(400, "Bad Request", msg)
        data = data[key]
    return data


def _same(given: object, expected: str | None) -> bool:
    if expected is None or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_password_request(body: object, scenario: Scenario) -> None:
    """Accept a password identity for the scenario's user and project, or raise `IamRefused`."""
    methods = _field(body, "auth", "identity", "methods")
    if not isinstance(methods, list) or "password" not in methods:
        raise IamRefused(400, "Bad Request", "auth.identity.methods must include 'password'")
    user = _field(body, "auth", "identity", "password", "user")
    project = _field(body, "auth", "scope", "project")
    if not isinstance(user, dict) or not isinstance(project, dict):
        raise IamRefused(400, "Bad Request", "user and scope.project must be objects")
    domain = user.get("domain")
    domain_name = domain.get("name") if isinstance(domain, dict) else None
    if not (
        _same(user.get("name"), scenario.iam_username)
        and _same(user.get("password"), scenario.iam_password)
        and _same(domain_name, scenario.iam_domain_name)
    ):
        raise IamRefused(401, "Unauthorized", "The username or password is wrong.")
    # A project by name (the region) is this sandbox's only project; by id it must match.
    if "id" in project and project["id"] != scenario.project_id:
        raise IamRefused(401, "Unauthorized", "You are not authorized for the requested scope.")
    if "id" not in project and "name" not in project:
        raise IamRefused(400, "Bad Request", "scope.project needs an id or a name")


def iam_date(moment: datetime) -> str:
    """`2020-01-04T09:05:22.701000Z`: IAM's date format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_body(scenario: Scenario, issued_at: datetime, expires_at: datetime) -> dict[str, Any]:
    """The body of a 201 from `POST /v3/auth/tokens` (the token itself is in X-Subject-Token)."""
    domain = {"id": "d" * 32, "name": scenario.iam_domain_name}
    return {
        "token": {
            "expires_at": iam_date(expires_at),
            "issued_at": iam_date(issued_at),
            "methods": ["password"],
            "catalog": [],
            "roles": [{"id": "0", "name": "op_user"}],
            "project": {"id": scenario.project_id, "name": "sandbox-region-1", "domain": domain},
            "user": {
                "id": "u" * 32,
                "name": scenario.iam_username,
                "domain": domain,
                "password_expires_at": "",
            },
        }
    }


__all__ = [
    "IamRefused",
    "IssuedToken",
    "TokenStore",
    "check_password_request",
    "iam_date",
    "password_request",
    "token_body",
]
