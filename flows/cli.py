"""`dcs-migrate`: check, watch and rehearse DCS migrations from a terminal.

    dcs-migrate status TASK_ID          one look at a task
    dcs-migrate watch TASK_ID           live progress until it is done (exit 0/1/2)
    dcs-migrate sandbox                 serve the local DCS emulator
    dcs-migrate demo                    the whole runbook against the sandbox
    dcs-migrate api-budget PROJECT_ID   create the DCS API budget every run shares

Settings come from `--block NAME` (a saved DcsCredentials block; imports Prefect) or from
`DCS_*` environment variables (`DCS_ENDPOINT` or `DCS_REGION`, `DCS_PROJECT_ID`, and
`DCS_TOKEN`, or `DCS_ACCESS_KEY` + `DCS_SECRET_KEY`, or `DCS_IAM_USERNAME` +
`DCS_IAM_PASSWORD` + `DCS_IAM_DOMAIN_NAME`), which keeps `status` free of Prefect's start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from blocks.errors import DcsError, MigrationError, MigrationTaskNotFound, MigrationTimeout
from blocks.settings import ENV_PREFIX, DcsSettings
from flows.budget import DEFAULT_BURST, DEFAULT_REQUESTS_PER_SECOND, Budget, api_budget

if TYPE_CHECKING:
    from rich.console import Console

#: Exit codes: what a script or a scheduler can branch on.
EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT, EXIT_ERROR = 0, 1, 2, 3


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def settings_from(block: str | None) -> DcsSettings:
    """The block's settings when one is named, else the `DCS_*` environment variables."""
    if block is None:
        return DcsSettings.from_env()
    from flows.credentials import load_credentials  # imports Prefect: only when asked for

    return load_credentials(block)


def _client_options(settings: DcsSettings) -> dict[str, Any]:
    """A block's clients pace themselves; plain settings (no Prefect) get this process's pace."""
    if type(settings) is DcsSettings:
        return {"pace": api_budget(settings.project_id, shared=False).apace}
    return {}


async def _status(task_id: str, settings: DcsSettings) -> int:
    async with settings.get_async_client(**_client_options(settings)) as client:
        task = await client.show_migration_task(task_id)
    console = _console()
    console.print(
        f"{task.task_name or '(unnamed)'} ({task.task_id}): [bold]{task.status_text}[/bold]"
        f"  task_status {task.task_status or '-'}  {task.stage}"
    )
    return EXIT_OK


async def _watch(args: argparse.Namespace, settings: DcsSettings) -> int:
    from flows.live import watch_live

    return await watch_live(
        settings,
        args.task_id,
        until=args.until,
        poll_interval_seconds=args.interval,
        timeout_seconds=args.timeout,
        **_client_options(settings),
    )


def _api_budget(args: argparse.Namespace) -> int:
    budget = Budget(requests_per_second=args.per_second, burst=args.burst)
    from flows.budget import create_api_budget, limit_name  # imports Prefect: only here

    name = limit_name(args.project_id)
    try:
        done = asyncio.run(create_api_budget(args.project_id, budget))
    except httpx.HTTPError as error:
        _console(stderr=True).print(
            f"[red]could not create {name!r} on the Prefect API:[/red] {error} "
            f"(is PREFECT_API_URL the server your workers use?)"
        )
        return EXIT_ERROR
    _console().print(
        f"{done} Prefect global concurrency limit {name!r}: {budget.requests_per_second:g} "
        f"DCS requests/s, bursts of {budget.burst} (at most {budget.most_in_one_second} in "
        f"any second), shared by every run that uses project {args.project_id}"
    )
    return EXIT_OK


def _problem(location: tuple[int | str, ...], message: str) -> str:
    """`project_id (DCS_PROJECT_ID): Field required`; a message naming its variable stands alone."""
    message = message.removeprefix("Value error, ")
    if not location:
        return message
    name = ".".join(str(part) for part in location)
    variable = f"{ENV_PREFIX}{name.upper()}"
    if message.startswith(f"{variable} "):
        return message
    return f"{name} ({variable}): {message}"


def _bundled_scenarios() -> str:
    """The bundled scenarios' names, found without importing the sandbox (and uvicorn)."""
    spec = importlib.util.find_spec("sandbox")  # a top-level package: not imported
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders:
        return "(none found)"
    return ", ".join(sorted(path.stem for path in (Path(folders[0]) / "scenarios").glob("*.yaml")))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcs-migrate",
        description="Check, watch and rehearse Huawei Cloud DCS data migrations.",
        epilog=(
            "Settings: --block NAME (a saved DcsCredentials Prefect block), or DCS_* "
            "environment variables: DCS_ENDPOINT or DCS_REGION, DCS_PROJECT_ID, and one of "
            "DCS_TOKEN | DCS_ACCESS_KEY + DCS_SECRET_KEY | DCS_IAM_USERNAME + "
            "DCS_IAM_PASSWORD + DCS_IAM_DOMAIN_NAME."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_settings(command: argparse.ArgumentParser) -> None:
        command.add_argument("task_id", metavar="TASK_ID", help="the migration task's ID")
        command.add_argument(
            "--block",
            metavar="NAME",
            help="name of a saved DcsCredentials block (default: DCS_* environment variables)",
        )

    status = commands.add_parser("status", help="show a migration task's status once")
    with_settings(status)

    watch = commands.add_parser(
        "watch",
        help="follow a migration task live until it is done",
        description=(
            "Exit code: 0 done (or ready for cutover), 1 failed (or not found), 2 timed out, "
            "3 could not ask DCS (settings, credentials, network)."
        ),
    )
    with_settings(watch)
    watch.add_argument(
        "--until",
        choices=["auto", "success", "ready_for_cutover"],
        default="auto",
        help="what counts as done (default: auto = success, failure or ready for cutover)",
    )
    watch.add_argument(
        "--interval", type=float, default=15.0, help="seconds between polls (default 15)"
    )
    watch.add_argument(
        "--timeout", type=float, default=86400.0, help="give up after this many seconds"
    )

    sandbox = commands.add_parser(
        "sandbox", help="serve the local DCS emulator until stopped (Ctrl-C)"
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    sandbox.add_argument(
        "--scenario",
        default="incremental",
        metavar="FILE",
        help=f"a scenario file (YAML/JSON), or a bundled one: {_bundled_scenarios()}",
    )
    sandbox.add_argument(
        "--speed", type=float, help="scenario seconds per real second (default: the scenario's)"
    )
    sandbox.add_argument(
        "--ready-after",
        type=float,
        metavar="SECONDS",
        help="stretch each task so it is ready (or done, or failed) this many real seconds after "
        "start, e.g. 300 for a rehearsal in the Prefect UI",
    )

    demo = commands.add_parser(
        "demo",
        help="run the migration runbook against the sandbox on Prefect's embedded server",
    )
    demo.add_argument(
        "--scenario",
        default="incremental",
        metavar="FILE",
        help="the scenario to rehearse (default: incremental)",
    )
    api = commands.add_parser(
        "api-budget",
        help="create or change the DCS API budget that every flow run of a project shares",
        description=(
            "Creates (or updates) the Prefect global concurrency limit dcs-api-PROJECT_ID, "
            "used as a rate limit, on the Prefect server of PREFECT_API_URL: every DCS "
            "request of every run on every worker takes a slot first. Without it each "
            f"process paces itself at {DEFAULT_REQUESTS_PER_SECOND:g} requests/s."
        ),
    )
    api.add_argument("project_id", metavar="PROJECT_ID", help="the DCS project id")
    api.add_argument(
        "--per-second",
        type=float,
        default=DEFAULT_REQUESTS_PER_SECOND,
        help=f"requests per second, all runs together (default {DEFAULT_REQUESTS_PER_SECOND:g})",
    )
    api.add_argument(
        "--burst",
        type=int,
        default=DEFAULT_BURST,
        help=f"requests at once after a quiet spell (default {DEFAULT_BURST})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "sandbox":
        from flows.demo import serve_sandbox

        return serve_sandbox(
            args.host, args.port, args.scenario, speed=args.speed, ready_after=args.ready_after
        )
    if args.command == "demo":
        from flows.demo import run_demo

        return run_demo(args.scenario)
    try:
        if args.command == "api-budget":
            return _api_budget(args)
        settings = settings_from(args.block)
        if args.command == "status":
            return asyncio.run(_status(args.task_id, settings))
        return asyncio.run(_watch(args, settings))
    except ValidationError as error:
        problems = "; ".join(
            _problem(err["loc"], err["msg"]) for err in error.errors(include_input=False)
        )
        _console(stderr=True).print(f"[red]settings are not usable:[/red] {problems}")
        return EXIT_ERROR
    except MigrationTimeout as error:
        _console(stderr=True).print(f"[yellow]timed out:[/yellow] {error}")
        return EXIT_TIMEOUT
    except MigrationError as error:
        _console(stderr=True).print(f"[red]failed:[/red] {error}")
        return EXIT_FAILED
    except MigrationTaskNotFound as error:
        # For a watch, a task that is not there (or was deleted) is a failed migration.
        _console(stderr=True).print(f"[red]not found:[/red] {error}")
        return EXIT_FAILED if args.command == "watch" else EXIT_ERROR
    except DcsError as error:
        _console(stderr=True).print(f"[red]error:[/red] {error}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The console-script entry point."""
    sys.exit(main())


__all__ = ["EXIT_ERROR", "EXIT_FAILED", "EXIT_OK", "EXIT_TIMEOUT", "main", "run", "settings_from"]
