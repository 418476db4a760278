"""Counting requests per one-second window, as an API gateway's rate limit sees them."""

from __future__ import annotations

import bisect


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any one second (a window at each arrival)."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, start + 1.0) - i for i, start in enumerate(ordered)),
        default=0,
    )


def paced_rate(times: list[float], burst: int) -> float:
    """Requests per second after the first burst: the rate a token bucket would give."""
    ordered = sorted(times)
    return (len(ordered) - burst) / (ordered[-1] - ordered[0])


__all__ = ["busiest_second", "paced_rate"]
