"""What every benchmark needs: child processes, their CPU, the Prefect database, medians.

Each measured variant runs in a fresh child process (`python -m benchmarks.<module>`) that
prints one line `BENCH-RESULT {json}`; peaks (RSS) are therefore per variant. The sandbox
and the Prefect server are processes of their own: their CPU is read from /proc, never
counted as ours.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

# One way to stop what a benchmark starts, shared with the end-to-end tests.
from tests.processes import stop as stop_process
from tests.processes import wait_until_up as _wait_until_up

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULT_PREFIX = "BENCH-RESULT "
_TICKS = os.sysconf("SC_CLK_TCK")
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


#: Set by `--profile DIR`: every measured child then runs under `py-spy record` into DIR.
profile_dir: Path | None = None


class BenchmarkError(RuntimeError):
    """A benchmark could not run (a child failed, a server did not start)."""


def emit(result: Mapping[str, Any]) -> None:
    """Hand a child's result to the parent: one line on stdout."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_env(**extra: str) -> dict[str, str]:
    """Our environment for a child: loopback never proxied, Prefect offline and quiet."""
    env = {key: value for key, value in os.environ.items() if key not in _PROXY_VARIABLES}
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    env.update(extra)
    return env


def run_child(
    module: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str],
    log: Path,
    timeout: float,
) -> dict[str, Any]:
    """Run `python -m module args` to the end; its `BENCH-RESULT` (plus `spawn_monotonic`)."""
    spawned = time.monotonic()
    command = _profiled([sys.executable, "-m", module, *args], module, args)
    with log.open("ab") as stderr:
        done = subprocess.run(  # noqa: S603 (our own module, our own interpreter)
            command,
            env=dict(env),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            timeout=timeout,
            check=False,
        )
    ended = time.monotonic()
    out = done.stdout.decode("utf-8", "replace")
    lines = [line for line in out.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        msg = f"{' '.join(command)} exited with {done.returncode}; stderr tail:\n{tail}\n{out}"
        raise BenchmarkError(msg)
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["spawn_monotonic"] = spawned
    result["process_wall_s"] = ended - spawned
    return result


def _profiled(command: list[str], module: str, args: Sequence[str]) -> list[str]:
    """`command` under `py-spy record` (raw stacks, 250 Hz) when profiling, else unchanged."""
    if profile_dir is None:
        return command
    found = BIN / "py-spy" if (BIN / "py-spy").exists() else shutil.which("py-spy")
    if found is None:
        msg = "--profile needs py-spy: install it with `.venv/bin/pip install py-spy`"
        raise BenchmarkError(msg)
    spy = Path(found)
    name = "-".join([module.rsplit(".", 1)[-1], *args])
    taken = len(list(profile_dir.glob(f"{name}-*.txt")))
    output = profile_dir / f"{name}-{taken + 1}.txt"
    return [str(spy), "record", "--rate", "250", "--format", "raw", "--output", str(output),
            "--", *command]  # fmt: skip


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name (field 3 onwards), None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces or parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def _process_table() -> tuple[dict[int, int], dict[int, float]]:
    """Every live process's parent and user + system CPU seconds, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (fields := _stat_fields(entry)) is None:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return parents, times


def _tree(pid: int, parents: Mapping[int, int]) -> set[int]:
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return tree


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and every live descendant, from /proc (0 if gone)."""
    parents, times = _process_table()
    return sum(times.get(member, 0.0) for member in _tree(pid, parents))


def descendants(pid: int) -> list[int]:
    """The live descendants of `pid` (not `pid` itself), from /proc."""
    parents, _ = _process_table()
    return sorted(_tree(pid, parents) - {pid})


def pid_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children), 0 if it is gone."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS


def pid_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) of one process in MB, from VmRSS and VmHWM; (0, 0) if gone."""
    found = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    for line in lines:
        # "VmRSS:\t   1234 kB": a tab, then spaces.
        words = line.split()
        if words and words[0] in found:
            found[words[0]] = int(words[1]) / 1024
    return found["VmRSS:"], found["VmHWM:"]


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def signal_pid(pid: int, name: str) -> None:
    """Send SIGTERM/SIGKILL (`name` "TERM" or "KILL") to one process, if it still exists."""
    with suppress(ProcessLookupError):
        os.kill(pid, getattr(signal, f"SIG{name}"))


@contextmanager
def background(
    command: Sequence[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A process running from the repository root while the block runs, stopped by its PID."""
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (our own venv's commands)
            list(command), env=dict(env), cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop_process(process)


@dataclass
class Service:
    """A server process we started (sandbox or Prefect), and how to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    info: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return process_tree_cpu_seconds(self.pid)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail early, with the log, if the process died."""
    try:
        _wait_until_up(url, process, log, timeout)
    except AssertionError as error:  # the tests' helper fails as a test would
        raise BenchmarkError(str(error)) from None


@contextmanager
def sandbox_process(scenario: Path, clock: str, log: Path) -> Iterator[Service]:
    """`benchmarks.sandbox_proc` serving `scenario` on 127.0.0.1, stopped when the block ends."""
    command = [sys.executable, "-m", "benchmarks.sandbox_proc", "--scenario", str(scenario)]
    command += ["--clock", clock]
    with log.open("ab") as stderr:
        process = subprocess.Popen(  # noqa: S603 (our own module, our own interpreter)
            command, env=child_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line:
            process.wait(timeout=10)
            msg = f"the sandbox did not start:\n{log.read_text(errors='replace')[-3000:]}"
            raise BenchmarkError(msg)
        info: dict[str, Any] = json.loads(line)
        wait_until_up(f"{info['url']}/_bench/stats", process, log, 60)
        yield Service(process, info["url"], info)
    finally:
        stop_process(process)


def sandbox_stats(sandbox: Service) -> dict[str, Any]:
    """The counter of `benchmarks.sandbox_proc`: requests by route, first and last moment."""
    answer: dict[str, Any] = httpx.get(f"{sandbox.url}/_bench/stats", timeout=10).json()
    return answer


def sandbox_reset(sandbox: Service) -> None:
    """Scenario time 0 now, request counter cleared."""
    httpx.post(f"{sandbox.url}/_sandbox/reset", timeout=10).raise_for_status()


@contextmanager
def prefect_server(
    home: Path, log: Path, port: int, database_url: str | None = None
) -> Iterator[Service]:
    """`prefect server start` on 127.0.0.1 with SQLite at `home/prefect.db`, or the database
    at `database_url`; stopped after."""
    database = home / "prefect.db"
    # On PostgreSQL, a pool of 20 + 30 connections instead of Prefect's 5 + 10: 100 runbooks
    # starting at once ran the default dry, and runs crashed on the server's 500s.
    pool = {"PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "20"} if database_url else {}
    if database_url:
        pool["PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW"] = "30"
    env = child_env(
        **pool,
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url or f"sqlite+aiosqlite:///{database}",
        PREFECT_SERVER_UI_ENABLED="false",
        # Write what the run produced promptly, so the row counts settle within seconds.
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL="1",
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL="1",
    )
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (Prefect's own CLI from our venv)
            command, env=env, cwd=home, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_until_up(f"{url}/health", process, log, 180)
        yield Service(process, url, {"database": str(database)})
    finally:
        stop_process(process)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def table_rows(database: Path) -> dict[str, int]:
    """Rows per table of a Prefect SQLite database (read-only; the server keeps writing)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        counts = {}
        for name in names:
            # Table names come from sqlite_master itself, quoted: nothing user-supplied.
            query = f'SELECT count(*) FROM "{name}"'  # noqa: S608
            counts[name] = int(connection.execute(query).fetchone()[0])
        return counts
    finally:
        connection.close()


def settled_rows(
    database: Path, *, quiet_for: float = 2.5, timeout: float = 45.0
) -> dict[str, int]:
    """Row counts once they stop changing for `quiet_for` seconds (the server's services
    record task runs and events from a queue, a moment after the client sent them)."""
    deadline = time.monotonic() + timeout
    last = table_rows(database)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = table_rows(database)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_for:
            break
    return last


def row_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Rows added per table (tables that did not change are left out)."""
    names = set(before) | set(after)
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in names}
    return {name: count for name, count in sorted(delta.items()) if count}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile by the nearest-rank method (p99 of 100 values: the 99th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "uname": " ".join(part for part in platform.uname() if part),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "load average at start": ", ".join(f"{value:.2f}" for value in load),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "prefect": _version("prefect"),
        "httpx": _version("httpx"),
        "httpcore": _version("httpcore"),
        "pydantic": _version("pydantic"),
        "huaweicloudsdkdcs": _version("huaweicloudsdkdcs"),
        "uvicorn (sandbox)": _version("uvicorn"),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "(unset)"),
    }


__all__ = [
    "BIN",
    "RESULT_PREFIX",
    "ROOT",
    "BenchmarkError",
    "Service",
    "background",
    "child_env",
    "descendants",
    "emit",
    "free_port",
    "machine",
    "median",
    "peak_rss_mb",
    "percentile",
    "pid_alive",
    "pid_cpu_seconds",
    "pid_memory_mb",
    "prefect_server",
    "process_tree_cpu_seconds",
    "row_delta",
    "run_child",
    "sandbox_process",
    "sandbox_reset",
    "sandbox_stats",
    "settled_rows",
    "signal_pid",
    "stop_process",
    "table_rows",
    "wait_until_up",
]
