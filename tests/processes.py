"""Start and stop the processes an end-to-end test needs, by PID, whatever happens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
