"""`dcs-migrate demo` gives Prefect's local server time to start, and says what it waits for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PROBE = Path(__file__).parent / "demo_startup_probe.py"
TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


@pytest.mark.parametrize(
    ("user_value", "waits"),
    [
        pytest.param(None, 180, id="unset-the-demo-waits-180"),
        pytest.param("45", 45, id="set-the-user-value-stands"),
    ],
)
def test_the_demo_waits_long_enough_for_prefect(
    tmp_path: Path, user_value: str | None, waits: int
) -> None:
    """The server's start reads 180 s unless the user set a value; a time-out gets advice."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "COLUMNS": "200",
    }
    env.pop("PREFECT_API_URL", None)  # the demo's own case: Prefect's ephemeral server
    env.pop(TIMEOUT, None)
    if user_value is not None:
        env[TIMEOUT] = user_value
    done = subprocess.run(
        [sys.executable, str(PROBE)], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert f"server start waits {waits} s" in done.stdout, output
    assert f"Starting Prefect's local server (waiting up to {waits} s" in done.stdout, output
    assert f"did not answer within {waits} s" in done.stdout, output
    assert TIMEOUT in done.stdout, output
    assert "Traceback" not in output
    assert done.returncode == 1, output
