"""dcs-migrate status / watch: output, exit codes, settings from the environment or a block."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.cli import EXIT_ERROR, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, main
from flows.clock import FakeTime, use_time
from sandbox.scenario import DEFAULT_SECRET_KEY
from tests.conftest import TASK_ID, StubDcs
from tests.fakes import PASSWORD, FakeDcs, Step

TOKEN = "cli-token-canary-77aa"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def dcs(stub_dcs: StubDcs, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDcs]:
    """A scripted DCS on loopback, reached through DCS_* variables; time is fake."""
    scripted = FakeDcs({}, progress=[12.0, 50.0, 100.0])
    stub_dcs.handler = scripted.stub_handler
    monkeypatch.setenv("DCS_ENDPOINT", stub_dcs.url)
    monkeypatch.setenv("DCS_PROJECT_ID", "project-1")
    monkeypatch.setenv("DCS_TOKEN", TOKEN)
    with use_time(FakeTime()):
        yield scripted


def test_status_prints_one_line(dcs: FakeDcs, capsys: pytest.CaptureFixture[str]) -> None:
    """status shows the task's name, raw status and what it means; exit 0."""
    dcs.scripts[TASK_ID] = ["INCRMIGEATING"]
    assert main(["status", TASK_ID]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"migration-{TASK_ID}" in out
    assert "INCRMIGEATING" in out
    assert "ready for cutover" in out
    assert PASSWORD not in out


@pytest.mark.parametrize(
    ("sent", "other"),
    [
        pytest.param("INCRMIGEATING", "INCRMIGRATING", id="live-spelling"),
        pytest.param("INCRMIGRATING", "INCRMIGEATING", id="documented-spelling"),
    ],
)
def test_status_and_watch_spell_the_status_as_sent(
    dcs: FakeDcs, capsys: pytest.CaptureFixture[str], sent: str, other: str
) -> None:
    """status, and every line of watch (its last, "done: ...", too) show what DCS sent."""
    dcs.scripts[TASK_ID] = ["MIGRATING", sent]
    assert main(["watch", TASK_ID, "--interval", "10"]) == EXIT_OK
    assert main(["status", TASK_ID]) == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())  # as one line: Rich wraps long ones
    assert f"MIGRATING -> {sent}" in out
    assert f"done: migration-{TASK_ID} (a276c1ff...) {sent}" in out
    assert f"migration-{TASK_ID} ({TASK_ID}): {sent} task_status - ready for cutover" in out
    assert other not in out


@pytest.mark.parametrize(
    ("task_status", "stage"),
    [
        pytest.param("EXCHANGING", "IP exchange under way", id="exchanging"),
        pytest.param("EXCHANGE_SUCCESS", "IP exchange done", id="exchanged"),
        pytest.param("ROLLBACK_SUCCESS", "IP exchange rolled back", id="rolled-back"),
    ],
)
def test_status_says_where_the_ip_exchange_is(
    dcs: FakeDcs, capsys: pytest.CaptureFixture[str], task_status: str, stage: str
) -> None:
    """Once task_status names an exchange, status says so, no longer "ready for cutover"."""
    dcs.scripts[TASK_ID] = ["INCRMIGEATING"]
    dcs.loose = {"task_status": task_status}
    assert main(["status", TASK_ID]) == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())  # as one line: Rich wraps long ones
    assert out.endswith(f"INCRMIGEATING task_status {task_status} {stage}")
    assert "ready for cutover" not in out


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        pytest.param(["RUNNING", "FULLMIGRATING", "FULLMIGRATING", "SUCCESS"], EXIT_OK, id="done"),
        pytest.param(["MIGRATING", "INCRMIGEATING"], EXIT_OK, id="ready"),
        pytest.param(["MIGRATING", "MIGRATION_FAILED"], EXIT_FAILED, id="failed"),
        pytest.param([404], EXIT_FAILED, id="not-found"),
        pytest.param(["MIGRATING"], EXIT_TIMEOUT, id="timeout"),
        pytest.param([401], EXIT_ERROR, id="refused"),
    ],
)
def test_watch_exit_codes(
    dcs: FakeDcs, capsys: pytest.CaptureFixture[str], steps: list[Step], code: int
) -> None:
    """watch exits 0 done or ready, 1 failed or gone, 2 timed out, 3 when DCS cannot be asked."""
    dcs.scripts[TASK_ID] = steps
    assert main(["watch", TASK_ID, "--interval", "10", "--timeout", "60"]) == code
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    assert TOKEN not in captured.out + captured.err


def test_watch_shows_changes_and_progress(dcs: FakeDcs, capsys: pytest.CaptureFixture[str]) -> None:
    """Each change is a line; the full migration's progress reaches the bar."""
    dcs.scripts[TASK_ID] = ["RUNNING", "FULLMIGRATING", "FULLMIGRATING", "SUCCESS"]
    main(["watch", TASK_ID, "--interval", "60"])
    out = capsys.readouterr().out
    assert "(first look) -> RUNNING" in out
    assert "RUNNING -> FULLMIGRATING" in out
    assert "FULLMIGRATING -> SUCCESS" in out
    assert dcs.requests["stats"] == 2


def test_watch_rides_over_loose_values(dcs: FakeDcs, capsys: pytest.CaptureFixture[str]) -> None:
    """A task with bandwidth "unlimited" and progress "n/a" is watched to its end, exit 0."""
    dcs.scripts[TASK_ID] = ["FULLMIGRATING", "FULLMIGRATING", "SUCCESS"]
    dcs.loose = {"bandwidth_limit_mb": "unlimited", "updated_at": "not yet"}
    dcs.progress = ["n/a", "12.5"]
    assert main(["watch", TASK_ID, "--interval", "60"]) == EXIT_OK
    assert "FULLMIGRATING -> SUCCESS" in capsys.readouterr().out
    assert dcs.requests["stats"] == 2


def test_missing_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without DCS_* variables or a block, the error says what to set; exit 3."""
    for name in ("DCS_ENDPOINT", "DCS_REGION", "DCS_PROJECT_ID", "DCS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert main(["status", TASK_ID]) == EXIT_ERROR
    assert "project_id" in capsys.readouterr().err


def test_help_explains_every_option() -> None:
    """--help of each command lists its options with a description."""
    for command, options in {
        "status": ["--block"],
        "watch": ["--block", "--until", "--interval", "--timeout", "Exit code"],
        "sandbox": ["--host", "--port", "--scenario"],
        "demo": ["--scenario"],
    }.items():
        out = subprocess.run(
            [sys.executable, "-c", "from flows.cli import run; run()", command, "--help"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        for option in options:
            assert option in out, (command, option)


def test_status_from_the_environment_does_not_import_prefect(stub_dcs: StubDcs) -> None:
    """The status path stays free of Prefect, so it answers fast."""
    scripted = FakeDcs({TASK_ID: ["SUCCESS"]})
    stub_dcs.handler = scripted.stub_handler
    code = (
        "import sys; from flows.cli import main; code = main(['status', sys.argv[1]]);"
        "print('prefect' in sys.modules, code)"
    )
    env = {"DCS_ENDPOINT": stub_dcs.url, "DCS_PROJECT_ID": "p", "DCS_TOKEN": TOKEN, "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code, TASK_ID], capture_output=True, text=True, env=env,
        check=True,
    ).stdout  # fmt: skip
    assert out.split()[-2:] == ["False", "0"]


@pytest.mark.e2e
def test_the_demo_runs_the_whole_runbook(tmp_path: Path) -> None:
    """`dcs-migrate demo`, the first Quickstart command: exits 0 after one IP exchange."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "100",
        # This checkout's code, whichever checkout the environment has installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("PREFECT_API_URL", None)  # the demo's point: Prefect's embedded server
    env.pop("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", None)  # the demo's own wait
    done = subprocess.run(
        [sys.executable, "-c", "from flows.cli import run; run()", "demo"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "IP exchanges the sandbox saw │ 1" in done.stdout
    assert "notifications received       │ 2" in done.stdout
    assert "EXCHANGE_SUCCESS" in done.stdout
    assert "Starting Prefect's local server (waiting up to 180 s" in done.stdout
    for secret in ("DCStest123", "DCStarget456", DEFAULT_SECRET_KEY):  # Redis passwords, SK
        assert secret not in done.stdout + done.stderr
