"""Serve the sandbox over real HTTP: uvicorn in a background thread, on 127.0.0.1.

>>> from sandbox.scenario import MigrationScript, Scenario
>>> import httpx
>>> with serve(Scenario(tasks=[MigrationScript.incremental("t1")])) as sandbox:
...     answer = httpx.get(f"{sandbox.url}/v2/{sandbox.project_id}/migration-task/t1",
...                        headers={"X-Auth-Token": sandbox.credentials["token"]})
>>> answer.json()["status"]
'RUNNING'

`python -m sandbox --scenario flaky --port 8000` prints the endpoint and credentials
(`print_banner`) and serves until Ctrl-C or SIGTERM (`serve_forever`).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import uvicorn
from starlette.types import ASGIApp

from sandbox.app import SandboxApp, Sleep, create_app
from sandbox.clock import Clock
from sandbox.rehearsal import ready_after
from sandbox.scenario import Scenario, ScenarioError, as_scenario, bundled_scenarios, load_scenario
from sandbox.state import SandboxState

#: How long `serve()` waits for the server to accept connections, and then to stop.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class SandboxHandle:
    """A running sandbox: where it is, what it plays, what happened, how to log in."""

    url: str
    project_id: str
    state: SandboxState
    scenario: Scenario
    #: endpoint, project_id, iam_endpoint and each credential (see `sandbox_credentials`).
    credentials: dict[str, str]
    app: SandboxApp = field(repr=False)

    @property
    def admin_url(self) -> str:
        """`GET` it for the sandbox's own JSON view of its state."""
        return f"{self.url}/_sandbox/state"


def sandbox_credentials(scenario: Scenario, url: str) -> dict[str, str]:
    """What a client should use: `endpoint`, `project_id`, `iam_endpoint`, and each of
    `token`, `access_key`/`secret_key`, `iam_username`/`iam_password`/`iam_domain_name`,
    `temporary_access_key`/`temporary_secret_key`/`security_token` the scenario accepts."""
    credentials = {"endpoint": url, "iam_endpoint": url, "project_id": scenario.project_id}
    if scenario.token is not None:
        credentials["token"] = scenario.token
    if scenario.access_key is not None and scenario.secret_key is not None:
        credentials["access_key"] = scenario.access_key
        credentials["secret_key"] = scenario.secret_key
    if scenario.iam_username is not None and scenario.iam_password is not None:
        credentials["iam_username"] = scenario.iam_username
        credentials["iam_password"] = scenario.iam_password
        if scenario.iam_domain_name is not None:
            credentials["iam_domain_name"] = scenario.iam_domain_name
    if scenario.temporary_keys:
        key = scenario.temporary_keys[0]
        credentials["temporary_access_key"] = key.access_key
        credentials["temporary_secret_key"] = key.secret_key
        credentials["security_token"] = key.security_token
    return credentials


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (0: a free port), for uvicorn to serve on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio disables Nagle only on sockets that say they
    # are TCP, and with Nagle on every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # A fixed port (the CLI's 8000) must be reusable right after the last run stopped.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        msg = f"the sandbox cannot listen on {host}:{port}: {error.strerror}"
        raise OSError(error.errno, msg) from error
    return sock


def uvicorn_config(app: ASGIApp) -> uvicorn.Config:
    """How the sandbox is served: h11 on asyncio, quiet, no lifespan, quick to stop."""
    return uvicorn.Config(
        app,
        # Leave the process's logging alone; no access log (it would list every poll).
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )


@contextmanager
def serve(
    scenario: Scenario | str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
    utc_now: Callable[[], datetime] | None = None,
    sleep: Sleep | None = None,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[SandboxHandle]:
    """Run the sandbox until the block ends; `port=0` picks a free port.

    `scenario` is a `Scenario`, a file, a bundled name, or None for the `incremental` demo.
    The clock starts when the app is made, just before the server starts.
    """
    app = create_app(as_scenario(scenario), clock, utc_now=utc_now, sleep=sleep)
    sock = listening_socket(host, port)
    server = uvicorn.Server(uvicorn_config(app))
    failures: list[BaseException] = []

    def run() -> None:
        # uvicorn installs no signal handler outside the main thread: the owner stops it.
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # SystemExit too: uvicorn exits on a failed start
            failures.append(error)

    thread = threading.Thread(target=run, name="dcs-sandbox", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive():
                msg = f"the sandbox server did not start on {host}:{port}: {failures!r}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = f"the sandbox server did not start within {start_timeout} s"
                raise TimeoutError(msg)
            time.sleep(0.005)
        bound_port = sock.getsockname()[1]
        url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
        yield SandboxHandle(
            url=url,
            project_id=app.scenario.project_id,
            state=app.sandbox_state,
            scenario=app.scenario,
            credentials=sandbox_credentials(app.scenario, url),
            app=app,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT)
        sock.close()


def format_banner(handle: SandboxHandle) -> str:
    """The text `python -m sandbox` prints: endpoint, project, credentials, tasks."""
    scenario = handle.scenario
    lines = [
        f"DCS sandbox: scenario {scenario.name!r}, speed {scenario.speed:g}x, "
        f"{len(scenario.tasks)} task(s), {len(scenario.faults)} fault(s)",
    ]
    lines += [f"  {name:<22}{value}" for name, value in handle.credentials.items()]
    for task in scenario.tasks:
        lines.append(f"  {'task':<22}{task.task_id}  {task.task_name} ({task.migration_type})")
    lines += [
        f"  {'admin view':<22}{handle.admin_url}",
        "These credentials are the sandbox's own; they open nothing else. Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def print_banner(handle: SandboxHandle, file: TextIO | None = None) -> None:
    """Print `format_banner(handle)` (to stdout by default) and flush."""
    out = file if file is not None else sys.stdout
    print(format_banner(handle), file=out, flush=True)


def wait_for_signal(stop: threading.Event | None = None) -> None:
    """Block until SIGINT/SIGTERM (in the main thread) or until `stop` is set."""
    event = stop if stop is not None else threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def handle(signum: int, frame: FrameType | None) -> None:
            event.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle)
    try:
        # A timeout keeps the main thread responsive to signals on every platform.
        while not event.wait(0.2):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve_forever(
    scenario: Scenario | str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    file: TextIO | None = None,
    as_json: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Serve, print the banner (or one line of JSON credentials), block until a signal."""
    out = file if file is not None else sys.stdout
    with serve(scenario, host, port) as handle:
        if as_json:
            print(json.dumps(handle.credentials), file=out, flush=True)
        else:
            print_banner(handle, out)
        wait_for_signal(stop)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sandbox [--host H] [--port P] [--scenario FILE|NAME] [--speed X]
    [--ready-after SECONDS] [--json]`."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="A local emulator of the DCS migration-task API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    parser.add_argument(
        "--scenario",
        default="incremental",
        help=f"a YAML/JSON file or a bundled name: {', '.join(bundled_scenarios())}",
    )
    parser.add_argument("--speed", type=float, help="override the scenario's speed")
    parser.add_argument(
        "--ready-after",
        type=float,
        metavar="SECONDS",
        help="stretch each task so its last status (ready, done, failed) begins this many real "
        "seconds after start: time to watch a rehearsal in the Prefect UI",
    )
    parser.add_argument("--json", action="store_true", help="print the credentials as JSON")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
        if args.speed is not None:
            scenario = Scenario.model_validate({**scenario.model_dump(), "speed": args.speed})
        if args.ready_after is not None:
            scenario = ready_after(scenario, args.ready_after)
        serve_forever(scenario, args.host, args.port, as_json=args.json)
    except (ScenarioError, ValueError, OSError) as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "SandboxHandle",
    "format_banner",
    "listening_socket",
    "main",
    "print_banner",
    "sandbox_credentials",
    "serve",
    "serve_forever",
    "uvicorn_config",
    "wait_for_signal",
]
