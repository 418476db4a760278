"""`migration_fleet`'s approvals and its parallel limit, against a scripted DCS on loopback:
one question per wave or per task, asked before any exchange, a rejection costing only its
own tasks; never more than `max_parallel_cutovers` tasks past their gate at once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import aresume_flow_run
from prefect.runtime import flow_run

import flows.fleet
from flows.approval import Approval
from tests.fleet_world import FleetWorld

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.usefixtures("quick_approval_poll"),
]
#: Real seconds a question may take to show as a paused run (the Prefect API is local).
PAUSE_SECONDS = 60.0


@dataclass
class Asked:
    """One question the fleet asked: its subject, the form's text, and the exchanges before."""

    subject: str
    description: str
    exchanges_before: int


@dataclass
class Approver:
    """Stands in the UI: sees each question the fleet asks, and answers it on the run."""

    fleet: FleetWorld
    questions: asyncio.Queue[tuple[UUID, Asked]] = field(default_factory=asyncio.Queue)
    asked: list[Asked] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = flows.fleet.pause_for_approval

        async def noted(subject: str, key: str, timeout: int, description: str) -> Approval:
            exchanges = sum(self.fleet.dcs.task_posts.values())
            question = Asked(subject, description, exchanges)
            self.asked.append(question)
            self.questions.put_nowait((UUID(str(flow_run.id)), question))
            return await real(subject, key, timeout, description)

        monkeypatch.setattr(flows.fleet, "pause_for_approval", noted)

    async def next_question(self, run: asyncio.Task[Any]) -> tuple[UUID, Asked] | None:
        """The next question, once its run shows paused; None when the run ended instead."""
        getting = asyncio.ensure_future(self.questions.get())
        await asyncio.wait({getting, run}, return_when=asyncio.FIRST_COMPLETED)
        if not getting.done():
            getting.cancel()
            return None
        run_id, question = getting.result()
        deadline = time.monotonic() + PAUSE_SECONDS
        async with get_client() as client:
            while (await client.read_flow_run(run_id)).state_type != StateType.PAUSED:
                assert time.monotonic() < deadline, f"never paused for {question.subject}"
                await asyncio.sleep(0.05)
        return run_id, question


async def test_one_question_per_wave_and_a_rejected_wave_costs_only_its_tasks(
    fleet: FleetWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """per_wave: a question a wave, before its exchanges; wave 1 approved, wave 2 rejected."""
    for n in range(4):
        fleet.add(f"t{n}", "INCRMIGEATING")
    approver = Approver(fleet)
    approver.install(monkeypatch)
    run = asyncio.ensure_future(fleet.run(approval="per_wave", wave_size=2))
    answered = 0
    while (question := await approver.next_question(run)) is not None:
        answered += 1
        approve = answered == 1
        await aresume_flow_run(question[0], run_input={"approve": approve, "comment": "ok"})
    state = await run

    assert state.is_failed()
    rows = await fleet.summary(state)
    waves = {row["wave"] for row in rows.values()}
    assert answered == len(waves) >= 2  # one question per wave, and every wave asked
    first = approver.asked[0]
    assert first.exchanges_before == 0  # nothing exchanged before the answer
    assert first.subject.startswith("wave 1 of the fleet")
    assert "caught up before approval: offset 0" in first.description  # the gate's figures
    for name, row in rows.items():
        approved = row["wave"] == 1
        assert fleet.exchanges(name) == int(approved), name
        assert row["stage"] == ("cut over" if approved else "failed"), name
        if not approved:
            assert row["outcome"].startswith("CutoverRejected"), name
    subjects = [subject.split(":")[0] for subject in fleet.world.notifications()]
    expected = [f"DCS migration fleet, wave {n}" for n in range(1, len(waves) + 1)]
    assert subjects == [*expected, "DCS migration fleet done"]


@pytest.mark.parametrize(
    ("gate", "shown"),
    [
        pytest.param("on", "Latest stats: caught up before approval: offset 0", id="gate-on"),
        # The runbook's form (flows.handover): with no gate, one fresh read of the stats.
        pytest.param("off", "Latest stats: offset 0, source 1000 keys", id="gate-off"),
    ],
)
async def test_one_question_per_task_showing_the_latest_stats(
    fleet: FleetWorld, monkeypatch: pytest.MonkeyPatch, gate: str, shown: str
) -> None:
    """per_task: each task asks on its own; the approved one is exchanged, the other is not."""
    fleet.add("a", "INCRMIGEATING")
    fleet.add("b", "INCRMIGEATING")
    approver = Approver(fleet)
    approver.install(monkeypatch)
    run = asyncio.ensure_future(fleet.run(approval="per_task", gate=gate))
    answers: dict[str, bool] = {}
    while (question := await approver.next_question(run)) is not None:
        (name,) = [name for name, task_id in fleet.ids.items() if task_id in question[1].subject]
        answers[name] = not answers  # the first asked is approved, the second rejected
        await aresume_flow_run(question[0], run_input={"approve": answers[name], "comment": ""})
    state = await run

    assert state.is_failed()
    assert sorted(answers.values()) == [False, True]  # two questions, one a task
    assert approver.asked[0].exchanges_before == 0
    assert all(shown in asked.description for asked in approver.asked)
    rows = await fleet.summary(state)
    for name, approved in answers.items():
        assert fleet.exchanges(name) == int(approved), name
        assert rows[name]["stage"] == ("cut over" if approved else "failed"), name


@pytest.mark.parametrize(
    ("limit", "peak"),
    [
        pytest.param(1, 1, id="one-at-a-time"),
        pytest.param(2, 2, id="two-at-a-time"),
    ],
)
async def test_never_more_than_max_parallel_cutovers_at_once(
    fleet: FleetWorld, monkeypatch: pytest.MonkeyPatch, limit: int, peak: int
) -> None:
    """Six ready tasks: at most `limit` of them in their gate or exchange at any moment."""
    for n in range(6):
        fleet.add(f"t{n}", "INCRMIGEATING")
    inside: Counter[str] = Counter()
    alone = flows.fleet._Fleet.alone

    async def counted(self: Any, task: Any) -> bool:
        inside["now"] += 1
        inside["peak"] = max(inside["peak"], inside["now"])
        try:
            return bool(await alone(self, task))
        finally:
            inside["now"] -= 1

    monkeypatch.setattr(flows.fleet._Fleet, "alone", counted)
    state = await fleet.run(max_parallel_cutovers=limit)
    assert state.is_completed()
    assert inside["peak"] == peak
    assert all(fleet.exchanges(name) == 1 for name in fleet.ids)
