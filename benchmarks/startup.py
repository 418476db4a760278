"""Benchmark (c): start-up: imports, `dcs-migrate status`, and a flow's first request.

- Import time: a fresh `python -c` per sample (after one uncounted) times `import MODULE`
  with `time.perf_counter()` around the import alone (interpreter start-up excluded), and
  says whether Prefect was imported with it.
- `dcs-migrate status TASK_ID`: wall time of the whole command as a subprocess (interpreter
  start-up, imports, one request, printing), with `DCS_ENDPOINT`, `DCS_PROJECT_ID` and
  `DCS_TOKEN` (or `DCS_ACCESS_KEY` + `DCS_SECRET_KEY`) set.
- Flow start to first request: a fresh process runs `wait_for_migration_task` on a task
  that is already done; the sandbox's counter gives the monotonic moment of its first
  request, compared with the moment the process was spawned and the moment the flow was
  called. With a running Prefect server (`PREFECT_API_URL`), and on Prefect's temporary
  local server (no `PREFECT_API_URL`, an initialised `PREFECT_HOME`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.one_watch import DONE_TASK, PrefectContext, child_config

IMPORTS = ("blocks.client", "flows", "flows.polling", "flows.cli", "flows.wait", "prefect")

_TIME_IMPORT = """
import sys, time
started = time.perf_counter()
import {module}
took = time.perf_counter() - started
print(took, "prefect" in sys.modules)
"""


@dataclass
class StartupResults:
    python_start_s: list[float] = field(default_factory=list)
    imports: dict[str, list[float]] = field(default_factory=dict)
    imports_prefect: dict[str, bool] = field(default_factory=dict)
    status_s: dict[str, list[float]] = field(default_factory=dict)
    first_request: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def _run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 (our interpreter, our modules and our CLI)
        command, env=env, cwd=harness.ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        msg = f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-3000:]}"
        raise harness.BenchmarkError(msg)
    return took, done.stdout


def time_imports(results: StartupResults, samples: int) -> None:
    env = harness.child_env()
    for _ in range(samples):
        took, _ = _run([sys.executable, "-c", "pass"], env)
        results.python_start_s.append(took)
    for module in IMPORTS:
        _run([sys.executable, "-c", _TIME_IMPORT.format(module=module)], env)  # warm-up
        for _ in range(samples):
            _, out = _run([sys.executable, "-c", _TIME_IMPORT.format(module=module)], env)
            seconds, prefect = out.split()
            results.imports.setdefault(module, []).append(float(seconds))
            results.imports_prefect[module] = prefect == "True"


def time_status(results: StartupResults, sandbox: harness.Service, samples: int) -> None:
    info = sandbox.info
    command = [str(harness.BIN / "dcs-migrate"), "status", DONE_TASK]
    common = {"DCS_ENDPOINT": sandbox.url, "DCS_PROJECT_ID": info["project_id"]}
    ways = {
        "token": {**common, "DCS_TOKEN": info["token"]},
        "aksk": {
            **common,
            "DCS_ACCESS_KEY": info["access_key"],
            "DCS_SECRET_KEY": info["secret_key"],
        },
    }
    for way, settings in ways.items():
        env = harness.child_env(**settings)
        _run(command, env)  # warm-up: not counted
        for _ in range(samples):
            took, out = _run(command, env)
            if "SUCCESS" not in out:
                msg = f"dcs-migrate status printed {out!r}, not the task's SUCCESS"
                raise harness.BenchmarkError(msg)
            results.status_s.setdefault(way, []).append(took)


def time_first_request(
    results: StartupResults,
    mode: str,
    sandbox: harness.Service,
    env: dict[str, str],
    samples: int,
    log: Path,
    *,
    save_blocks_first: bool = False,
) -> None:
    for number in range(samples + 1):
        config = child_config(sandbox, save_blocks=save_blocks_first and number == 0)
        harness.sandbox_reset(sandbox)
        child_env = {**env, "BENCH_CONFIG": json.dumps(config)}
        result = harness.run_child(
            "benchmarks.one_watch", ["first-request"], env=child_env, log=log, timeout=300
        )
        first = harness.sandbox_stats(sandbox)["first_monotonic"]
        if number == 0 or first is None:
            continue  # the first run is a warm-up (it may also save the blocks)
        results.first_request.setdefault(mode, []).append(
            {
                "spawn_to_first_s": first - result["spawn_monotonic"],
                "flow_call_to_first_s": first - result["flow_call_monotonic"],
                "process_wall_s": result["process_wall_s"],
            }
        )


def run(
    sandbox: harness.Service,
    prefect: PrefectContext,
    workdir: Path,
    *,
    samples: int,
    ephemeral: bool,
    say: Callable[[str], None],
) -> StartupResults:
    results = StartupResults()
    say("  import times")
    time_imports(results, samples)
    say("  dcs-migrate status")
    time_status(results, sandbox, samples)
    say("  first request, Prefect server")
    log = workdir / "startup.log"
    first_samples = min(3, samples)
    mode = "Prefect server (PREFECT_API_URL)"
    time_first_request(results, mode, sandbox, prefect.env, first_samples, log)
    if ephemeral:
        say("  first request, temporary local server")
        home = workdir / "prefect-home-ephemeral"
        home.mkdir(exist_ok=True)
        env = {
            key: value for key, value in prefect.env.items() if not key.startswith("PREFECT_API")
        }
        env["PREFECT_HOME"] = str(home)
        mode = "temporary local server (no PREFECT_API_URL)"
        time_first_request(results, mode, sandbox, env, first_samples, log, save_blocks_first=True)
    return results


def as_dict(results: StartupResults) -> dict[str, Any]:
    return {
        "python_start_s": results.python_start_s,
        "imports": results.imports,
        "imports_prefect": results.imports_prefect,
        "status_s": results.status_s,
        "first_request": results.first_request,
    }


__all__ = ["IMPORTS", "StartupResults", "as_dict", "run"]
