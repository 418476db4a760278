"""Which request gets which fault (deterministic for a seed and a request sequence),
and what the faulted request gets instead of its answer.

Each fault decides independently for every request it matches (its `routes`): it lets
`skip` of them through, then fires on the first `count` (all, if unset), each time with
probability `rate` drawn from its own seeded generator. The first fault in scenario
order that fires is the one applied.

>>> from sandbox.scenario import RateLimitFault
>>> plan = FaultPlan([RateLimitFault(kind="rate_limit", count=1)], seed=0)
>>> [type(plan.pick("show_migration_task")).__name__ for _ in range(2)]
['RateLimitFault', 'NoneType']
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Sequence

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Scope

from sandbox.bodies import error_body, gateway_error_body, gateway_page, portal_page
from sandbox.scenario import (
    BusyFault,
    DropFault,
    Fault,
    HtmlFault,
    RateLimitFault,
    RequestFault,
    RouteName,
    ServerErrorFault,
    SlowFault,
    TokenExpiryFault,
)

#: An async sleep, injectable so that tests of the `slow` fault never wait.
Sleep = Callable[[float], Awaitable[None]]
#: The scope key under which the app keeps the server's own `send` (a `drop` needs it).
RAW_SEND = "sandbox.raw_send"


class _Trigger:
    def __init__(self, fault: Fault, seed: int, index: int) -> None:
        self.fault = fault
        # One generator per fault, so adding a fault does not reshuffle the others.
        # Fault injection, not cryptography.
        self._random = random.Random(f"{seed}/{index}")  # noqa: S311
        self._matched = 0

    def fires(self) -> bool:
        self._matched += 1
        fired = self._matched - self.fault.skip
        if fired <= 0:
            return False
        if self.fault.count is not None and fired > self.fault.count:
            return False
        return self.fault.rate >= 1 or self._random.random() < self.fault.rate


class FaultPlan:
    """The scenario's faults, ready to be drawn request by request (thread-safe)."""

    def __init__(self, faults: Sequence[Fault], seed: int = 0) -> None:
        self._triggers = [_Trigger(fault, seed, index) for index, fault in enumerate(faults)]
        self._lock = threading.Lock()

    def pick(self, route: RouteName) -> RequestFault | None:
        """The fault to apply to this request on `route`, or None."""
        picked: RequestFault | None = None
        with self._lock:
            for trigger in self._triggers:
                fault = trigger.fault
                if isinstance(fault, TokenExpiryFault):
                    continue
                if fault.routes is not None and route not in fault.routes:
                    continue
                if trigger.fires() and picked is None:
                    picked = fault
        return picked

    def token_lifetime(self, default: float) -> tuple[float, bool]:
        """The lifetime of a token being issued, and whether a `token_expiry` fault cut it."""
        lifetime, cut = default, False
        with self._lock:
            for trigger in self._triggers:
                fault = trigger.fault
                if isinstance(fault, TokenExpiryFault) and trigger.fires() and not cut:
                    lifetime, cut = min(default, fault.seconds), True
        return lifetime, cut


class ConnectionDropped(Exception):
    """A `drop` fault outside a real server (no socket to close): the request gets no answer."""


class DroppedResponse(Response):
    """Stands for the answer a dropped connection never got; it is never delivered."""

    def __init__(self) -> None:
        super().__init__(status_code=500)


async def _abort_connection(scope: Scope) -> None:
    # uvicorn's `send` is a method of its per-request cycle, which holds the connection's
    # transport: aborting it closes the socket with no answer at all, as a crashed
    # gateway does. Under an in-process client there is no socket, hence the exception.
    cycle = getattr(scope.get(RAW_SEND), "__self__", None)
    transport = getattr(cycle, "transport", None)
    if not isinstance(transport, asyncio.WriteTransport):
        msg = "drop fault: connection closed without an answer"
        raise ConnectionDropped(msg)
    transport.abort()
    # Let the server see the connection lost, so that it sends nothing after it.
    for _ in range(3):
        await asyncio.sleep(0)


async def inject(
    fault: RequestFault, scope: Scope, request_id: str, sleep: Sleep
) -> Response | None:
    """The fault's answer (a `DroppedResponse` for a drop), or None: go on, after a delay."""
    if isinstance(fault, SlowFault):
        await sleep(fault.seconds)
        return None
    if isinstance(fault, RateLimitFault):
        body = gateway_error_body(
            "APIGW.0308",
            "The throttling threshold has been reached: policy user over ratelimit",
            request_id,
        )
        return JSONResponse(body, status_code=429, headers={"Retry-After": str(fault.retry_after)})
    if isinstance(fault, BusyFault):
        body = error_body(fault.code, "The system is busy. Please try again later.")
        return JSONResponse(body, status_code=fault.status)
    if isinstance(fault, ServerErrorFault):
        if fault.status == 500:
            return JSONResponse(error_body("DCS.5000", "Internal service error."), status_code=500)
        return HTMLResponse(gateway_page(fault.status), status_code=fault.status)
    if isinstance(fault, HtmlFault):
        return HTMLResponse(portal_page())
    if isinstance(fault, DropFault):
        await _abort_connection(scope)
        return DroppedResponse()
    msg = f"unknown fault kind {fault!r}"
    raise TypeError(msg)


__all__ = [
    "RAW_SEND",
    "ConnectionDropped",
    "DroppedResponse",
    "FaultPlan",
    "Sleep",
    "inject",
]
