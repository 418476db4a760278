"""Scenarios (files, helpers, validation), the pure task timeline, the server handle and
the `python -m sandbox` command, and the examples in the sandbox's docstrings."""

from __future__ import annotations

import doctest
import importlib
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import sandbox
from sandbox import (
    MigrationScript,
    ScaledClock,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    format_banner,
    load_scenario,
    main,
    scenario_path,
    serve,
    serve_forever,
)
from sandbox.lifecycle import IpAction, TaskEvents, history, segments, snapshot

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", bundled_scenarios())
def test_bundled_scenarios_load(name: str) -> None:
    """Every shipped scenario validates, by name and by path."""
    assert load_scenario(name) == load_scenario(scenario_path(name))
    assert load_scenario(name).name == name


def test_bundled_scenarios_are_the_promised_ones() -> None:
    """incremental, full, failing and flaky ship (and mixed, for watching many)."""
    assert {"incremental", "full", "failing", "flaky", "mixed"} <= set(bundled_scenarios())


@pytest.mark.parametrize(
    ("name", "final"),
    [
        pytest.param("incremental", "INCRMIGEATING", id="incremental"),
        pytest.param("full", "SUCCESS", id="full"),
        pytest.param("failing", "MIGRATION_FAILED", id="failing"),
        pytest.param("flaky", "INCRMIGEATING", id="flaky"),
    ],
)
def test_bundled_scenarios_end_where_promised(name: str, final: str) -> None:
    """Each demo scenario ends in its status within about 10 real seconds."""
    scenario = load_scenario(name)
    (task,) = scenario.tasks
    assert task.steps[-1].status == final
    real_seconds = (
        sum(step.seconds or 0 for step in task.steps) + task.exchange.exchanging_seconds
    ) / scenario.speed
    assert 3 <= real_seconds <= 12


@pytest.mark.parametrize("name", bundled_scenarios())
def test_bundled_scenarios_use_documented_migration_types(name: str) -> None:
    """Every bundled task has a documented migration_type and migration_method."""
    for task in load_scenario(name).tasks:
        assert task.migration_type in {"online_migration", "backupfile_import"}
        assert task.migration_method in {"full_amount_migration", "incremental_migration"}


def test_full_migration_is_an_online_full_amount_migration() -> None:
    """`MigrationScript.full` is an online migration with the full-amount method."""
    script = MigrationScript.full("t")
    assert (script.migration_type, script.migration_method) == (
        "online_migration", "full_amount_migration",
    )  # fmt: skip


def test_scenario_path_names_the_choices() -> None:
    """An unknown bundled name is refused with the list of names."""
    with pytest.raises(ScenarioError, match="incremental"):
        scenario_path("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("tasks: [", "not valid YAML", id="bad-yaml"),
        pytest.param("- 1\n- 2\n", "must be a mapping", id="not-a-mapping"),
        pytest.param("tasks: [{task_id: t, stauts: RUNNING}]", "stauts", id="typo"),
        pytest.param("tasks: [{task_id: t}, {task_id: t}]", "unique", id="duplicate-ids"),
        pytest.param("access_key: AK\nsecret_key: null\n", "go together", id="ak-without-sk"),
        pytest.param(
            "tasks: [{task_id: t, steps: [{status: A}, {status: B}]}]",
            "only the last step",
            id="endless-middle-step",
        ),
        pytest.param("faults: [{kind: meteor}]", "meteor", id="unknown-fault"),
        pytest.param("faults: [{kind: drop, rate: 2}]", "rate", id="rate-above-1"),
        pytest.param("faults: [{kind: drop, routes: [show]}]", "routes", id="unknown-route"),
        pytest.param("speed: 0", "speed", id="speed-zero"),
        pytest.param(
            "tasks: [{task_id: t, migration_type: incremental_migration}]",
            "online_migration",
            id="undocumented-migration-type",
        ),
        pytest.param(
            "tasks: [{task_id: t, migration_method: online_migration}]",
            "full_amount_migration",
            id="undocumented-migration-method",
        ),
    ],
)
def test_invalid_scenarios_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """A broken scenario file fails loudly, naming the file and the problem."""
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as caught:
        load_scenario(path)
    assert "broken.yaml" in str(caught.value)


def test_json_scenario_and_defaults(tmp_path: Path) -> None:
    """A JSON file works too; what it leaves out takes the documented defaults."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"speed": 60, "tasks": [{"task_id": "t1"}]}))
    scenario = load_scenario(path)
    assert (scenario.name, scenario.speed, scenario.token_lifetime_seconds) == ("one", 60, 86400)
    assert re.fullmatch(r"[0-9a-f]{32}", scenario.project_id)
    assert scenario.tasks[0].task_name == "migration-t1"
    assert scenario.tasks[0].steps[0].status == "INCRMIGEATING"


def test_task_lookup_follows_a_copy_with_other_tasks() -> None:
    """`Scenario.task` finds each id, and a copy with new tasks never answers from the old."""
    scenario = Scenario(tasks=[MigrationScript.full("t1"), MigrationScript.full("t2")])
    assert scenario.task("t2") is scenario.tasks[1]
    assert scenario.task("t3") is None
    copy = scenario.model_copy(update={"tasks": [MigrationScript.failing("t3")]})
    assert copy.task("t3") is copy.tasks[0]
    assert copy.task("t1") is None
    assert scenario.task("t1") is scenario.tasks[0]
    # A lookup is a cache: it changes neither equality nor what a pickle brings back.
    twin = Scenario(tasks=[MigrationScript.full("t1"), MigrationScript.full("t2")])
    assert scenario == twin
    revived = pickle.loads(pickle.dumps(scenario))
    assert revived == scenario
    assert revived.task("t2") == scenario.tasks[1]


def test_repeated_task_ids_are_named() -> None:
    """Two tasks with one id are refused, naming the id."""
    with pytest.raises(ValueError, match=r"repeated: \['t1'\]"):
        Scenario(tasks=[MigrationScript.full("t1"), MigrationScript.full("t1")])


@pytest.mark.parametrize(
    ("script", "statuses"),
    [
        pytest.param(
            MigrationScript.incremental("t"),
            ["RUNNING", "FULLMIGRATING", "INCRMIGEATING"],
            id="inc",
        ),
        pytest.param(MigrationScript.full("t"), ["RUNNING", "FULLMIGRATING", "SUCCESS"], id="full"),
        pytest.param(
            MigrationScript.failing("t"),
            ["RUNNING", "FULLMIGRATING", "MIGRATION_FAILED"],
            id="fail",
        ),
        pytest.param(
            MigrationScript.stopped("t"),
            ["RUNNING", "FULLMIGRATING", "TERMINATING", "TERMINATED"],
            id="stopped",
        ),
        pytest.param(
            MigrationScript.unknown_status("t", status="NEW"), ["RUNNING", "NEW"], id="unknown"
        ),
        pytest.param(
            MigrationScript.unknown_status("t", unknown_seconds=5),
            ["RUNNING", "PAUSED_FOR_UPGRADE", "INCRMIGEATING"],
            id="unknown-then-known",
        ),
        pytest.param(MigrationScript.backup_import("t"), ["MIGRATING", "SUCCESS"], id="import"),
        pytest.param(MigrationScript.unconfigured("t"), ["RUNNING"], id="unconfigured"),
    ],
)
def test_script_helpers(script: MigrationScript, statuses: list[str]) -> None:
    """Each helper scripts the life its name says."""
    assert [step.status for step in script.steps] == statuses


def test_helpers_take_overrides() -> None:
    """Any MigrationScript field can be passed to a helper (and is validated)."""
    script = MigrationScript.deleted(
        "t", deleted_after_seconds=5, task_name="x", task_status="EXCHANGE_SUCCESS"
    )
    assert (script.deleted_after_seconds, script.task_name, script.task_status) == (
        5, "x", "EXCHANGE_SUCCESS",
    )  # fmt: skip


def test_stop_freezes_progress_and_cuts_the_timeline() -> None:
    """A stop mid-way keeps the progress reached, then TERMINATING, then TERMINATED."""
    script = MigrationScript.incremental("t", pending_seconds=0, full_seconds=100)
    timeline = segments(script, stop_at=40)
    assert [(s.status, s.start, s.end) for s in timeline] == [
        ("RUNNING", 0, 0),
        ("FULLMIGRATING", 0, 40),
        ("TERMINATING", 40, 43),
        ("TERMINATED", 43, None),
    ]
    assert snapshot(script, TaskEvents(stop_at=40), 1000).progress == 40


def test_history_logs_ip_actions() -> None:
    """The log has the exchange request and its outcome once it is due."""
    script = MigrationScript.incremental("t", full_seconds=1)
    events = TaskEvents(ip_actions=(IpAction("exchange", 10),))
    codes = [entry.code for entry in history(script, events, 20)]
    assert codes[-2:] == ["EXCHANGE_REQUESTED", "EXCHANGE_SUCCESS"]
    assert "EXCHANGE_SUCCESS" not in [entry.code for entry in history(script, events, 14)]


def test_serve_hands_out_what_a_client_needs() -> None:
    """serve(): a loopback URL, the project, every credential, and the state."""
    with serve("incremental") as handle:
        assert handle.url.startswith("http://127.0.0.1:")
        assert set(handle.credentials) == {
            "endpoint", "iam_endpoint", "project_id", "token", "access_key", "secret_key",
            "iam_username", "iam_password", "iam_domain_name",
        }  # fmt: skip
        assert handle.credentials["endpoint"] == handle.credentials["iam_endpoint"] == handle.url
        state = httpx.get(handle.admin_url).json()
        assert state["scenario"] == "incremental"
        banner = format_banner(handle)
    for value in handle.credentials.values():
        assert value in banner
    assert "a276c1ffa0a54c2597fc824b917db317" in banner


def test_serve_forever_prints_json_and_stops_on_request() -> None:
    """serve_forever prints the credentials (JSON here) and returns once told to stop."""
    out, stop = io.StringIO(), threading.Event()
    stop.set()
    serve_forever("full", port=0, file=out, as_json=True, stop=stop)
    credentials = json.loads(out.getvalue())
    assert credentials["project_id"] == load_scenario("full").project_id


def test_main_refuses_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m sandbox --scenario nope` exits 2 with a message naming the choices."""
    assert main(["--scenario", "nope"]) == 2
    assert "flaky" in capsys.readouterr().err


def test_python_m_sandbox_serves_until_sigterm() -> None:
    """The command prints its credentials, answers requests, and exits 0 on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "sandbox", "--port", "0", "--json", "--scenario", "full"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT) as process:
        assert process.stdout is not None
        credentials: dict[str, Any] = json.loads(process.stdout.readline())
        url = f"{credentials['endpoint']}/v2/{credentials['project_id']}/migration-tasks"
        answer = httpx.get(url, headers={"X-Auth-Token": credentials["token"]})
        assert answer.json()["count"] == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


SOURCES = sorted(Path(sandbox.__file__).parent.glob("*.py"))
MODULES = ["sandbox", *(f"sandbox.{path.stem}" for path in SOURCES if path.stem[0] != "_")]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    """The examples in the sandbox's docstrings run and print what they say."""
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
    assert result.attempted > 0


def test_sandbox_imports_nothing_from_blocks_or_flows() -> None:
    """The sandbox is an independent implementation: no import of blocks, flows or the SDK."""
    for path in Path(sandbox.__file__).parent.glob("*.py"):
        source = path.read_text()
        for forbidden in ("blocks", "flows", "huaweicloudsdk"):
            assert f"from {forbidden}" not in source, path
            assert f"import {forbidden}" not in source, path


def test_scaled_clock_runs_speed_times_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default clock: monotonic seconds times the scenario's speed."""
    readings = iter([100.0, 101.5])
    monkeypatch.setattr("sandbox.clock.time.monotonic", lambda: next(readings))
    clock = ScaledClock(60)
    assert clock() - 6000 == 0
    assert clock() == 101.5 * 60


def test_sandbox_exports() -> None:
    """`sandbox` exports exactly these names (the CLI and the end-to-end tests use them)."""
    assert set(sandbox.__all__) == {
        "Clock", "ConnectionDropped", "ExchangeScript", "Instance", "ManualClock",
        "MigrationScript", "RequestRecord", "SandboxApp", "SandboxHandle", "SandboxState",
        "ScaledClock", "Scenario", "ScenarioError", "StatsScript", "Step", "StopScript",
        "TemporaryKey", "WriteBurst", "bundled_scenarios", "create_app", "format_banner",
        "load_scenario", "main", "print_banner", "sandbox_credentials", "scenario_path", "serve",
        "serve_forever",
    }  # fmt: skip
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
