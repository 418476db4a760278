"""The fault matrix's rows for a task created but left unconfigured (RUNNING, "pending
configuration"): the watch ends with `MigrationNotConfigured`, and nothing is cut over.

Same world as `tests/test_fault_matrix.py`: the real sandbox on 127.0.0.1 on the flows'
fake clock, polled every 15 s, the runbook with `cutover="exchange_ip"`. Exchanges are
counted as POSTs / exchanges that took effect: 0 / 0 where the task was never configured,
1 / 1 where it was configured (late, but within the grace).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from blocks.errors import MigrationNotConfigured
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

SET = "set_online_migration_task"
NOT_CONFIGURED = {**NOT_CUT_OVER, "error": MigrationNotConfigured}


def unconfigured(task_id: str) -> MigrationScript:
    return MigrationScript.unconfigured(task_id)


def configured_late(task_id: str) -> MigrationScript:
    """Someone configures it in the console at 200 s: full sync 55 s, ready at 255 s."""
    return MigrationScript.incremental(
        task_id, pending_seconds=200, full_seconds=55, exchanging_seconds=5
    )


def ended_at(seconds: float) -> Callable[[World, Any], None]:
    """The watch gave up at scenario second `seconds`, naming the task and the fix."""

    def check(world: World, result: Any) -> None:
        assert isinstance(result, MigrationNotConfigured)
        assert world.fake.monotonic() == pytest.approx(seconds)
        assert world.task_id in str(result)
        assert SET in str(result)
        # The watch only reads: it never configures a task someone else created.
        assert world.sandbox.state.count(SET) == 0

    return check


def completed(world: World, result: Any) -> None:
    """A task pending for 200 s is waited for, then cut over once."""
    assert result.task_status == "EXCHANGE_SUCCESS"


ROWS = [
    pytest.param(
        Case(script=unconfigured, **NOT_CONFIGURED),
        "runbook",
        ended_at(300),
        id="unconfigured-runbook",
    ),
    pytest.param(
        Case(script=unconfigured, error=MigrationNotConfigured, posts=0, exchanges=0),
        "wait",
        ended_at(300),
        id="unconfigured-wait",
    ),
    pytest.param(
        Case(
            script=unconfigured,
            parameters={"configure_grace_seconds": 60},
            **NOT_CONFIGURED,
        ),
        "runbook",
        ended_at(60),
        id="unconfigured-short-grace",
    ),
    pytest.param(
        Case(script=configured_late), "runbook", completed, id="configured-within-the-grace"
    ),
]


@pytest.mark.parametrize(("case", "target", "check"), ROWS)
async def test_a_task_left_unconfigured_in_the_fault_matrix(
    world_for: Callable[[Case], World],  # noqa: F811
    case: Case,
    target: str,
    check: Callable[[World, Any], None],
) -> None:
    """A task never configured ends the watch (0 / 0); one configured in time goes on (1 / 1)."""
    world = world_for(case)
    result = await run_case(world, target, case)
    if target == "runbook":
        check_runbook(world, case, result)
    else:
        assert world.sandbox.state.exchange_requests(world.task_id) == 0
        assert world.events() == []
    check(world, result)
