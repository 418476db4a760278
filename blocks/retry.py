"""When to try a DCS call again, how long to wait first, and how a retry is announced.

No I/O here beyond a log line: the sync and async clients share these decisions and differ
only in how they sleep. Each retry is logged (`log_retry`) at DEBUG on this module's
logger, unless the client is given another `on_retry` observer (`DcsCredentials` gives one
that logs at INFO in the flow or task run).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from blocks.errors import DcsApiError, DcsBusyError, DcsError, DcsRateLimitedError

logger = logging.getLogger(__name__)

#: Transport errors raised before a single byte of the request left this machine: a retry
#: can never repeat an action, so even a non-idempotent POST may be sent again.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded in attempts and in total time.

    The n-th retry waits a random time in `[0, min(max_delay, initial_delay * 2**(n-1))]`,
    or what the service asked for in `Retry-After` when that is longer. A call gives up
    after `max_attempts` attempts, or when the next wait would end past
    `max_elapsed_seconds` from its start, whichever comes first.

    >>> RetryPolicy(max_attempts=1).max_attempts  # never retry
    1
    """

    max_attempts: int = 6
    initial_delay: float = 0.5
    max_delay: float = 30.0
    max_elapsed_seconds: float = 120.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"max_attempts must be at least 1, got {self.max_attempts}"
            raise ValueError(msg)
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_elapsed_seconds < 0:
            msg = "retry delays and max_elapsed_seconds must not be negative"
            raise ValueError(msg)

    def backoff(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.initial_delay * 2 ** (retry_number - 1))
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def is_transient(error: DcsError | httpx.RequestError) -> bool:
    """Whether the same call may succeed if tried again later.

    For a `DcsError`, its `transient` flag. For an httpx error, whether it is a transport
    error (no answer, or one cut short) other than a request that cannot be sent as it is
    (`LocalProtocolError`). A garbled answer (`DecodingError`) is not: the client does not
    repeat a call for it.
    """
    if isinstance(error, DcsError):
        return error.transient
    if isinstance(error, httpx.LocalProtocolError):
        return False
    return isinstance(error, httpx.TransportError)


def never_acted(error: DcsError | httpx.RequestError) -> bool:
    """Whether the failed request certainly did not act: it never left this machine
    (`NOT_SENT_ERRORS`), or the service refused it before acting (429, a DCS busy code)."""
    return isinstance(error, (*NOT_SENT_ERRORS, DcsRateLimitedError, DcsBusyError))


def should_retry(error: DcsApiError | httpx.RequestError, *, idempotent: bool) -> bool:
    """Whether a failed attempt gets another: a transient error, and a request safe to repeat.

    Sending again is safe for an idempotent call, and for any call whose request never
    acted (`never_acted`). A 5xx or a timeout after sending may hide a request that did
    act, so those are retried for idempotent calls only. 400/401/403/404 are never retried.
    """
    return is_transient(error) and (idempotent or never_acted(error))


@dataclass(frozen=True)
class RetryNotice:
    """A retry about to happen: which call failed, on which attempt, why, and the wait.

    Holds nothing secret by construction: the path has no host and no query, and the cause
    is a status and DCS code or an exception's type, never a header, a body or a message.
    """

    operation: str
    method: str
    path: str
    #: The attempt that just failed, from 1.
    attempt: int
    max_attempts: int
    #: Seconds the client waits before the next attempt (what it hands to its `sleep`).
    delay: float
    cause: str


#: Called with every `RetryNotice`, just before the client waits.
OnRetry = Callable[[RetryNotice], None]


def describe_cause(error: DcsError | httpx.RequestError) -> str:
    """Why an attempt failed, without the error's text (it may quote a request)."""
    if isinstance(error, DcsApiError):
        # With no code in the body, error_code is the status itself: say it once.
        shown = error.error_code not in (None, "", str(error.status_code))
        code = f" {error.error_code}" if shown else ""
        return f"HTTP {error.status_code}{code}"
    return type(error).__name__


def log_retry(
    notice: RetryNotice,
    to: logging.Logger | logging.LoggerAdapter[Any] = logger,
    level: int = logging.DEBUG,
) -> None:
    """Log `notice` as one line on `to` (this module's logger at DEBUG unless told)."""
    to.log(
        level,
        "Retrying %s (%s %s) in %.2f s: attempt %d of %d failed with %s",
        notice.operation,
        notice.method,
        notice.path,
        notice.delay,
        notice.attempt,
        notice.max_attempts,
        notice.cause,
    )


__all__ = [
    "NOT_SENT_ERRORS",
    "OnRetry",
    "RetryNotice",
    "RetryPolicy",
    "describe_cause",
    "is_transient",
    "log_retry",
    "never_acted",
    "should_retry",
]
