"""The sandbox's sense of time: scenario seconds, injectable.

A clock is any `() -> float` returning scenario seconds; only differences matter. The
default runs `speed` times faster than the monotonic clock; tests drive a `ManualClock`
and never wait for a scripted duration.

>>> clock = ManualClock()
>>> clock.advance(90)
>>> clock()
90.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

#: Scenario seconds; only differences between two readings mean anything.
Clock = Callable[[], float]


class ScaledClock:
    """Monotonic seconds times `speed`: `ScaledClock(60)()` advances a minute per second."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            msg = f"speed must be positive, not {speed!r}"
            raise ValueError(msg)
        self.speed = speed

    def __call__(self) -> float:
        return time.monotonic() * self.speed


class ManualClock:
    """A clock that moves only when told to (thread-safe: the server reads it in its thread)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move forward by `seconds` scenario seconds."""
        if seconds < 0:
            msg = f"a clock does not go back: advance({seconds!r})"
            raise ValueError(msg)
        with self._lock:
            self._now += seconds


def utc_now() -> datetime:
    """The wall clock, in UTC (what `X-Sdk-Date` is checked against)."""
    return datetime.now(timezone.utc)


__all__ = ["Clock", "ManualClock", "ScaledClock", "utc_now"]
