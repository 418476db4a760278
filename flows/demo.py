"""`dcs-migrate demo` and `dcs-migrate sandbox`: the whole thing, locally, in one command.

The demo starts the sandbox (a local DCS emulator) and a notification sink on 127.0.0.1,
saves a DcsCredentials block (AK/SK, so requests are really signed) and a webhook block,
and runs `migration_runbook` on Prefect's embedded server against an incremental
migration: live progress, the IP exchange, a notification, and a summary table.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from blocks.credentials import DcsCredentials

DEMO_BLOCK = "dcs-demo"
DEMO_SINK = "dcs-demo-sink"
#: Where the demo keeps its Prefect home (database, settings) unless PREFECT_HOME is set.
DEMO_PREFECT_HOME = Path(".prefect-demo")
#: Seconds the demo waits for Prefect's local server unless the user set
#: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS. Prefect waits 20 s, but a first start on
#: a fresh home runs every database migration: 20-50 s on a busy 2-core machine.
STARTUP_TIMEOUT_SECONDS = 180
#: What Prefect's ephemeral server raises when it does not answer within the time-out.
_STARTUP_TIMED_OUT = "ephemeral Prefect API server"


class NotificationSink:
    """A loopback HTTP endpoint that keeps what webhooks post to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # else each answer waits ~40 ms on delayed ACKs

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    sink.received.append(json.loads(self.rfile.read(length) or b"{}"))
                except ValueError:
                    sink.received.append({"body": "(not JSON)"})
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> NotificationSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _scenario_file(name: str) -> Path:
    from sandbox import scenario_path

    path = Path(name)
    return path if path.suffix in (".yaml", ".yml", ".json") else Path(scenario_path(name))


def serve_sandbox(
    host: str,
    port: int,
    scenario: str,
    *,
    speed: float | None = None,
    ready_after: float | None = None,
) -> int:
    """`dcs-migrate sandbox`: print how to connect, then serve until stopped."""
    from sandbox.server import main as sandbox_main

    argv = ["--host", host, "--port", str(port), "--scenario", str(_scenario_file(scenario))]
    if speed is not None:
        argv += ["--speed", str(speed)]
    if ready_after is not None:
        argv += ["--ready-after", str(ready_after)]
    return sandbox_main(argv)


@contextmanager
def _demo_environment() -> Iterator[None]:
    # Prefect reads its settings at import: set them before the first import of Prefect.
    os.environ.setdefault("PREFECT_HOME", str(DEMO_PREFECT_HOME.resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    yield


@contextmanager
def _patient_startup() -> Iterator[int]:
    """Prefect's settings with room for a slow first start; yields the seconds it waits."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as TIMEOUT
    from prefect.settings import temporary_settings

    # The server reads this when it starts, from the settings context, not at import: a
    # default here reaches it, and a value the user set anywhere Prefect looks still wins.
    with temporary_settings(set_defaults={TIMEOUT: STARTUP_TIMEOUT_SECONDS}):
        yield int(TIMEOUT.value())


async def _save_blocks(
    console: Console, dcs: Any, sink: NotificationSink, timeout: int
) -> DcsCredentials | None:
    """Save the demo's two blocks; None (and what to do) if Prefect never came up."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from blocks.credentials import DcsCredentials

    console.print(
        f"Starting Prefect's local server (waiting up to {timeout} s: its first start "
        "migrates its database, up to a minute on a busy machine) ..."
    )
    began = time.monotonic()
    credentials = DcsCredentials(
        endpoint=dcs.url,
        project_id=dcs.project_id,
        access_key=dcs.credentials["access_key"],
        secret_key=dcs.credentials["secret_key"],
    )
    try:
        await credentials.asave(DEMO_BLOCK, overwrite=True)  # the first call starts the server
    except RuntimeError as error:
        if _STARTUP_TIMED_OUT not in str(error):
            raise
        console.print(
            f"[red]Prefect's local server did not answer within {timeout} s.[/red] Run the "
            "demo again (the database it migrated is kept, so the next start is quicker), "
            "or give it longer: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=600 "
            "dcs-migrate demo"
        )
        return None
    console.print(f"Prefect's local server answered after {time.monotonic() - began:.1f} s")
    await CustomWebhookNotificationBlock(
        name="demo sink",
        url=sink.url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,
    ).asave(DEMO_SINK, overwrite=True)
    console.print(f"saved blocks [bold]{DEMO_BLOCK}[/bold] (AK/SK) and [bold]{DEMO_SINK}[/bold]")
    return credentials


async def _rehearse(
    console: Console, dcs: Any, sink: NotificationSink, task_id: str, timeout: int
) -> int:
    from flows.runbook import migration_runbook

    credentials = await _save_blocks(console, dcs, sink, timeout)
    if credentials is None:
        return 1
    # Prefect is up: start the migration's life now, so that the runbook sees all of it.
    dcs.state.reset()

    runbook = asyncio.ensure_future(
        migration_runbook(
            task_id=task_id,
            credentials=DEMO_BLOCK,
            poll_interval_seconds=0.5,
            cutover="exchange_ip",
            # The sandbox runs 3x faster than real time: a 3-second catch-up window here
            # stands for the 60 s a real cutover waits.
            gate_interval_seconds=0.5,
            settle_seconds=3,
            notification_blocks=[f"custom-webhook/{DEMO_SINK}"],
            return_state=True,
        )
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("waiting for Prefect", total=100)
        shown = ""
        async with credentials.get_async_client() as client:
            while not runbook.done():
                task = await client.show_migration_task(task_id)
                line = f"{task.task_name}: {task.status_text}"
                if task.task_status:
                    line += f" / {task.task_status}"
                if line != shown:  # each change as a line too, for logs that are no terminal
                    progress.console.print(line)
                    shown = line
                completed = 100.0 if task.ready_for_cutover or task.succeeded else None
                if task.in_progress:
                    stats = await client.show_migration_task_stats(task_id)
                    completed = stats.progress_percent
                progress.update(bar, description=line, completed=completed)
                await asyncio.wait([runbook], timeout=0.25)
    state = runbook.result()
    if not state.is_completed():
        console.print(f"[red]the runbook ended {state.name}:[/red] {state.message}")
        return 1
    summary = await state.aresult()
    _summary(console, summary, dcs.url, sink, task_id)
    return 0


def _summary(
    console: Console, summary: Any, url: str, sink: NotificationSink, task_id: str
) -> None:
    seen = httpx.get(f"{url}/_sandbox/state", timeout=5).json()
    table = Table(title="DCS migration rehearsal", show_header=False)
    table.add_row("task", f"{summary.task_name} ({task_id})")
    table.add_row("status", str(summary.status))
    table.add_row("task_status", str(summary.task_status))
    table.add_row("waited", f"{summary.waited_seconds:.1f} s")
    table.add_row("IP exchanges the sandbox saw", str(_exchanges(seen, task_id)))
    table.add_row("notifications received", str(len(sink.received)))
    for note in sink.received:
        table.add_row("", str(note.get("subject", "")))
    console.print(table)


def _exchanges(state: dict[str, Any], task_id: str) -> int:
    """Exchange requests the sandbox counted for the task, from its admin view."""
    return int(state["tasks"][task_id]["exchange_requests"])


def run_demo(scenario: str = "incremental") -> int:
    """`dcs-migrate demo`: rehearse the runbook end to end; 0 when it completed."""
    console = Console(highlight=False)
    began = time.monotonic()
    with _demo_environment():
        from sandbox import load_scenario, serve

        loaded = load_scenario(scenario)
        # Exactly-once is per task id: a fresh id per run lets the demo run again and again.
        task_id = uuid.uuid4().hex
        first = loaded.tasks[0].model_copy(update={"task_id": task_id})
        loaded = loaded.model_copy(update={"tasks": [first, *loaded.tasks[1:]]})
        with serve(loaded) as dcs, NotificationSink() as sink, _patient_startup() as timeout:
            console.print(f"sandbox DCS on [bold]{dcs.url}[/bold], project {dcs.project_id}")
            code = asyncio.run(_rehearse(console, dcs, sink, task_id, timeout))
    console.print(f"demo finished in {time.monotonic() - began:.1f} s")
    return code


__all__ = ["DEMO_BLOCK", "DEMO_SINK", "NotificationSink", "run_demo", "serve_sandbox"]
