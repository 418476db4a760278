"""How far the target lags the source during incremental sync: the stats' `offset` and keys.

DCS's stats (`GET .../migration-task/{task_id}/stats`) report `offset`, "the difference
between the data of the source and the target Redis during incremental migration" (0: no
difference), and the key counts `source_dbsize` and `target_dbsize`. A task's `stats`
script says how they move once the task is in incremental sync; the default is a target
that is caught up from the first moment, with equal key counts.

```yaml
stats:
  lag_offset: 20480      # the offset when incremental sync begins ...
  lag_seconds: 40        # ... drained linearly to 0 over 40 s: a lagging target
  floor_offset: 0        # never below this: more than 0 is a target that never catches up
  key_difference: 3      # target_dbsize = source_dbsize - 3 (keys that expire: no exact match)
  bursts:                # a write burst at scenario second 120: the offset jumps by 8192,
    - {at: 120, offset: 8192, drain_seconds: 30}   # then drains over 30 s
```

`lag_seconds` counts from the start of incremental sync; a burst's `at` is scenario time
(seconds since the sandbox started, like `deleted_after_seconds`). The offset is the sum
of what is left of the lag and of every burst, plus `floor_offset`.

>>> script = StatsScript(lag_offset=1000, lag_seconds=10, bursts=[{"at": 50, "offset": 400,
...     "drain_seconds": 4}])
>>> [incremental_offset(script, since=20, t=t) for t in (20, 25, 30, 50, 52, 54)]
[1000, 500, 0, 400, 200, 0]
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    # A typo in a scenario file should fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class WriteBurst(_Strict):
    """At scenario second `at`, the offset jumps by `offset`, then drains over `drain_seconds`."""

    at: float = Field(ge=0)
    offset: int = Field(gt=0)
    drain_seconds: float = Field(gt=0)


class StatsScript(_Strict):
    """The stats of incremental sync: a lag that drains, a floor, bursts, a key difference."""

    lag_offset: int = Field(default=0, ge=0)
    lag_seconds: float = Field(default=0.0, ge=0)
    floor_offset: int = Field(default=0, ge=0)
    #: source_dbsize - target_dbsize during incremental sync (negative: the target has more).
    key_difference: int = 0
    bursts: list[WriteBurst] = Field(default_factory=list)

    @model_validator(mode="after")
    def _drains(self) -> StatsScript:
        if self.lag_offset > 0 and self.lag_seconds <= 0:
            msg = (
                f"stats: lag_offset {self.lag_offset} needs lag_seconds > 0 (how long the "
                "target takes to catch up)"
            )
            raise ValueError(msg)
        return self


def _left(amount: int, start: float, seconds: float, t: float) -> float:
    """What is left at `t` of `amount` that appeared at `start` and drains over `seconds`."""
    if t < start:
        return 0.0
    if seconds <= 0 or t >= start + seconds:
        return 0.0
    return amount * (1 - (t - start) / seconds)


def incremental_offset(script: StatsScript, *, since: float, t: float) -> int:
    """The offset at scenario time `t` of a task in incremental sync since `since`."""
    left = _left(script.lag_offset, since, script.lag_seconds, t)
    left += sum(_left(burst.offset, burst.at, burst.drain_seconds, t) for burst in script.bursts)
    # Rounded up: a backlog of a fraction of a byte is still a backlog, never a false 0.
    return script.floor_offset + int(-(-left // 1))


__all__ = ["StatsScript", "WriteBurst", "incremental_offset"]
