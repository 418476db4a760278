"""The fault matrix's catch-up gate rows: the target lags, bursts or never catches up.

Same world as `tests/test_fault_matrix.py` (whose helpers these rows reuse): the real
sandbox on 127.0.0.1 on the flows' fake clock, `migration_runbook` with
`cutover="exchange_ip"`, polled every 15 s. The task is in incremental sync from 57 s and
the wait sees it at 60 s, where the gate (defaults: a read every 10 s, 60 s caught up in a
row, 1800 s at most) starts. Exchanges are counted as POSTs / exchanges that took effect:
0 / 0 where the gate must hold, 1 / 1 where it must pass. The README's "Reliability"
table lists these rows too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from blocks.errors import CutoverGateTimeout
from sandbox import MigrationScript
from tests.test_fault_matrix import (
    NOT_CUT_OVER,
    Case,
    World,
    check_runbook,
    run_case,
    sink,  # noqa: F401 - a fixture
    world_for,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

STATS = "show_migration_task_stats"
#: When the wait hands over to the gate: the first poll that sees incremental sync.
GATE_STARTS = 60.0
HELD = {**NOT_CUT_OVER, "error": CutoverGateTimeout, "notes": ("ready for cutover", "failed")}


def lagging(**stats: Any) -> Callable[[str], MigrationScript]:
    """The matrix's incremental task (ready at 57 s) with these stats in incremental sync."""
    return lambda task_id: MigrationScript.incremental(
        task_id, full_seconds=55, exchanging_seconds=5, stats=stats
    )


def posted_at(seconds: float) -> Callable[[World, Any], None]:
    """The POST came at scenario second `seconds`: when the gate passed, not before."""

    def check(world: World, result: Any) -> None:
        assert world.posted_at() == pytest.approx(seconds)
        assert result.caught_up.offset == 0

    return check


def held(fragment: str, at: float) -> Callable[[World, Any], None]:
    """The gate held at scenario second `at`, saying `fragment`, with no POST at all."""

    def check(world: World, result: Any) -> None:
        assert isinstance(result, CutoverGateTimeout)
        assert fragment in str(result)
        assert world.fake.monotonic() == pytest.approx(at)
        assert world.sandbox.state.count(STATS, task_id=world.task_id) > 0

    return check


ROWS = [
    pytest.param(
        # Offset 40960 at 57 s, drained to 0 at 147 s, read at 150 s: passed a minute later.
        Case(script=lagging(lag_offset=40960, lag_seconds=90)),
        posted_at(150 + 60),
        id="lagging-then-caught-up",
    ),
    pytest.param(
        # Expiring keys: 12 keys apart for ever, well within max_key_difference (1000).
        Case(script=lagging(key_difference=12)),
        posted_at(GATE_STARTS + 60),
        id="keys-off-by-less-than-max",
    ),
    pytest.param(
        # Caught up at 60-80 s, a burst at 90 s drained by 120 s: the window starts again.
        Case(script=lagging(bursts=[{"at": 90, "offset": 8192, "drain_seconds": 30}])),
        posted_at(120 + 60),
        id="burst-during-settle-then-caught-up",
    ),
    pytest.param(
        # The offset never drops below 2 KiB: held at the default deadline, 1800 s on.
        Case(script=lagging(lag_offset=8192, lag_seconds=30, floor_offset=2048), **HELD),
        held("offset 2048 > max_offset 0", GATE_STARTS + 1800),
        id="never-caught-up",
    ),
    pytest.param(
        # Caught up at 60-80 s, then a burst that takes 10 minutes to drain; 2 min allowed.
        Case(
            script=lagging(bursts=[{"at": 90, "offset": 8192, "drain_seconds": 600}]),
            parameters={"gate_timeout_seconds": 120},
            **HELD,
        ),
        held("passing reads lasted at most 20 s in a row", GATE_STARTS + 120),
        id="burst-during-settle-short-timeout",
    ),
    pytest.param(
        # Caught up, but 5000 keys apart: more than max_key_difference, so not caught up.
        Case(
            script=lagging(key_difference=5000),
            parameters={"gate_timeout_seconds": 300},
            **HELD,
        ),
        held("key difference 5000 > max_key_difference 1000", GATE_STARTS + 300),
        id="keys-apart-beyond-max",
    ),
]


@pytest.mark.parametrize(("case", "check"), ROWS)
async def test_the_gate_in_the_fault_matrix(
    world_for: Callable[[Case], World],  # noqa: F811
    case: Case,
    check: Callable[[World, Any], None],
) -> None:
    """The gate holds a lagging target (0 / 0) and lets a caught-up one through (1 / 1)."""
    world = world_for(case)
    result = await run_case(world, "runbook", case)
    check_runbook(world, case, result)
    check(world, result)
