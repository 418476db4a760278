"""The clients' `pace` hook: called before every request they send, retries included."""

from __future__ import annotations

import httpx
import pytest

from tests.clients import Twin
from tests.fakes import CannedReplies, ok

TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
TASK = {"task_id": TASK_ID, "status": "SUCCESS"}


class Journal:
    """What happened, in order: 'pace' for each pace call, 'send' for each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.events: list[str] = []
        self.replies = CannedReplies(*answers)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.events.append("send")
        return self.replies(request)

    def pace_sync(self) -> None:
        self.events.append("pace")

    async def pace_async(self) -> None:
        self.events.append("pace")

    def twin(self, kind: str) -> Twin:
        pace = self.pace_sync if kind == "sync" else self.pace_async
        return Twin(kind, self.handler, pace=pace)


@pytest.mark.parametrize(
    "kind", [pytest.param("sync", id="sync"), pytest.param("async", id="async")]
)
def test_pace_comes_before_every_attempt(kind: str) -> None:
    """Each attempt, the retries after a 503 too, waits for `pace` before it is sent."""
    journal = Journal(httpx.Response(503, json={}), httpx.Response(503, json={}), ok(TASK))
    journal.twin(kind).call("show_migration_task", TASK_ID)
    assert journal.events == ["pace", "send"] * 3


@pytest.mark.parametrize(
    "kind", [pytest.param("sync", id="sync"), pytest.param("async", id="async")]
)
def test_every_page_of_a_listing_is_paced(kind: str) -> None:
    """Paging through tasks paces each page's request, without a per-call pace."""
    page = {"count": 3, "migration_tasks": [{"task_id": "a"}, {"task_id": "b"}]}
    last = {"count": 3, "migration_tasks": [{"task_id": "c"}]}
    journal = Journal(ok(page), ok(last))
    tasks = journal.twin(kind).call("iter_migration_tasks", page_size=2)
    assert [task.task_id for task in tasks] == ["a", "b", "c"]
    assert journal.events == ["pace", "send"] * 2


def test_without_pace_nothing_waits() -> None:
    """A client made without `pace` sends at once, as before."""
    journal = Journal(ok(TASK))
    Twin("async", journal.handler).call("show_migration_task", TASK_ID)
    assert journal.events == ["send"]
