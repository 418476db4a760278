"""The production shape works: PostgreSQL, two workers, twenty runbooks, sensor, automation.

The stack of `tests/production.py`; the faults of a long watch on the same stack are in
`tests/test_faults.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.production import (
    TASK_IDS,
    TO_READY,
    all_final,
    all_watching,
    exchanges,
    production_stack,
    running_runs,
    start_runbooks,
)
from tests.stack import PREFECT, Stack, cli, final, runs_of, start, until

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The production-shaped stack, fresh for the test."""
    with production_stack(tmp_path) as (running, _database):
        yield running


async def test_twenty_runbooks_two_workers_on_postgres_each_exchange_once(stack: Stack) -> None:
    """20 runbooks on 2 workers, the sensor and the automatic cutover on: all Completed, 20x1."""
    cli(stack.env, PREFECT, "automation", "resume", "dcs-auto-cutover", log=stack.logs / "on.log")
    runs = await start_runbooks(stack)
    await all_watching(stack)
    stack.advance_sandbox(TO_READY)

    # The sensor (as scheduled: every task, its one state) sees each task ready once: the
    # automation starts a run for each, and each stands down, since a runbook already
    # stands for its task (or has cut it over).
    sensor = await start(stack, "dcs-migration-sensor/every-2-minutes", {})
    assert (await final(stack, sensor)).state.is_completed()

    for task_id, run in (await all_final(stack, runs)).items():
        assert run.state.is_completed(), f"{task_id}: {run.state.type} {run.state.message}"
    assert exchanges(stack) == dict.fromkeys(TASK_IDS, 1)

    async def automatic_runs_done() -> list[Any] | None:
        automatic = await runs_of(stack, "dcs-migration-runbook/cutover-on-ready")
        done = len(automatic) >= len(TASK_IDS) and all(r.state.is_final() for r in automatic)
        return automatic if done else None

    automatic = await until(stack, "20 automatic runs did not end", automatic_runs_done, 240)
    assert sorted(run.parameters["task_id"] for run in automatic) == TASK_IDS
    for run in automatic:
        assert run.state.is_completed(), run.state.message
    assert await running_runs(stack) == []
