"""A watch outlives a Prefect API outage: its artifacts are reports, never the reason it fails."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from blocks.models import MigrationTask, MigrationTaskStats
from flows import wait
from flows.wait import PrefectObserver


async def _unreachable(*args: Any, **kwargs: Any) -> Any:
    raise httpx.ConnectError("All connection attempts failed")


@pytest.fixture
def api_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every artifact write fails as it does while the Prefect server is down."""
    writes = ("acreate_table_artifact", "acreate_progress_artifact", "aupdate_progress_artifact")
    for name in writes:
        monkeypatch.setattr(wait, name, _unreachable)


@pytest.mark.usefixtures("api_down")
async def test_the_timeline_artifact_failing_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The end-of-watch timeline write fails: a warning naming the artifact, no exception."""
    observer = PrefectObserver("project", logging.getLogger("watch"))
    observer.timeline.append({"task_id": "t1", "from": None, "to": "INCRMIGEATING"})
    with caplog.at_level(logging.WARNING):
        await observer.publish_timeline("dcs-migration-timeline-t1", "timeline")
    assert "dcs-migration-timeline-t1" in caplog.text
    assert "All connection attempts failed" in caplog.text


@pytest.mark.usefixtures("api_down")
async def test_a_progress_artifact_failing_is_a_warning_and_is_tried_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress writes fail during the outage (warned); the next change creates the artifact."""
    observer = PrefectObserver("project", logging.getLogger("watch"))
    task = MigrationTask(task_id="t1", status="FULLMIGRATING")
    with caplog.at_level(logging.WARNING):
        await observer.progress(task, MigrationTaskStats(full_migration_progress="10%"))
    assert "dcs-migration-progress-t1" in caplog.text

    created: list[float] = []

    async def create(percent: float, **kwargs: Any) -> Any:
        created.append(percent)
        return "artifact-id"

    monkeypatch.setattr(wait, "acreate_progress_artifact", create)
    await observer.progress(task, MigrationTaskStats(full_migration_progress="11%"))
    assert created == [11.0]
