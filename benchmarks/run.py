"""`python -m benchmarks [--quick]`: run the benchmarks and write `benchmarks/RESULTS.md`.

A full run (no size options) writes `benchmarks/RESULTS.md`; `--quick` and any run with
other sizes print the report and write it only where `--output` says, so a smoke run
never passes for the real figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks import fanout, harness, one_watch, report, report_waiting, startup, waiting
from tests.postgres import postgres_bin, running_postgres

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PARTS = ("one-watch", "fanout", "startup", "fanout-10k", "waiting")
#: The parts that measure a fleet of migrations (`--fleet-scale` runs only these).
FLEET_PARTS = ("fanout-10k", "waiting")
#: The fanout-10k part also runs with only every SPARSE_EVERY-th task flipping in the period.
SPARSE_EVERY = 10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the DCS watchers against the sandbox; write benchmarks/RESULTS.md.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, 1 run each (~2.5 min); no RESULTS.md"
    )
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part")
    parser.add_argument(
        "--fleet-scale",
        action="store_true",
        help="run only the fleet parts: fanout-10k and waiting (same as --only for each)",
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; quick 1)")
    parser.add_argument("--polls", type=int, help="polls of one watch (default 200; quick 50)")
    parser.add_argument(
        "--small-polls", type=int, help="the second, smaller watch (default 20; quick 10)"
    )
    parser.add_argument("--interval", type=float, default=0.01, help="one watch's interval (s)")
    parser.add_argument(
        "--fanout-sizes", help="comma-separated task counts (default 100,1000,5000; quick 100,1000)"
    )
    parser.add_argument(
        "--fanout-seconds", type=float, help="fan-out period, seconds (default 30; quick 15)"
    )
    parser.add_argument("--fanout-interval", type=float, default=5.0, help="fan-out interval (s)")
    parser.add_argument(
        "--large-fanout", type=int, help="tasks of the fanout-10k part (default 10000; quick 2000)"
    )
    parser.add_argument(
        "--waiting-fleet-sizes", help="waiting migrations, one fleet run (default 100,1000)"
    )
    parser.add_argument(
        "--waiting-runbook-sizes",
        help="waiting migrations, a runbook each (default 20,100; quick 5)",
    )
    parser.add_argument(
        "--waiting-interval", type=float, default=15.0, help="waiting: poll interval (s)"
    )
    parser.add_argument(
        "--waiting-window", type=float, help="waiting: measured window (s; default 60, quick 30)"
    )
    parser.add_argument(
        "--waiting-extrapolate",
        type=int,
        default=1000,
        help="runbooks not run at this count: extrapolated from the largest measured count",
    )
    parser.add_argument("--page-size", type=int, default=1000, help="ours: list page size")
    parser.add_argument("--concurrency", type=int, default=10, help="ours: max_concurrency")
    parser.add_argument("--rps", type=float, default=10000.0, help="ours: max_requests_per_second")
    parser.add_argument("--threads", type=int, default=32, help="sdk: thread pool size")
    parser.add_argument("--samples", type=int, help="start-up samples (default 5; quick 3)")
    parser.add_argument("--seed", type=int, default=20260101, help="fan-out scenario seed")
    parser.add_argument("--output", type=Path, help="write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run each measured child under py-spy, raw stacks into DIR; no RESULTS.md",
    )
    return parser


def _interpreter() -> str:
    """The Python that ran us, relative to the repository root when inside it."""
    python = Path(sys.executable)
    try:
        return str(python.relative_to(harness.ROOT))
    except ValueError:
        return str(python)


def _say(message: str) -> None:
    print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quick = args.quick
    sized = any(
        value is not None
        for value in (
            args.runs,
            args.polls,
            args.small_polls,
            args.fanout_sizes,
            args.fanout_seconds,
            args.samples,
            args.large_fanout,
            args.waiting_fleet_sizes,
            args.waiting_runbook_sizes,
            args.waiting_window,
        )
    )
    # A profiled child is slowed by its sampler: its figures never go into RESULTS.md.
    full = (
        not quick and not sized and not args.only and not args.fleet_scale and args.profile is None
    )
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        harness.profile_dir = args.profile
    runs = args.runs or (1 if quick else 3)
    polls = args.polls or (50 if quick else 200)
    small_polls = args.small_polls or (10 if quick else 20)
    samples = args.samples or (3 if quick else 5)
    sizes_text = args.fanout_sizes or ("100,1000" if quick else "100,1000,5000")
    fanout_settings = fanout.FanoutSettings(
        sizes=[int(size) for size in sizes_text.split(",")],
        period=args.fanout_seconds or (15.0 if quick else 30.0),
        interval=args.fanout_interval,
        page_size=args.page_size,
        concurrency=args.concurrency,
        rps=args.rps,
        threads=args.threads,
        runs=runs,
        seed=args.seed,
    )
    large_fanout = fanout.FanoutSettings(
        **{
            **vars(fanout_settings),
            "sizes": [args.large_fanout or (2000 if quick else 10000)],
        }
    )
    waiting_settings = waiting.WaitingSettings(
        fleet_sizes=_sizes(args.waiting_fleet_sizes or "100,1000"),
        runbook_sizes=_sizes(args.waiting_runbook_sizes or ("5" if quick else "20,100")),
        extrapolate_to=args.waiting_extrapolate,
        interval=args.waiting_interval,
        window=args.waiting_window or (30.0 if quick else 60.0),
    )
    if small_polls >= polls:
        _parser().error(f"--small-polls ({small_polls}) must be below --polls ({polls})")
    parts = [*(args.only or []), *(FLEET_PARTS if args.fleet_scale else ())] or list(PARTS)
    output = args.output or (RESULTS if full else None)
    command = f"{_interpreter()} -m benchmarks " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:]
    )
    command = command.rstrip()
    machine = harness.machine()
    load = machine["load average at start"]
    _say(f"{command}: {machine['cpu']}, {machine['cores']} cores, load {load}")
    if runs < 3:
        _say(f"note: {runs} run(s) per figure; the results need 3 or more")
    workdir = Path(tempfile.mkdtemp(prefix="dcs-bench-"))
    started = time.monotonic()
    notes: list[str] = []
    one_watch_results = None
    fanout_results = None
    startup_results = None
    large_results: list[fanout.FanoutMeasurement] = []
    waiting_results = None
    try:
        with ExitStack() as stack:
            if "one-watch" in parts or "startup" in parts:
                sandbox, prefect = _one_watch_services(stack, workdir, polls, small_polls)
                # Start-up first: its figures are wall times, and the Prefect server is still
                # writing the one-watch runs' rows and events for a while after them.
                if "startup" in parts:
                    _say(f"(c) start-up: {samples} samples")
                    startup_results = startup.run(
                        sandbox,
                        prefect,
                        workdir,
                        samples=samples,
                        ephemeral=not quick,
                        say=_say,
                    )
                    if quick:
                        notes.append("quick run: the temporary-local-server start-up was skipped")
                if "one-watch" in parts:
                    _say(f"(a) one watch: {polls} and {small_polls} polls, {runs} run(s)")
                    one_watch_results = one_watch.run(
                        sandbox,
                        prefect,
                        workdir,
                        polls=polls,
                        small_polls=small_polls,
                        interval=args.interval,
                        runs=runs,
                        warmup=not quick,
                        say=_say,
                    )
            # The Prefect server's background services would share the 2 cores: stopped first.
        if "fanout" in parts:
            _say(
                f"(b) fan-out: {fanout_settings.sizes} tasks, {fanout_settings.period:g} s, "
                f"{runs} run(s)"
            )
            fanout_results = fanout.run(fanout_settings, workdir, _say)
        if "fanout-10k" in parts:
            _say(
                f"(b) fan-out, ours only: {large_fanout.sizes} tasks, "
                f"{large_fanout.period:g} s, {runs} run(s)"
            )
            large_results = fanout.run(
                large_fanout, workdir, _say, variants=("ours", fanout.NARROW)
            )
            sparse = fanout.FanoutSettings(**{**vars(large_fanout), "flip_every": SPARSE_EVERY})
            large_results += fanout.run(sparse, workdir, _say, variants=("ours",))
        if "waiting" in parts:
            _say(
                f"(d) waiting migrations: fleet {waiting_settings.fleet_sizes}, runbooks "
                f"{waiting_settings.runbook_sizes}, {waiting_settings.interval:g} s interval, "
                f"{waiting_settings.window:g} s window"
            )
            with ExitStack() as stack:
                prefect = _prefect(stack, workdir, "waiting", postgres=True)
                waiting_settings.server_database = prefect.database_kind
                waiting_results = waiting.run(waiting_settings, prefect, workdir, _say)
    except harness.BenchmarkError as error:
        _say(f"benchmark failed: {error}\n(logs in {workdir})")
        return 1
    elapsed = time.monotonic() - started
    notes.append(f"the whole run took {elapsed / 60:.1f} min")
    settings: dict[str, Any] = {
        "runs per figure": runs,
        "one watch: polls / smaller watch / interval": (
            f"{polls} / {small_polls} / {args.interval:g} s"
        ),
        "fan-out: sizes / period / interval": (
            f"{fanout_settings.sizes} / {fanout_settings.period:g} s / "
            f"{fanout_settings.interval:g} s"
        ),
        "start-up samples": samples,
        "fan-out, ours only: tasks": large_fanout.sizes,
        "waiting: fleet / runbooks / interval / window": (
            f"{waiting_settings.fleet_sizes} / {waiting_settings.runbook_sizes} / "
            f"{waiting_settings.interval:g} s / {waiting_settings.window:g} s"
        ),
    }
    extra: list[tuple[list[str], list[report.Target]]] = []
    if waiting_results is not None:
        extra.append(report_waiting.section(waiting_results, waiting_settings))
    text = report.render(
        command=command,
        machine=machine,
        settings=settings,
        one_watch=one_watch_results,
        fanout=[*(fanout_results or []), *large_results]
        if fanout_results or large_results
        else None,
        fanout_settings=fanout.FanoutSettings(
            **{
                **vars(fanout_settings),
                "sizes": [
                    *(fanout_settings.sizes if fanout_results else []),
                    *(large_fanout.sizes if large_results else []),
                ],
            }
        ),
        startup=startup_results,
        notes=notes,
        extra=extra,
    )
    print("\n" + text)
    raw = {
        "startup": startup.as_dict(startup_results) if startup_results else None,
    }
    (workdir / "raw.json").write_text(json.dumps(raw, indent=1, default=str))
    if output is not None:
        output.write_text(text)
        _say(f"wrote {output}")
    else:
        _say("not a full run: no RESULTS.md written (use --output PATH to keep this report)")
    if args.keep:
        _say(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _one_watch_services(
    stack: ExitStack, workdir: Path, polls: int, small_polls: int
) -> tuple[harness.Service, one_watch.PrefectContext]:
    """The poll-counting sandbox, a Prefect server, and the saved credentials blocks."""
    scenario_file = workdir / "one-watch.json"
    scenario_file.write_text(json.dumps(one_watch.scenario([polls, small_polls])))
    sandbox = stack.enter_context(
        harness.sandbox_process(scenario_file, "polls", workdir / "sandbox-one-watch.log")
    )
    prefect = _prefect(stack, workdir, "one-watch")
    config = one_watch.child_config(sandbox)
    harness.run_child(
        "benchmarks.one_watch",
        ["save-blocks"],
        env={**prefect.env, "BENCH_CONFIG": json.dumps(config)},
        log=workdir / "save-blocks.log",
        timeout=300,
    )
    return sandbox, prefect


def _prefect(
    stack: ExitStack, workdir: Path, name: str, *, postgres: bool = False
) -> one_watch.PrefectContext:
    """A fresh Prefect server for one part (SQLite; or, with `postgres` and PostgreSQL
    installed, a PostgreSQL cluster of its own, as in production), and a client
    environment for it."""
    home = workdir / f"prefect-server-{name}"
    home.mkdir()
    database_url = None
    if postgres and postgres_bin() is not None:
        database_url = stack.enter_context(running_postgres(workdir)).url
    elif postgres:
        _say("no PostgreSQL installed (apt-get install postgresql): SQLite instead")
    kind = "PostgreSQL" if database_url else "SQLite"
    _say(f"starting a Prefect server ({kind}) ...")
    log = workdir / f"prefect-server-{name}.log"
    server = stack.enter_context(
        harness.prefect_server(home, log, harness.free_port(), database_url)
    )
    client_home = workdir / f"prefect-client-{name}"
    client_home.mkdir()
    env = harness.child_env(PREFECT_API_URL=server.url, PREFECT_HOME=str(client_home))
    return one_watch.PrefectContext(server, env, kind)


def _sizes(text: str) -> list[int]:
    """`100,1000` as [100, 1000]; an empty text as no sizes."""
    return [int(size) for size in text.split(",") if size.strip()]


__all__ = ["main"]
