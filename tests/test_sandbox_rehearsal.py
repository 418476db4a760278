"""Slowing the sandbox down for a rehearsal: `--ready-after`, `--speed`, and `--help`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import sandbox.server
from flows.cli import main as cli_main
from sandbox import bundled_scenarios, load_scenario
from sandbox.rehearsal import ready_after
from sandbox.scenario import ScenarioError


@pytest.mark.parametrize("name", bundled_scenarios())
def test_ready_after_moves_each_last_status_to_that_real_time(name: str) -> None:
    """Each task's last status begins at the given real second; proportions and speed kept."""
    scenario = load_scenario(name)
    slow = ready_after(scenario, 300)
    assert slow.speed == scenario.speed
    for fast_task, slow_task in zip(scenario.tasks, slow.tasks, strict=True):
        fast = [step.seconds or 0.0 for step in fast_task.steps[:-1]]
        stretched = [step.seconds or 0.0 for step in slow_task.steps[:-1]]
        if sum(fast) == 0:
            assert stretched == fast
            continue
        assert sum(stretched) / slow.speed == pytest.approx(300)
        assert [s / sum(stretched) for s in stretched] == pytest.approx(
            [s / sum(fast) for s in fast]
        )
        assert [step.status for step in slow_task.steps] == [
            step.status for step in fast_task.steps
        ]
        assert slow_task.exchange == fast_task.exchange  # an exchange keeps its pace


@pytest.mark.parametrize("seconds", [pytest.param(0, id="zero"), pytest.param(-5, id="negative")])
def test_ready_after_refuses_a_time_that_is_not_positive(seconds: float) -> None:
    """A ready time of 0 or less is an error that names the option and the value."""
    with pytest.raises(ScenarioError, match=rf"--ready-after .*{seconds:g}"):
        ready_after(load_scenario("incremental"), seconds)


def test_the_sandbox_command_says_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m sandbox --ready-after 0` exits 2 with the reason, before serving anything."""
    assert sandbox.server.main(["--ready-after", "0", "--port", "0"]) == 2
    assert "--ready-after must be more than 0" in capsys.readouterr().err


def test_dcs_migrate_sandbox_passes_speed_and_ready_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dcs-migrate sandbox --speed 1 --ready-after 300` reaches the sandbox as given."""
    seen: list[list[str]] = []

    def fake_main(argv: Any) -> int:
        seen.append(list(argv))
        return 0

    monkeypatch.setattr(sandbox.server, "main", fake_main)
    assert cli_main(["sandbox", "--scenario", "mixed", "--speed", "1", "--ready-after", "300"]) == 0
    (argv,) = seen
    assert argv[argv.index("--speed") + 1] == "1.0"
    assert argv[argv.index("--ready-after") + 1] == "300.0"
    assert argv[argv.index("--scenario") + 1].endswith("mixed.yaml")


def test_help_lists_every_bundled_scenario_without_importing_the_sandbox() -> None:
    """`dcs-migrate sandbox --help` names each bundled scenario; building it loads no uvicorn."""
    probe = (
        "import sys, contextlib, io\n"
        "from flows.cli import _parser\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    _parser().parse_args(['sandbox', '--help'])\n"
        "print(' '.join(out.getvalue().split()))\n"
        "print('uvicorn' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    help_text, uvicorn_loaded = done.stdout.strip().splitlines()
    for name in bundled_scenarios():
        assert name in help_text
    assert "--ready-after" in help_text
    assert uvicorn_loaded == "False"
