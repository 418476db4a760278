"""The sandbox's stats during incremental sync: a lagging target, write bursts, a target that
never catches up, key counts that never match. Served over HTTP on injected time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import (
    ManualClock,
    MigrationScript,
    Scenario,
    ScenarioError,
    StatsScript,
    create_app,
    load_scenario,
)
from sandbox.sync import incremental_offset
from tests.test_sandbox_support import NOW, asgi_client, task_url, token_headers

#: Every incremental task below enters incremental sync at 12 s (RUNNING 2 s, full 10 s).
SYNC_STARTS = 12.0


def incremental(task_id: str, **stats: Any) -> MigrationScript:
    return MigrationScript.incremental(task_id, full_seconds=10, stats=stats)


SCENARIO = Scenario(
    tasks=[
        incremental("caught-up"),
        incremental("lagging", lag_offset=20480, lag_seconds=40),
        incremental("burst", bursts=[{"at": 100, "offset": 8192, "drain_seconds": 20}]),
        incremental("never", lag_offset=4096, lag_seconds=10, floor_offset=512),
        incremental("expiring", key_difference=3),
        MigrationScript.full("full", full_seconds=10),
    ]
)


@pytest.fixture
def clock() -> ManualClock:
    """Scenario time, moved by hand."""
    return ManualClock()


@pytest.fixture
async def stats(clock: ManualClock) -> AsyncIterator[Any]:
    """`await stats(task_id, at)`: the stats body at scenario second `at`."""
    app = create_app(SCENARIO, clock, utc_now=lambda: NOW)
    async with asgi_client(app) as client:
        client.headers.update(token_headers(SCENARIO))

        async def read(task_id: str, at: float) -> dict[str, Any]:
            clock.advance(at - clock())
            answer = await client.get(task_url(SCENARIO, task_id, "/stats"))
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        yield read


async def offsets(stats: Any, task_id: str, times: list[float]) -> list[int]:
    return [int((await stats(task_id, at))["offset"]) for at in times]


async def test_by_default_the_target_is_caught_up_from_the_start_of_incremental_sync(
    stats: Any,
) -> None:
    """Incremental sync with no `stats` script: offset 0 and equal key counts at once."""
    body = await stats("caught-up", SYNC_STARTS)
    figures = (body["offset"], body["source_dbsize"], body["target_dbsize"])
    assert figures == ("0", "100000", "100000")
    assert body["is_migrating"] is True


async def test_before_incremental_sync_the_offset_only_grows(stats: Any) -> None:
    """During the full migration the offset never reads 0: nothing to catch up to yet."""
    assert await offsets(stats, "caught-up", [3, 6, 11]) == [3072, 6144, 11264]


async def test_a_lagging_target_drains_to_zero(stats: Any) -> None:
    """lag_offset drains linearly over lag_seconds from the start of incremental sync."""
    times = [SYNC_STARTS, SYNC_STARTS + 10, SYNC_STARTS + 30, SYNC_STARTS + 40, 3600]
    assert await offsets(stats, "lagging", times) == [20480, 15360, 5120, 0, 0]


async def test_a_write_burst_raises_the_offset_again_then_drains(stats: Any) -> None:
    """Caught up, then at scenario second 100 the offset jumps by 8192 and drains over 20 s."""
    times = [SYNC_STARTS, 99.9, 100, 105, 119, 120, 200]
    assert await offsets(stats, "burst", times) == [0, 0, 8192, 6144, 410, 0, 0]


async def test_a_target_that_never_catches_up_keeps_its_floor(stats: Any) -> None:
    """floor_offset stays once the lag is drained: the offset never reads 0, even a day on."""
    times = [SYNC_STARTS, SYNC_STARTS + 10, 86400]
    assert await offsets(stats, "never", times) == [4608, 512, 512]


async def test_expiring_keys_leave_a_small_steady_key_difference(stats: Any) -> None:
    """key_difference: the target always has 3 keys fewer, with the offset at 0."""
    for at in (SYNC_STARTS, 600, 86400):
        body = await stats("expiring", at)
        figures = (body["offset"], body["source_dbsize"], body["target_dbsize"])
        assert figures == ("0", "100000", "99997")


async def test_a_finished_full_migration_reads_offset_0_and_not_migrating(stats: Any) -> None:
    """SUCCESS of a full migration: offset 0, equal keys, is_migrating false (no sync runs)."""
    body = await stats("full", 20)
    assert (body["offset"], body["target_dbsize"], body["is_migrating"]) == ("0", "100000", False)


def test_the_documented_yaml_loads(tmp_path: Path) -> None:
    """The format as documented in `sandbox.sync` loads from a scenario file."""
    path = tmp_path / "gate.yaml"
    path.write_text(
        "tasks:\n"
        "  - task_id: t1\n"
        "    stats:\n"
        "      lag_offset: 20480\n"
        "      lag_seconds: 40\n"
        "      floor_offset: 0\n"
        "      key_difference: 3\n"
        "      bursts:\n"
        "        - {at: 120, offset: 8192, drain_seconds: 30}\n"
    )
    script = load_scenario(path).tasks[0].stats
    assert script == StatsScript(
        lag_offset=20480,
        lag_seconds=40,
        key_difference=3,
        bursts=[{"at": 120, "offset": 8192, "drain_seconds": 30}],  # type: ignore[list-item]
    )
    assert incremental_offset(script, since=0, t=135) == 4096  # the burst, half drained


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        pytest.param({"lag_offset": 100}, "needs lag_seconds", id="lag-that-never-drains"),
        pytest.param({"lag_ofset": 100}, "lag_ofset", id="typo"),
        pytest.param({"floor_offset": -1}, "floor_offset", id="negative-floor"),
        pytest.param(
            {"bursts": [{"at": 5, "offset": 10, "drain_seconds": 0}]},
            "drain_seconds",
            id="burst-that-never-drains",
        ),
    ],
)
def test_bad_stats_scripts_are_refused(tmp_path: Path, stats: dict[str, Any], message: str) -> None:
    """A stats script that cannot mean anything fails the scenario, naming the field."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"tasks": [{"task_id": "t1", "stats": stats}]}))
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_the_bundled_lagging_scenario_has_each_case() -> None:
    """`lagging` ships a lagging target, a burst, one that never catches up, expiring keys."""
    scripts = {task.task_name: task.stats for task in load_scenario("lagging").tasks}
    assert scripts["migration-lagging"].lag_offset > 0
    assert scripts["migration-burst"].bursts
    assert scripts["migration-never-caught-up"].floor_offset > 0
    assert scripts["migration-expiring-keys"].key_difference > 0
