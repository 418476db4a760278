"""Time, injectable: every wait in `flows` reads the clock and sleeps through here.

Production uses the monotonic clock and `asyncio.sleep`. Tests and rehearsals swap in a
`FakeTime`, under which a 15-second poll interval takes no real time at all:

>>> import asyncio
>>> fake = FakeTime()
>>> with use_time(fake):
...     asyncio.run(current().sleep(15))
>>> fake.monotonic(), fake.sleeps
(15.0, [15])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Time:
    """A monotonic clock (deadlines), an async sleep, and a wall clock (timestamps)."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    now: Callable[[], datetime] = _utc_now


class FakeTime:
    """Time that passes only when someone sleeps; each sleep still yields to the loop."""

    def __init__(self, start: datetime | None = None) -> None:
        self.elapsed = 0.0
        self.start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += max(seconds, 0.0)
        await asyncio.sleep(0)

    def as_time(self) -> Time:
        """This fake as a `Time`."""
        return Time(monotonic=self.monotonic, sleep=self.sleep, now=self.now)


_current = Time()


def current() -> Time:
    """The `Time` in force."""
    return _current


@contextmanager
def use_time(replacement: Time | FakeTime) -> Iterator[None]:
    """Make `replacement` the time of every wait in `flows` inside the block."""
    global _current
    previous = _current
    _current = replacement.as_time() if isinstance(replacement, FakeTime) else replacement
    try:
        yield
    finally:
        _current = previous


__all__ = ["FakeTime", "Time", "current", "use_time"]
