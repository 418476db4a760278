"""Listing every task: the one paging loop of both clients, with and without a pace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.clients import Twin
from tests.fakes import CannedReplies, ok

TASKS = [{"task_id": f"t{i}", "status": "MIGRATING"} for i in range(5)]


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each paging test runs on both DcsClient and AsyncDcsClient."""
    return str(request.param)


def five_tasks_in_pages_of_two() -> CannedReplies:
    return CannedReplies(
        ok({"count": 5, "migration_tasks": TASKS[0:2]}),
        ok({"count": 5, "migration_tasks": TASKS[2:4]}),
        ok({"count": 5, "migration_tasks": TASKS[4:5]}),
    )


def test_pages_come_one_request_each(kind: str) -> None:
    """Pages are read by offset until the count is reached, each handed over whole."""
    replies = five_tasks_in_pages_of_two()
    pages = Twin(kind, replies).call("iter_migration_task_pages", page_size=2)
    assert [[t.task_id for t in page.migration_tasks] for page in pages] == [
        ["t0", "t1"],
        ["t2", "t3"],
        ["t4"],
    ]
    assert [r.url.params["offset"] for r in replies.requests] == ["0", "2", "4"]


def test_the_pace_comes_before_each_request_and_only_then(kind: str) -> None:
    """`pace` runs once before every page request, never after the last page."""
    replies = five_tasks_in_pages_of_two()
    order: list[str] = []
    real = replies.__call__

    def answer(request: Any) -> Any:
        order.append("request")
        return real(request)

    def pace() -> None:
        order.append("pace")

    async def apace() -> None:
        await asyncio.sleep(0)
        pace()

    twin = Twin(kind, answer)
    twin.call("iter_migration_task_pages", page_size=2, pace=pace if kind == "sync" else apace)
    assert order == ["pace", "request"] * 3
