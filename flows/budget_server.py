"""Taking one slot of a Prefect rate limit so that the limit delivers its configured rate.

Prefect 3.9's own `rate_limit` delivered 1-2 requests/s of a 5/s limit. The server
decays a limit's slots by `floor(slot_decay_per_second * seconds since updated)`, and
`updated` moves on every write of the row, a refused attempt included (it records the
refusal in `denied_slots`). So a refusal throws away all the decay since the last write,
and a success the fraction of a slot. Prefect's client then waits the server's
`Retry-After`: a jittered `(1 + denied_slots) / decay` that grows with every refusal,
and whose jitter is often shorter than one slot's decay, so the next attempt is refused
too and throws the decay away again.

Here a waiter that was refused, or had to wait, reads the limit before its next attempt
(a read writes nothing) and tries when the next slot is due: one slot's decay after the
row's last write, on the server's clock. All waiters then try at that moment; one wins,
and the refusals of the others cost only the milliseconds between their attempts. The
waiters of one event loop (or of one process, for blocking clients) take turns, so only
one of them asks at a time. The server alone decides who gets a slot: a wrong clock
costs speed, never the limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse

#: HTTP 423: the limit is full; the server recorded the refusal.
_LOCKED = 423

_loop_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_loop_turns_lock = threading.Lock()
_thread_turn = threading.Lock()
#: Limits whose last slot here came after a wait: full, most likely, so read before trying
#: (a refused attempt would restart the decay for everyone).
_contended: dict[str, bool] = {}


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def wait_for_next_slot(limit: GlobalConcurrencyLimitResponse, now: datetime) -> float:
    """Seconds from `now` (wall clock) until `limit` can grant one more slot.

    A full limit's next slot comes one slot's decay after its last write (`updated`),
    because every write restarts the decay. The wait stays between a quarter of that
    and all of it: a clock ahead of or behind the server's then costs some speed, and
    never a burst of attempts.
    """
    if limit.active_slots < limit.limit:
        return 0.0
    per_slot = 1.0 / limit.slot_decay_per_second
    if limit.updated is None:
        return per_slot
    due = float((limit.updated - now).total_seconds()) + per_slot
    return min(per_slot, max(per_slot / 4, due))


def _taken(response: httpx.Response) -> bool:
    """Whether the increment named a limit: the server answers `[]` when none exists."""
    return bool(response.json())


async def atake_slot(
    name: str,
    *,
    now: Callable[[], datetime] = _utc_now,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Wait for and take one slot of the rate limit `name`; False if there is no such limit.

    Raises `httpx.HTTPError` when the server cannot be asked or refuses the limit for
    rate limiting (HTTP 422: it has no slot decay).
    """
    from prefect.client.orchestration import get_client

    async with _loop_turn(), get_client() as client:
        waited = False
        while True:
            if waited or _contended.get(name, False):
                limit = await client.read_global_concurrency_limit_by_name(name)
                wait = wait_for_next_slot(limit, now())
                if wait > 0:
                    waited = True
                    await sleep(wait)
            try:
                response = await client.increment_concurrency_slots(
                    names=[name], slots=1, mode="rate_limit"
                )
            except httpx.HTTPStatusError as error:
                if error.response.status_code != _LOCKED:
                    raise
                waited = True
            else:
                _contended[name] = waited
                return _taken(response)


def take_slot(
    name: str,
    *,
    now: Callable[[], datetime] = _utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """`atake_slot` for blocking clients: the process's blocking waiters take turns."""
    from prefect.client.orchestration import get_client

    with _thread_turn, get_client(sync_client=True) as client:
        waited = False
        while True:
            if waited or _contended.get(name, False):
                limit = client.read_global_concurrency_limit_by_name(name)
                wait = wait_for_next_slot(limit, now())
                if wait > 0:
                    waited = True
                    sleep(wait)
            try:
                response = client.increment_concurrency_slots(
                    names=[name], slots=1, mode="rate_limit"
                )
            except httpx.HTTPStatusError as error:
                if error.response.status_code != _LOCKED:
                    raise
                waited = True
            else:
                _contended[name] = waited
                return _taken(response)


def _loop_turn() -> asyncio.Lock:
    # One lock per event loop: an asyncio.Lock cannot be shared between loops.
    loop = asyncio.get_running_loop()
    with _loop_turns_lock:
        turn = _loop_turns.get(loop)
        if turn is None:
            turn = _loop_turns[loop] = asyncio.Lock()
        return turn


def refusal_reason(error: httpx.HTTPError) -> str:
    """Why the server would not give a slot, in its own words where it gave some."""
    if isinstance(error, httpx.HTTPStatusError):
        try:
            detail = error.response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        return f"HTTP {error.response.status_code}: {detail or error.response.reason_phrase}"
    return f"{type(error).__name__}: {error}"


__all__ = ["atake_slot", "refusal_reason", "take_slot", "wait_for_next_slot"]
