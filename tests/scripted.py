"""The scripted DCS of the watch tests, under the name they first knew it by.

It is `tests.fakes.FakeDcs` now (its default mode); this module keeps old imports working.
"""

from __future__ import annotations

from tests.fakes import CAUGHT_UP, PASSWORD, FakeDcs, StatsStep, Step

ScriptedDcs = FakeDcs

__all__ = ["CAUGHT_UP", "PASSWORD", "ScriptedDcs", "StatsStep", "Step"]
