"""The sandbox as an ASGI app: DCS's migration-task API, IAM tokens, and an admin view.

Every answer carries `X-Request-Id`. A request goes: fault drawn -> (fault "before") ->
authentication -> project check -> handler -> (fault "after") -> recorded in the state.
`GET /_sandbox/state` (with the latest `?recent=N` request records), `POST /_sandbox/reset`
and `POST /_sandbox/advance?seconds=N` are the sandbox's own, not DCS's.

>>> import asyncio, httpx
>>> from sandbox.clock import ManualClock
>>> from sandbox.scenario import MigrationScript, Scenario
>>> scenario = Scenario(tasks=[MigrationScript.incremental("t1", full_seconds=30)])
>>> clock = ManualClock()
>>> app = create_app(scenario, clock)
>>> clock.advance(10)
>>> async def show() -> httpx.Response:
...     transport = httpx.ASGITransport(app)
...     async with httpx.AsyncClient(transport=transport, base_url="http://dcs") as client:
...         return await client.get(f"/v2/{scenario.project_id}/migration-task/t1",
...                                 headers={"X-Auth-Token": scenario.token or ""})
>>> asyncio.run(show()).json()["status"], app.sandbox_state.count("show_migration_task")
('FULLMIGRATING', 1)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from sandbox.auth import Authenticator, AuthRefused, GatewayRefused
from sandbox.bodies import error_body, gateway_error_body
from sandbox.clock import Clock, ScaledClock
from sandbox.clock import utc_now as wall_clock
from sandbox.faults import RAW_SEND, ConnectionDropped, DroppedResponse, FaultPlan, Sleep, inject
from sandbox.handlers import ApiError, Call, Handlers
from sandbox.iam import TokenStore
from sandbox.migrations import MigrationHandlers
from sandbox.scenario import REFUSING_FAULTS, RouteName, Scenario, as_scenario
from sandbox.state import MAX_RECORDS, RequestRecord, SandboxState

Handler = Callable[[Request, Call], Awaitable[Response]]

_REQUEST_ID = "sandbox.request_id"


class SandboxApp(Starlette):
    """The sandbox's ASGI app: `sandbox_state` is what happened, `scenario` what it plays."""

    sandbox_state: SandboxState
    scenario: Scenario

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope[_REQUEST_ID] = request_id
        # The server's own `send`, before any middleware wraps it: a `drop` fault needs it.
        scope[RAW_SEND] = send

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers["X-Request-Id"] = request_id
            await send(message)

        await super().__call__(scope, receive, send_with_request_id)


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.decode("latin-1")
    return quote(str(scope["path"]))


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-case names to values; a repeated header's values joined with commas."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


class _Service:
    """The request pipeline: faults, authentication, project check, handler, record."""

    def __init__(
        self,
        scenario: Scenario,
        state: SandboxState,
        tokens: TokenStore,
        utc_now: Callable[[], datetime],
        sleep: Sleep,
    ) -> None:
        self.scenario = scenario
        self.state = state
        self.sleep = sleep
        self.faults = FaultPlan(scenario.faults, scenario.seed)
        self.authenticator = Authenticator(scenario, tokens, utc_now)
        self.handlers = Handlers(scenario, state, tokens, self.faults, utc_now)
        self.migrations = MigrationHandlers(scenario, state)

    def endpoint(
        self, route: RouteName, handler: Handler, *, public: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await self._serve(route, handler, request, public=public)

        return serve

    async def _serve(
        self, route: RouteName, handler: Handler, request: Request, *, public: bool
    ) -> Response:
        arrived = self.state.clock_reading()
        call = Call(
            route=route,
            request_id=request.scope[_REQUEST_ID],
            at=self.state.elapsed,
            task_id=request.path_params.get("task_id"),
        )
        fault = self.faults.pick(route)
        # A fault "after" lets the request act first (an exchange happens), then spoils
        # the answer; a 429 or a busy code always comes before: it means "not done".
        acts_first = (
            fault is not None and not isinstance(fault, REFUSING_FAULTS) and fault.when == "after"
        )
        response: Response | None = None
        try:
            if fault is not None and not acts_first:
                call.fault = fault.kind
                response = await inject(fault, request.scope, call.request_id, self.sleep)
            if response is None:
                response = await self._handle(handler, request, call, public=public)
                if fault is not None and acts_first:
                    call.fault = fault.kind
                    spoiled = await inject(fault, request.scope, call.request_id, self.sleep)
                    response = spoiled or response
            return response
        finally:
            status = None
            if response is not None and not isinstance(response, DroppedResponse):
                status = response.status_code
            self.state.record(
                RequestRecord(
                    at=call.at,
                    method=request.method,
                    route=call.route,
                    path=request.url.path,
                    status=status,
                    auth=call.auth,
                    request_id=call.request_id,
                    task_id=call.task_id,
                    fault=call.fault,
                    clock_at=arrived,
                )
            )

    async def _handle(
        self, handler: Handler, request: Request, call: Call, *, public: bool
    ) -> Response:
        try:
            if not public:
                kind = self.authenticator.authenticate(
                    method=request.method,
                    raw_path=_raw_path(request.scope),
                    raw_query=request.scope["query_string"].decode("latin-1"),
                    headers=_headers(request.scope),
                    body=await request.body(),
                )
                call.auth = kind
                self.authenticator.check_project(kind, request.path_params.get("project_id"))
            return await handler(request, call)
        except GatewayRefused as error:
            body = gateway_error_body(error.code, error.message, call.request_id)
            return JSONResponse(body, status_code=error.status)
        except (ApiError, AuthRefused) as error:
            return JSONResponse(error_body(error.code, error.message), status_code=error.status)

    # -- the sandbox's own -----------------------------------------------------------

    async def admin_state(self, request: Request) -> Response:
        raw = request.query_params.get("recent", "50")
        try:
            recent = int(raw)
            if not 0 <= recent <= MAX_RECORDS:
                raise ValueError(raw)
        except ValueError:
            message = (
                f"recent={raw!r}: pass how many of the latest request records to show, "
                f"0 to {MAX_RECORDS}, e.g. ?recent=1000"
            )
            return JSONResponse({"error": message}, status_code=400)
        return JSONResponse(self.state.as_dict(recent))

    async def admin_reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True, "elapsed_seconds": self.state.elapsed})

    async def admin_advance(self, request: Request) -> Response:
        raw = request.query_params.get("seconds", "")
        try:
            self.state.advance(float(raw))
        except ValueError:
            message = f"seconds={raw!r}: pass a number of scenario seconds >= 0, e.g. ?seconds=60"
            return JSONResponse({"error": message}, status_code=400)
        return JSONResponse({"elapsed_seconds": self.state.elapsed})

    async def not_found(self, request: Request, exc: Exception) -> Response:
        request_id = request.scope.get(_REQUEST_ID, "")
        self.state.record(
            RequestRecord(
                at=self.state.elapsed,
                method=request.method,
                route="unknown",
                path=request.url.path,
                status=404,
                auth=None,
                request_id=request_id,
                clock_at=self.state.clock_reading(),
            )
        )
        body = gateway_error_body(
            "APIGW.0101",
            "The API does not exist or has not been published in the environment",
            request_id,
        )
        return JSONResponse(body, status_code=404)


def create_app(
    scenario: Scenario | str | Path,
    clock: Clock | None = None,
    *,
    utc_now: Callable[[], datetime] | None = None,
    sleep: Sleep | None = None,
) -> SandboxApp:
    """The sandbox's ASGI app for `scenario` (a `Scenario`, a file, or a bundled name).

    `clock` gives scenario seconds (default: monotonic time times the scenario's `speed`);
    `utc_now` is the wall clock `X-Sdk-Date` is checked against; `sleep` serves `slow` faults.
    """
    played = as_scenario(scenario)
    ticking = clock if clock is not None else ScaledClock(played.speed)
    now = utc_now if utc_now is not None else wall_clock
    state = SandboxState(played, ticking, now)
    service = _Service(played, state, TokenStore(ticking), now, sleep or asyncio.sleep)
    dcs = service.handlers
    task = "/v2/{project_id}/migration-task/{task_id}"
    routes = [
        *_read_and_cutover_routes(service, dcs, task),
        *_task_change_routes(service, service.migrations, task),
        Route(
            "/v3/auth/tokens",
            service.endpoint("create_token", dcs.create_token, public=True),
            methods=["POST"],
        ),
        Route("/_sandbox/state", service.admin_state, methods=["GET"]),
        Route("/_sandbox/reset", service.admin_reset, methods=["POST"]),
        Route("/_sandbox/advance", service.admin_advance, methods=["POST"]),
    ]
    handlers: dict[Any, Any] = {404: service.not_found, 405: service.not_found}
    app = SandboxApp(routes=routes, exception_handlers=handlers)
    # A trailing slash is another path (404), not a redirect a signed request would follow.
    app.router.redirect_slashes = False
    app.sandbox_state = state
    app.scenario = played
    return app


def _read_and_cutover_routes(service: _Service, dcs: Handlers, task: str) -> list[Route]:
    return [
        Route(task, service.endpoint("show_migration_task", dcs.show), methods=["GET"]),
        Route(
            f"{task}/stats",
            service.endpoint("show_migration_task_stats", dcs.stats),
            methods=["GET"],
        ),
        Route(
            "/v2/{project_id}/migration-tasks",
            service.endpoint("list_migration_tasks", dcs.list_tasks),
            methods=["GET"],
        ),
        Route(
            f"{task}/logs",
            service.endpoint("list_migration_task_logs", dcs.logs),
            methods=["GET"],
        ),
        Route(f"{task}/stop", service.endpoint("stop_migration_task", dcs.stop), methods=["POST"]),
        Route(
            f"{task}/exchange-ip",
            service.endpoint("exchange_instance_ip", dcs.exchange),
            methods=["POST"],
        ),
        Route(
            f"{task}/rollback-ip",
            service.endpoint("rollback_exchange_instance_ip", dcs.rollback),
            methods=["POST"],
        ),
    ]


def _task_change_routes(service: _Service, dcs: MigrationHandlers, task: str) -> list[Route]:
    project = "/v2/{project_id}"
    return [
        Route(
            f"{project}/migration/instance",
            service.endpoint("create_online_migration_task", dcs.create_online),
            methods=["POST"],
        ),
        Route(
            f"{project}/migration/{{task_id}}/task",
            service.endpoint("set_online_migration_task", dcs.configure_online),
            methods=["POST"],
        ),
        Route(
            f"{project}/migration-task/batch-stop",
            service.endpoint("batch_stop_migration_tasks", dcs.batch_stop),
            methods=["POST"],
        ),
        Route(
            f"{project}/migration-task",
            service.endpoint("create_migration_task", dcs.create_task),
            methods=["POST"],
        ),
        Route(
            f"{task}/sync-stop",
            service.endpoint("stop_migration_task_sync", dcs.sync_stop),
            methods=["POST"],
        ),
        Route(
            f"{project}/migration-tasks/delete",
            service.endpoint("delete_migration_task", dcs.delete),
            methods=["DELETE"],
        ),
        Route(
            f"{project}/migration-tasks/batch-restart",
            service.endpoint("batch_restart_online_migration_tasks", dcs.batch_restart),
            methods=["POST"],
        ),
    ]


__all__ = ["ConnectionDropped", "SandboxApp", "Sleep", "create_app"]
