"""Start and stop the processes an end-to-end test needs, by PID, whatever happens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, a second SIGTERM (a Prefect worker ignores the first), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGTERM):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=grace / 2)
        except subprocess.TimeoutExpired:
            continue
        return
    if process.poll() is None:
        process.kill()
        process.wait(timeout=grace)


@contextmanager
def running(
    command: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process that is stopped (by its PID) when the block ends, also on failure."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command), env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            stop(process)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200, failing early (with the log) if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            msg = f"{process.args!r} exited with {process.returncode}:\n{tail}"
            raise AssertionError(msg)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    msg = f"{url} did not answer within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}"
    raise AssertionError(msg)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: ours, with Prefect kept quiet and offline."""
    env = dict(os.environ)
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def descendants(pid: int) -> list[int]:
    """The PIDs of every process below `pid` (children first found, then theirs), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it exited while we looked
            continue
        # The command name, in parentheses, may hold spaces: split after its closing one.
        fields = text[text.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(pids: Sequence[int]) -> None:
    """SIGKILL each of `pids` that still exists."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Service:
    """A process that can be stopped, killed and started again, and is stopped at the end.

    A Prefect worker starts each flow run in a session of its own: what it leaves behind
    when it stops is killed too, so no flow-run process outlives the test.
    """

    def __init__(
        self, command: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
    ) -> None:
        self.command = list(command)
        self.env = env
        self.log = log
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=output, stderr=subprocess.STDOUT
            )
        return self.process

    def stop(self) -> None:
        """Stop it gently (see `stop`), then kill whatever it started that is still there."""
        if self.process is None:
            return
        left = descendants(self.process.pid)
        stop(self.process)
        kill_all(left)
        self.process = None

    def kill(self) -> list[int]:
        """SIGKILL it and everything it started, as when its machine dies; the PIDs killed."""
        if self.process is None:
            return []
        pids = [self.process.pid, *descendants(self.process.pid)]
        kill_all(pids)
        self.process.wait(timeout=10)
        self.process = None
        return pids

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
