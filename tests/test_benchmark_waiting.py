"""`benchmarks.waiting` and its report: per-interval figures, the extrapolation, the targets."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from benchmarks import harness, report_waiting, waiting
from benchmarks.waiting import WaitingMeasurement, WaitingSettings

SETTINGS = WaitingSettings(
    fleet_sizes=[100, 1000], runbook_sizes=[100], extrapolate_to=1000, interval=15, window=60
)


def _measured(way: str, tasks: int, rss: float, cpu_s: float, shows: int) -> WaitingMeasurement:
    return WaitingMeasurement(
        way=way,
        migrations=tasks,
        processes=tasks if way == "runbooks" else 1,
        window_s=60.0,
        cpu_s=cpu_s,
        peak_rss_mb=rss,
        peak_sum_rss_mb=rss,
        requests={"show_migration_task": shows, "list_migration_tasks": 4 if shows == 0 else 0},
        worker_cpu_s=0.1,
        worker_peak_rss_mb=120,
        server_cpu_s=1.0,
        sandbox_cpu_s=0.5,
        to_running_s=30,
        startup_cpu_s=2,
    )


def test_requests_and_cpu_are_per_interval_and_per_core() -> None:
    """400 shows in a 60 s window at 15 s are 100 per interval; 3 s of CPU is 5% of a core."""
    m = _measured("runbooks", 100, 10_000, 3.0, 400)
    assert m.per_interval(15) == pytest.approx(100)
    assert m.per_interval(15, "show_migration_task") == pytest.approx(100)
    assert m.cpu_percent == pytest.approx(5)


def test_runbooks_not_run_are_extrapolated_and_labelled_so() -> None:
    """1,000 runbooks come from 100 measured x 10, labelled NOT RUN and extrapolated."""
    ms = [
        _measured("fleet", 100, 120, 0.3, 0),
        _measured("fleet", 1000, 150, 0.6, 0),
        _measured("runbooks", 100, 10_000, 3.0, 400),
    ]
    lines, targets = report_waiting.section(ms, SETTINGS)
    text = "\n".join(lines)
    assert "**1,000 runbooks: NOT RUN.** Extrapolated, not measured" in text
    assert "100.0 MB x 1,000 = **100,000 MB**" in text
    assert "**50.0%** of a core" in text
    assert "**1,000 per interval**" in text
    # Measured ratio at 100: 10,000 / 120 MB; the extrapolated one is marked as such.
    assert "| 100 | measured | 83.33 | 10.00 | 100.00 |" in text
    assert "| 1,000 | **extrapolated** runbooks (100 x 10) / measured fleet | 666.67 |" in text
    assert [(t.met, t.measured) for t in targets] == [(True, "150 MB"), (True, "1.00%")]


@pytest.mark.parametrize(
    ("rss", "cpu_s", "met"),
    [
        pytest.param(300, 6.0, [True, True], id="at-the-limits"),
        pytest.param(301, 6.1, [False, False], id="over-both"),
    ],
)
def test_fleet_targets_at_1000(rss: float, cpu_s: float, met: list[bool]) -> None:
    """The fleet at 1,000 meets 300 MB and 10% of a core up to the limit, not beyond."""
    _, targets = report_waiting.section([_measured("fleet", 1000, rss, cpu_s, 0)], SETTINGS)
    assert [t.met for t in targets] == met


def test_runbooks_that_would_not_fit_are_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """With too little memory free, the runbooks are NOT RUN, and the row says why."""
    monkeypatch.setattr(waiting, "_available_mb", lambda: 8000.0)
    settings = WaitingSettings([], [100], 1000, 15, 60)
    (m,) = waiting.run(settings, None, None, lambda _: None)  # type: ignore[arg-type]
    assert m.not_run is not None
    assert "needs ~16,072 MB" in m.not_run
    assert "8,000 MB available" in m.not_run
    lines, targets = report_waiting.section([m], settings)
    assert any("| 100 | `runbooks` | NOT RUN: needs" in line for line in lines)
    assert targets == []


def test_a_failed_row_is_reported_and_the_others_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A measurement that fails becomes a row saying why; the next one is still measured."""
    done = _measured("fleet", 1000, 150, 0.6, 0)

    def measure(way: str, tasks: int, *_: object) -> WaitingMeasurement:
        if way == "runbooks":
            raise harness.BenchmarkError("flow runs not all Running: {'CRASHED': 1}")
        return done

    monkeypatch.setattr(waiting, "measure", measure)
    monkeypatch.setattr(waiting, "_available_mb", lambda: 1e9)
    settings = WaitingSettings([], [20], 1000, 15, 60)
    settings.fleet_sizes = [1000]
    failed, kept = reversed(waiting.run(settings, None, None, lambda _: None))  # type: ignore[arg-type]
    assert kept is done
    assert failed.not_run == "failed: flow runs not all Running: {'CRASHED': 1}"


def test_a_child_process_is_found_measured_and_stopped() -> None:
    """A child shows up under our PID with its memory and CPU, and is stopped by its PID."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in harness.descendants(os.getpid())
        rss, peak = harness.pid_memory_mb(child.pid)
        assert 0 < rss <= peak
        assert harness.pid_cpu_seconds(child.pid) >= 0
        harness.signal_pid(child.pid, "TERM")
        child.wait(timeout=10)
        assert not harness.pid_alive(child.pid)
        assert harness.pid_memory_mb(child.pid) == (0.0, 0.0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def test_a_prefect_server_too_busy_to_count_states_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timed-out state count is {} (asked again before the deadline), not a crash."""
    said: list[str] = []

    def timeout(*_: object, **__: object) -> None:
        raise httpx.ReadTimeout("timed out")

    monkeypatch.setattr(httpx, "post", timeout)
    assert waiting._states_or_busy("http://127.0.0.1:1/api", ["a"], said.append) == {}
    assert len(said) == 1
    assert "did not answer" in said[0]
