"""The DCS API budget: one request rate per DCS project, shared by every run on every worker.

Huawei's API gateway counts requests per account, not per flow run: forty runs that each
pace themselves at 20 requests/s send 800, and every one of them gets 429. So each request
a `DcsCredentials` client sends first takes a slot of the Prefect global concurrency limit
`dcs-api-<project_id>`, used as a rate limit: `burst` slots (the limit) may be taken at
once and they come back at `requests_per_second` (the slot decay), so in any one second
all runs together send at most `burst + requests_per_second` requests.

Create the limit once per project, on the Prefect server every worker uses::

    dcs-migrate api-budget 0605767f8d00d5a52f4bc01f1b2d5ac5 --per-second 5 --burst 5

or `prefect gcl create dcs-api-<project_id> --limit 5 --slot-decay-per-second 5`.
Where it does not exist or cannot be used, and outside Prefect (no run and no
`PREFECT_API_URL`, e.g. `dcs-migrate status`), each process paces its own requests at
`DEFAULT_REQUESTS_PER_SECOND` instead and says so once, with the command above.
Prefect is imported only on the shared path, so the plain CLI stays quick to start.

>>> limit_name("0605767f8d00d5a52f4bc01f1b2d5ac5")
'dcs-api-0605767f8d00d5a52f4bc01f1b2d5ac5'
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from blocks.errors import DcsValidationError
from flows import clock

# Huawei Cloud publishes no request quota for the DCS API itself that we could find. Its
# "Request Throttling" pages give the default quota of its open APIs as 10 requests per
# 1 s per API and user or source IP (support.huaweicloud.com/intl/en-us/api-oce/fci_00002.html,
# .../api-bpconsole/fci_00001.html), and the gateway's refusal (APIG.0308 "policy user over
# ratelimit") is per user. 5/s with bursts of 5 keeps every one-second window at 10 or less.
DEFAULT_REQUESTS_PER_SECOND = 5.0
DEFAULT_BURST = 5
#: How long a limit found missing (or unusable) is not asked for again: one created
#: meanwhile is picked up within this many seconds, without an API call per request.
RECHECK_SECONDS = 60.0
LIMIT_PREFIX = "dcs-api-"

logger = logging.getLogger(__name__)

# Prefect refuses some characters in a limit's name; real project ids are 32 hex digits.
_PROJECT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def limit_name(project_id: str) -> str:
    """The name of the Prefect global concurrency limit that holds `project_id`'s budget."""
    if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
        msg = (
            f"project_id {project_id!r} cannot name an API budget: use the DCS project id "
            f"as the console shows it (letters, digits, '.', '_' or '-', at most 128)"
        )
        raise DcsValidationError(msg)
    return f"{LIMIT_PREFIX}{project_id}"


@dataclass(frozen=True)
class Budget:
    """How fast all runs together may call DCS: `requests_per_second` on average, and
    `burst` requests at once after a quiet spell."""

    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    burst: int = DEFAULT_BURST

    def __post_init__(self) -> None:
        problems = []
        rate = self.requests_per_second
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            problems.append(f"requests_per_second must be a number above 0, got {rate!r}")
        elif not math.isfinite(rate):
            problems.append(f"requests_per_second must be finite, got {rate!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            problems.append(f"burst must be a whole number, 1 or more, got {self.burst!r}")
        if problems:
            raise DcsValidationError("; ".join(problems) + " (e.g. 5 requests/s in bursts of 5)")

    @property
    def most_in_one_second(self) -> int:
        """The most requests any one-second window can see: the burst plus one second's refill."""
        return self.burst + math.floor(self.requests_per_second)


class _Bucket:
    """The same rule as the shared limit, for one process: `burst` at once, then
    `per_second`. Thread-safe and clock-agnostic: the caller reads the clock and sleeps."""

    def __init__(self, per_second: float, burst: int) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at: float | None = None
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Take one request's slot; the seconds to wait from `now` before sending it."""
        with self._lock:
            elapsed = 0.0 if self._at is None else max(0.0, now - self._at)
            self._at = now
            # Below zero, the tokens are slots already promised to requests still waiting.
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate) - 1
            return max(0.0, -self._tokens / self._rate)


class ApiBudget:
    """The budget of one project in this process: the shared Prefect limit, else its own pace.

    `apace` (async clients) and `pace` (sync clients) wait for a slot before each request.
    With `shared=False` it never asks Prefect (the Prefect-free CLI). The fallback keeps
    the same budget for this process alone: `burst` at once, then `requests_per_second`;
    async waits follow `flows.clock`, sync ones `monotonic`/`sleep`, each a bucket of its own.
    """

    def __init__(
        self,
        project_id: str,
        budget: Budget | None = None,
        *,
        shared: bool = True,
        recheck_seconds: float = RECHECK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.project_id = project_id
        self.name = limit_name(project_id)
        self.budget = budget or Budget()
        self.shared = shared
        self._recheck_seconds = recheck_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        self._async_time: clock.Time | None = None
        self._async_bucket = _Bucket(self.budget.requests_per_second, self.budget.burst)
        self._sync_bucket = _Bucket(self.budget.requests_per_second, self.budget.burst)
        self._lock = threading.Lock()
        self._skip_shared_until = float("-inf")
        self.warned = False

    async def apace(self) -> None:
        """Wait (async) until this process may send one more request to DCS."""
        if self._shared_usable():
            from flows.budget_server import atake_slot

            try:
                taken = await atake_slot(self.name)
            except httpx.HTTPError as error:
                self._unusable(error)
            else:
                if taken:
                    return
                self._unusable(None)
        time_ = clock.current()
        delay = self._async_bucket_on(time_).reserve(time_.monotonic())
        if delay > 0:
            await time_.sleep(delay)

    def pace(self) -> None:
        """Wait (blocking) until this process may send one more request to DCS."""
        if self._shared_usable():
            from flows.budget_server import take_slot

            try:
                taken = take_slot(self.name)
            except httpx.HTTPError as error:
                self._unusable(error)
            else:
                if taken:
                    return
                self._unusable(None)
        delay = self._sync_bucket.reserve(self._monotonic())
        if delay > 0:
            self._sleep(delay)

    def _async_bucket_on(self, time_: clock.Time) -> _Bucket:
        # Times read from another clock (a test's `FakeTime`) mean nothing on this one.
        with self._lock:
            if time_ is not self._async_time:
                self._async_time = time_
                self._async_bucket = _Bucket(self.budget.requests_per_second, self.budget.burst)
            return self._async_bucket

    # -- choosing the path ----------------------------------------------------------------

    def _shared_usable(self) -> bool:
        if not self.shared:
            self._warn_once("it runs outside Prefect")
            return False
        if not _prefect_reachable():
            self._warn_once(
                "this is not a Prefect flow or task run and no Prefect server is set "
                "(PREFECT_API_URL)"
            )
            return False
        with self._lock:
            return self._monotonic() >= self._skip_shared_until

    def _unusable(self, error: httpx.HTTPError | None) -> None:
        """Stop asking the server for a while: `error` is why, None that there is no limit."""
        with self._lock:
            self._skip_shared_until = self._monotonic() + self._recheck_seconds
        if error is None:
            reason = f"the Prefect global concurrency limit {self.name!r} does not exist"
        else:
            from flows.budget_server import refusal_reason

            reason = (
                f"the Prefect global concurrency limit {self.name!r} cannot be used "
                f"({refusal_reason(error)})"
            )
        self._warn_once(reason)

    def _warn_once(self, reason: str) -> None:
        with self._lock:
            if self.warned:
                return
            self.warned = True
        budget = self.budget
        # Outside Prefect, importing it just to find no run would cost the CLI seconds.
        (_warning_logger() if self.shared else logger).warning(
            "DCS API budget: %s, so this process paces its own DCS requests at %g/s instead "
            "of sharing one budget with every run. Create the shared limit once: "
            "`dcs-migrate api-budget %s --per-second %g --burst %d` "
            "(or `prefect gcl create %s --limit %d --slot-decay-per-second %g`)",
            reason,
            budget.requests_per_second,
            self.project_id,
            budget.requests_per_second,
            budget.burst,
            self.name,
            budget.burst,
            budget.requests_per_second,
        )


def _prefect_reachable() -> bool:
    """Whether a Prefect API is there to ask: in a run, or with a server configured.

    Outside both, asking would start a temporary local server (seconds) for a limit that
    no other process shares.
    """
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import get_current_settings

    if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
        return True
    return bool(get_current_settings().api.url)


def _warning_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside a run (the warning shows in the UI), else this module's."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logger


_budgets: dict[tuple[str, bool], ApiBudget] = {}
_budgets_lock = threading.Lock()


def api_budget(project_id: str, *, shared: bool = True) -> ApiBudget:
    """This process's budget for `project_id` (one per project, shared by all its clients)."""
    key = (project_id, shared)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = ApiBudget(project_id, shared=shared)
        return budget


async def create_api_budget(project_id: str, budget: Budget | None = None) -> str:
    """Create (or update, and switch on) the project's limit on the Prefect server.

    Returns "created" or "updated". Validates everything before calling Prefect.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    name = limit_name(project_id)
    wanted = budget or Budget()
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=name,
                    limit=wanted.burst,
                    slot_decay_per_second=wanted.requests_per_second,
                    active=True,
                )
            )
            return "created"
        await client.update_global_concurrency_limit(
            name,
            GlobalConcurrencyLimitUpdate(
                limit=wanted.burst,
                slot_decay_per_second=wanted.requests_per_second,
                active=True,
            ),
        )
        return "updated"


__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_REQUESTS_PER_SECOND",
    "LIMIT_PREFIX",
    "RECHECK_SECONDS",
    "ApiBudget",
    "Budget",
    "api_budget",
    "create_api_budget",
    "limit_name",
]
