"""The handlers of DCS's migration-task routes and of IAM's token route.

Each takes the request and its `Call` (what the request log will say) and returns a
response, or raises `ApiError` for a DCS error answer. They assume the caller is
authenticated: the pipeline in `sandbox.app` sees to that.

>>> error = ApiError(400, TASK_NOT_FOUND, "migration task 't1' does not exist")
>>> error.status, error.code
(400, 'DCS.4133')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.bodies import iam_error_body, list_item, logs_body, stats_body, task_body
from sandbox.faults import FaultPlan
from sandbox.iam import IamRefused, TokenStore, check_password_request, token_body
from sandbox.lifecycle import EXCHANGEABLE_STATUSES, TERMINAL_STATUSES, TaskSnapshot, history
from sandbox.scenario import MigrationScript, Scenario
from sandbox.state import AuthKind, SandboxState

#: "The task does not exist", sent with HTTP 400, not 404: Huawei's Terraform provider reads
#: it so (huaweicloud/terraform-provider-huaweicloud, huaweicloud/services/dcs/
#: resource_huaweicloud_dcs_online_data_migration_task.go: ConvertExpected400ErrInto404Err
#: on "DCS.4133"; resource_huaweicloud_dcs_migration_task_exchange_ip.go: ErrDefault400).
TASK_NOT_FOUND = "DCS.4133"
BAD_REQUEST = "DCS.4000"
#: "Invalid {0} in the request." in DCS's error-code table (opentelekomcloud-docs/
#: distributed-cache-service, api-ref/source/appendix/error_codes.rst): a query parameter
#: out of its documented range. (DCS.4117 in the same table means "rolling back", a busy code.)
INVALID_PARAMETER = "DCS.4800"
#: `limit` on the list routes, as the API reference and the official SDK document it.
MAX_LIMIT = 1000


class ApiError(Exception):
    """An answer other than success: HTTP status, DCS error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Call:
    """What the request log will say about one request."""

    route: str
    request_id: str
    at: float
    task_id: str | None = None
    auth: AuthKind | None = None
    fault: str | None = None


def _int_param(
    request: Request, name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = f"Invalid {name} in the request: {raw!r} is not an integer"
        raise ApiError(400, INVALID_PARAMETER, msg) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"{minimum} or more"
        msg = f"Invalid {name} in the request: {value} is not {bounds}"
        raise ApiError(400, INVALID_PARAMETER, msg)
    return value


def _page(request: Request) -> tuple[int, int]:
    """`offset` (0 or more) and `limit` (1 to 1000) of a list request."""
    offset = _int_param(request, "offset", 0, minimum=0)
    limit = _int_param(request, "limit", 10, minimum=1, maximum=MAX_LIMIT)
    return offset, limit


def _exchange_body(raw: bytes) -> tuple[tuple[str, ...], bool]:
    try:
        body: object = json.loads(raw)
    except ValueError:
        raise ApiError(400, BAD_REQUEST, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, BAD_REQUEST, "the request body must be a JSON object")
    ips = body.get("exchanged_ip", [])
    domain = body.get("is_exchange_domain", False)
    if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
        raise ApiError(400, BAD_REQUEST, "exchanged_ip must be a list of strings")
    if not isinstance(domain, bool):
        raise ApiError(400, BAD_REQUEST, "is_exchange_domain must be a boolean")
    return tuple(ips), domain


class Handlers:
    """The route handlers, bound to one scenario, its state and its issued tokens."""

    def __init__(
        self,
        scenario: Scenario,
        state: SandboxState,
        tokens: TokenStore,
        faults: FaultPlan,
        utc_now: Callable[[], datetime],
    ) -> None:
        self.scenario = scenario
        self.state = state
        self.tokens = tokens
        self.faults = faults
        self.utc_now = utc_now

    def _task(self, request: Request) -> tuple[MigrationScript, TaskSnapshot]:
        task_id = request.path_params["task_id"]
        script = self.state.script(task_id)
        snap = None if script is None else self.state.task(task_id)
        if script is None or snap is None or snap.deleted:
            project = self.scenario.project_id
            msg = f"migration task {task_id!r} does not exist in project {project!r}"
            raise ApiError(400, TASK_NOT_FOUND, msg)
        return script, snap

    async def show(self, request: Request, call: Call) -> Response:
        script, snap = self._ghost(request) or self._task(request)
        return JSONResponse(task_body(script, snap, self.state.origin))

    def _ghost(self, request: Request) -> tuple[MigrationScript, TaskSnapshot] | None:
        """A deleted task whose detail still reads SUCCESS (finished at its deletion), or None."""
        script = self.state.script(request.path_params["task_id"])
        if script is None or script.deleted_after_seconds is None:
            return None
        snap = self.state.task(script.task_id)
        if not snap.detail_reads_success:
            return None
        return script, replace(snap, status="SUCCESS", status_since=script.deleted_after_seconds)

    async def stats(self, request: Request, call: Call) -> Response:
        script, snap = self._task(request)
        return JSONResponse(stats_body(script, snap, self.state.elapsed))

    async def list_tasks(self, request: Request, call: Call) -> Response:
        offset, limit = _page(request)
        # DCS matches names fuzzily: here, a case-insensitive substring.
        name = (request.query_params.get("name") or "").lower()
        origin = self.state.origin
        listed = []
        for script in self.state.scripts():
            snap = self.state.task(script.task_id)
            if not snap.deleted and name in script.task_name.lower():
                listed.append((script, snap))
        page = [list_item(script, snap, origin) for script, snap in listed[offset : offset + limit]]
        return JSONResponse({"count": len(listed), "migration_tasks": page})

    async def logs(self, request: Request, call: Call) -> Response:
        script, _ = self._task(request)
        offset, limit = _page(request)
        level = request.query_params.get("log_level") or None
        entries = history(script, self.state.events(script.task_id), self.state.elapsed)
        body = logs_body(entries, self.state.origin, offset=offset, limit=limit, log_level=level)
        return JSONResponse(body)

    async def stop(self, request: Request, call: Call) -> Response:
        script, snap = self._task(request)
        if snap.status in TERMINAL_STATUSES:
            msg = f"migration task {script.task_id!r} is already {snap.status}"
            raise ApiError(400, BAD_REQUEST, msg)
        self.state.request_stop(script.task_id, self.state.elapsed)
        return JSONResponse(task_body(script, self.state.task(script.task_id), self.state.origin))

    async def exchange(self, request: Request, call: Call) -> Response:
        script, snap = self._task(request)
        exchanged_ip, is_domain = _exchange_body(await request.body())
        if snap.status not in EXCHANGEABLE_STATUSES:
            msg = (
                f"migration task {script.task_id!r} is {snap.status}: "
                "no IP exchange before incremental sync"
            )
            raise ApiError(400, BAD_REQUEST, msg)
        # A second exchange is accepted and swaps the addresses back, as the service would:
        # that is the danger a client must guard against, and the state counts it.
        self.state.add_ip_action(
            script.task_id, "exchange", self.state.elapsed, exchanged_ip, is_domain
        )
        return Response(status_code=204)

    async def rollback(self, request: Request, call: Call) -> Response:
        script, _ = self._task(request)
        if not self.state.ip_actions(script.task_id, "exchange"):
            msg = f"migration task {script.task_id!r} has no IP exchange to roll back"
            raise ApiError(400, BAD_REQUEST, msg)
        self.state.add_ip_action(script.task_id, "rollback", self.state.elapsed)
        return Response(status_code=204)

    # -- IAM -------------------------------------------------------------------------

    async def create_token(self, request: Request, call: Call) -> Response:
        try:
            body: object = json.loads(await request.body())
            check_password_request(body, self.scenario)
        except ValueError:
            refusal = iam_error_body(400, "Bad Request", "the request body must be JSON")
            return JSONResponse(refusal, status_code=400)
        except IamRefused as error:
            refusal = iam_error_body(error.status, error.title, error.message)
            return JSONResponse(refusal, status_code=error.status)
        promised = self.scenario.token_lifetime_seconds
        lifetime, cut_short = self.faults.token_lifetime(promised)
        token = self.tokens.issue(lifetime, cut_short=cut_short)
        if cut_short:
            call.fault = "token_expiry"
        self.state.note_token_issued()
        # `expires_at` is what the client is promised, in wall-clock time; a token cut
        # short by a fault dies earlier, unannounced, as a revoked token does.
        now = self.utc_now()
        expires = now + timedelta(seconds=promised / self.scenario.speed)
        headers = {"X-Subject-Token": token.value}
        return JSONResponse(
            token_body(self.scenario, now, expires), status_code=201, headers=headers
        )


__all__ = [
    "BAD_REQUEST",
    "INVALID_PARAMETER",
    "MAX_LIMIT",
    "TASK_NOT_FOUND",
    "ApiError",
    "Call",
    "Handlers",
]
