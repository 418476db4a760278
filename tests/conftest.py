"""Fixtures shared by the suite: a Prefect test server, a loopback DCS stub, and a seed body."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import asserting_events_worker  # noqa: F401 - a fixture

# The runbook tests' and the fleet tests' worlds and their fixtures, for every test module.
pytest_plugins = ["tests.runbook_world", "tests.fleet_world"]

# Keep Prefect's home (profiles, local storage) out of the user's ~/.prefect.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="dcs-tests-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

DATA = Path(__file__).parent / "data"
PROJECT_ID = "0605767f8d00d5a52f4bc01f1b2d5ac5"
TASK_ID = "a276c1ffa0a54c2597fc824b917db317"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server and database for every test that needs Prefect."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def seed_body() -> dict[str, Any]:
    """The example response of the seed document, as DCS sends it."""
    body: dict[str, Any] = json.loads((DATA / "show_migration_task_example.json").read_text())
    return body


Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class StubDcs:
    """A loopback HTTP server that answers with `handler(method, path, headers, body)`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.handler: Handler = lambda *_: (404, {}, b"{}")
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            # Without this each response waits ~40 ms on delayed ACKs.
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.requests.append((self.command, self.path, headers, body))
                status, extra, payload = stub.handler(self.command, self.path, headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubDcs:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_dcs() -> Iterator[StubDcs]:
    """A DCS stand-in on 127.0.0.1 that tests program per request."""
    with StubDcs() as stub:
        yield stub


@pytest.fixture
def reset_worker_events(asserting_events_worker: EventsWorker) -> Iterator[None]:  # noqa: F811
    """Prefect's fixture of this name, draining the events worker before it reads the
    worker's client: the client is made in the worker's own thread, which a loaded machine
    may not have started by the time a test that emits nothing ends."""
    yield
    asserting_events_worker.drain()
    client = asserting_events_worker._client
    assert isinstance(client, AssertingEventsClient)
    client.events = []
