"""Turn the measurements into `RESULTS.md`: tables, ratios, and the targets met or missed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.fanout import NARROW, FanoutMeasurement, FanoutSettings
from benchmarks.harness import median
from benchmarks.one_watch import VARIANTS, Measurement, OneWatchResults
from benchmarks.startup import IMPORTS, StartupResults


@dataclass
class Target:
    what: str
    goal: str
    measured: str
    met: bool | None
    margin: str


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _f(value: float, digits: int = 2) -> str:
    if math.isinf(value):
        return "never"
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _med(items: Sequence[Measurement], key: Callable[[Measurement], float]) -> float:
    return median([key(item) for item in items])


def _pair(
    large: Sequence[Measurement], few: Sequence[Measurement], key: Callable[[Measurement], float]
) -> str:
    if not few:
        return _f(_med(large, key), 0)
    return f"{_f(_med(large, key), 0)} / {_f(_med(few, key), 0)}"


def _ratio_per_run(
    results: OneWatchResults,
    numerator: str,
    denominator: str,
    key: Callable[[Measurement], float],
) -> float:
    """`key(numerator) / key(denominator)` within each run, median over runs."""
    ratios = []
    for run in results.runs:
        top = [key(m) for m in run if m.variant == numerator and m.polls == results.polls]
        bottom = [key(m) for m in run if m.variant == denominator and m.polls == results.polls]
        if top and bottom and top[0] > 0 and bottom[0] > 0:
            ratios.append(top[0] / bottom[0])
    return median(ratios)


def one_watch_section(results: OneWatchResults, targets: list[Target]) -> list[str]:
    n, small = results.polls, results.small_polls
    lines = [
        "## (a) One watch",
        "",
        f"One task polled {n} times at a {results.interval:g} s interval against the sandbox "
        f"on loopback (two variants also {small} times: task runs and rows against polls); "
        f"median of {len(results.runs)} runs, each variant in a fresh process. *Per poll* = "
        "CPU of our process from the start of the second poll to the start of the last, / "
        "(polls - 2): the steady cost of one more poll (the first poll's one-off work, such "
        "as ours' first-look event and progress artifact, left out). *Whole watch* = CPU "
        "from the call to the return (flow and task runs, block load, artifacts included), "
        "/ polls. The Prefect server's CPU (whole variant, until its rows settled) and the rows it "
        "wrote are the server's, not in our CPU.",
        "",
    ]
    header = [
        "variant",
        "per poll (ms CPU)",
        f"whole watch at {n} (ms CPU/poll)",
        f"wall at {n} (s)",
        f"task runs at {n} / {small}",
        f"DB rows at {n} / {small}",
        f"server CPU at {n} (ms)",
        "requests",
        "peak RSS (MB)",
    ]
    rows = []
    for variant in VARIANTS:
        large, few = results.of(variant, n), results.of(variant, small)
        if not large:
            continue
        rows.append(
            [
                f"`{variant}`",
                _f(_med(large, lambda m: m.loop_ms_per_poll), 3),
                _f(_med(large, lambda m: m.cpu_ms_per_poll), 3),
                _f(_med(large, lambda m: m.wall_s)),
                _pair(large, few, lambda m: m.task_runs),
                _pair(large, few, lambda m: m.total_rows),
                _f(_med(large, lambda m: 1000 * m.server_cpu_s), 0),
                _f(_med(large, lambda m: m.requests), 0),
                _f(_med(large, lambda m: m.peak_rss_mb), 0),
            ]
        )
    lines += _table(header, rows)
    ratios = [
        ("`ours-token` / `bare-httpx`", "ours-token", "bare-httpx"),
        ("`task-per-poll` / `ours-token`", "task-per-poll", "ours-token"),
        ("`sdk-in-task` / `ours-aksk`", "sdk-in-task", "ours-aksk"),
        ("`ours-aksk` / `ours-token`", "ours-aksk", "ours-token"),
    ]
    lines += ["", "Ratios, taken within each run, median over runs:", ""]
    ratio_rows = []
    computed: dict[str, tuple[float, float]] = {}
    for label, top, bottom in ratios:
        per_poll = _ratio_per_run(results, top, bottom, lambda m: m.loop_ms_per_poll)
        whole = _ratio_per_run(results, top, bottom, lambda m: m.cpu_ms_per_poll)
        computed[top + "/" + bottom] = (per_poll, whole)
        ratio_rows.append([label, _f(per_poll), _f(whole)])
    lines += _table(["ratio of CPU", "per poll", "whole watch"], ratio_rows)
    lines += ["", "Rows added to the Prefect database at the larger poll count (median):", ""]
    tables: set[str] = set()
    for variant in VARIANTS:
        for m in results.of(variant, n):
            tables.update(m.rows)
    table_rows = []
    for table in sorted(tables):
        row = [f"`{table}`"]
        for variant in VARIANTS:
            counts = [m.rows.get(table, 0) for m in results.of(variant, n)]
            row.append(_f(median(counts), 0))
        table_rows.append(row)
    lines += _table(["table", *(f"`{v}`" for v in VARIANTS)], table_rows)

    per_poll, whole = computed["ours-token/bare-httpx"]
    targets.append(
        Target(
            "one watch: CPU per poll vs a bare httpx loop",
            "<= 1.3x",
            f"{_f(per_poll)} x per poll, {_f(whole)} x whole watch",
            None if math.isnan(per_poll) else per_poll <= 1.3,
            _margin(per_poll, 1.3, "x", upper=True),
        )
    )
    per_poll, whole = computed["task-per-poll/ours-token"]
    targets.append(
        Target(
            "one watch: CPU per poll vs one task run per poll",
            ">= 5x below",
            f"{_f(per_poll)} x per poll, {_f(whole)} x whole watch",
            None if math.isnan(per_poll) else per_poll >= 5,
            _margin(per_poll, 5, "x", upper=False),
        )
    )
    runs_large = _med(results.of("ours-token", n), lambda m: m.task_runs)
    runs_small = _med(results.of("ours-token", small), lambda m: m.task_runs)
    targets.append(
        Target(
            "task runs per watch independent of polls",
            "same at any poll count",
            f"{_f(runs_large, 0)} at {n} polls, {_f(runs_small, 0)} at {small}",
            runs_large == runs_small,
            "" if runs_large == runs_small else f"{_f(runs_large - runs_small, 0)} more",
        )
    )
    return lines


def _margin(value: float, goal: float, unit: str, *, upper: bool) -> str:
    if math.isnan(value):
        return "not measured"
    if math.isinf(value):
        return "some flips never seen within the period"
    gap = value - goal if upper else goal - value
    if gap <= 0:
        return f"met with {_f(-gap)}{unit} to spare"
    return f"missed by {_f(gap)}{unit}"


def fanout_section(
    measurements: list[FanoutMeasurement], settings: FanoutSettings, targets: list[Target]
) -> list[str]:
    lines = [
        "## (b) Fan-out",
        "",
        f"N tasks watched at once at a {settings.interval:g} s interval for at most "
        f"{settings.period:g} s; each flips to SUCCESS (9 in 10) or MIGRATION_FAILED at a "
        f"seeded random moment in [0.15, 0.8] x {settings.period:g} s. `ours`: "
        f"`flows.polling.watch_tasks`, page_size {settings.page_size}, max_concurrency "
        f"{settings.concurrency}, max_requests_per_second {settings.rps:g}, AK/SK. `sdk`: "
        f"official SDK, AK/SK, {settings.threads} threads, one show per pending task per "
        f"round. Both start rounds one interval apart. Median of {settings.runs} runs. "
        "CPU % is of one core, over the watch. "
        "Latency = the watcher's observer saw the terminal status - the scripted flip "
        "(*never*: some flips were not seen within the period); *listed* = the first list "
        "page that showed it (ours only). Every task flips within the period, so the "
        "transitions come far denser than in real migrations: *CPU ms / request* is the "
        "figure that does not depend on that density.",
        "",
    ]
    header = [
        "tasks",
        "variant",
        "requests (list / show)",
        "req/s",
        "rounds",
        "CPU % of a core",
        "CPU ms / request",
        "latency p50 / p99 / max (s)",
        "listed p50 / p99 (s)",
        "detected",
        "peak RSS (MB)",
        "sandbox CPU %",
    ]
    rows = []
    for tasks, flip_every in _groups(measurements, settings):
        for variant in ("ours", NARROW, "sdk"):
            ms = [
                m
                for m in measurements
                if (m.tasks, m.flip_every, m.variant) == (tasks, flip_every, variant)
            ]
            if not ms:
                continue

            def med(
                key: Callable[[FanoutMeasurement], float], ms: list[FanoutMeasurement] = ms
            ) -> float:
                return median([key(m) for m in ms])

            def res(name: str, ms: list[FanoutMeasurement] = ms) -> float:
                return median([float(m.result[name]) for m in ms])

            rows.append(
                [
                    f"{tasks:,}" + (f" (1 in {flip_every} flips)" if flip_every > 1 else ""),
                    f"`{variant}`",
                    f"{_f(med(lambda m: m.total_requests), 0)} "
                    f"({_f(med(lambda m: m.requests.get('list_migration_tasks', 0)), 0)} / "
                    f"{_f(med(lambda m: m.requests.get('show_migration_task', 0)), 0)})",
                    _f(med(lambda m: m.requests_per_second), 1),
                    _f(res("rounds"), 0),
                    _f(med(lambda m: m.cpu_percent), 1),
                    _f(med(lambda m: m.cpu_ms_per_request)),
                    f"{_f(res('latency_p50_s'))} / {_f(res('latency_p99_s'))} / "
                    f"{_f(res('latency_max_s'))}",
                    f"{_f(res('listed_p50_s'))} / {_f(res('listed_p99_s'))}",
                    f"{_f(res('detected'), 0)}/{ms[0].transitions}",
                    _f(res("peak_rss_mb"), 0),
                    _f(med(lambda m: m.sandbox_cpu_percent), 0),
                ]
            )
    lines += _table(header, rows)
    alone = [
        tasks
        for tasks in settings.sizes
        if not [m for m in measurements if m.tasks == tasks and m.variant == "sdk"]
    ]
    if alone:
        shown = ", ".join(f"{tasks:,}" for tasks in alone)
        lines += [
            "",
            f"At {shown} tasks only ours ran (`fanout-10k`): the SDK's one show per "
            "task per round would be that many requests per interval.",
        ]
    lines += _narrow_and_sparse(measurements, settings)
    failed = [m for m in measurements if int(m.result["errors"])]
    for m in failed:
        lines += [
            "",
            f"{m.tasks:,} tasks, `{m.variant}`: {m.result['errors']} reads failed (counted, "
            "the watch went on).",
        ]
    lines += ["", "Ratios `sdk` / `ours`, within each run, median over runs:", ""]
    ratio_rows = []
    for tasks in settings.sizes:
        pairs = _pairs(measurements, tasks)
        if not pairs:
            continue
        cpu = median([s.cpu_percent / o.cpu_percent for o, s in pairs if o.cpu_percent > 0])
        requests = median([s.total_requests / o.total_requests for o, s in pairs])
        ratio_rows.append([f"{tasks:,}", _f(cpu), _f(requests)])
    lines += _table(["tasks", "CPU", "requests"], ratio_rows)
    lines += [
        "",
        "Requests of `ours` against the design's count (list pages per round + one read "
        "per transition; the first look at a task is its list item):",
        "",
    ]
    expected_rows = []
    for tasks, flip_every in _groups(measurements, settings):
        ours = [
            m
            for m in measurements
            if (m.tasks, m.flip_every, m.variant) == (tasks, flip_every, "ours")
        ]
        if not ours:
            continue
        measured = median([m.total_requests for m in ours])
        expected = median([m.expected_requests(settings.page_size) for m in ours])
        rounds = median([float(m.result["rounds"]) for m in ours])
        steady = math.ceil(tasks / settings.page_size)
        expected_rows.append(
            [
                f"{tasks:,}" + (f" (1 in {flip_every} flips)" if flip_every > 1 else ""),
                _f(measured, 0),
                _f(expected, 0),
                _f(measured / expected if expected else float("nan")),
                f"{steady} + transitions ({_f(rounds, 0)} rounds)",
            ]
        )
    lines += _table(
        ["tasks", "measured", "expected", "measured / expected", "per interval"], expected_rows
    )
    _fanout_targets(measurements, settings, targets)
    return lines


def _groups(
    measurements: list[FanoutMeasurement], settings: FanoutSettings
) -> list[tuple[int, int]]:
    """(tasks, flip_every) of the measured watches, in the settings' order of sizes."""
    present = {(m.tasks, m.flip_every) for m in measurements}
    return sorted(present, key=lambda group: (settings.sizes.index(group[0]), group[1]))


def _narrow_and_sparse(
    measurements: list[FanoutMeasurement], settings: FanoutSettings
) -> list[str]:
    """What `ours-narrow` and the sparse watch show beside the dense `ours` at one size."""
    lines: list[str] = []
    dense = [m for m in measurements if m.variant == "ours" and m.flip_every == 1]
    narrow = [m for m in measurements if m.variant == NARROW]
    # Both lists are in run order, each run measuring `ours` then `ours-narrow`.
    sizes = {m.tasks for m in narrow}
    pairs = list(zip([m for m in dense if m.tasks in sizes], narrow, strict=False))
    if pairs:
        cpu = median([n.cpu_ms_per_request / o.cpu_ms_per_request for o, n in pairs])
        lines += [
            "",
            f"`{NARROW}` is `ours` with max_concurrency {settings.narrow_concurrency} instead "
            f"of {settings.concurrency}: httpcore's pool checks every idle connection "
            "(a `poll` and a `getpeername` each) whenever a request joins or leaves it, so "
            "on loopback, where the watch is bound by its own CPU, fewer connections cost "
            f"less per request: `{NARROW}` / `ours` CPU ms per request "
            f"{_f(cpu)} (within each run, median over runs).",
        ]
    sparse = sorted({m.flip_every for m in measurements if m.flip_every > 1})
    for every in sparse:
        lines += [
            "",
            f"*1 in {every} flips*: the same watch over the same number of tasks, but only "
            f"every {every}th task flips within the period (the others stay FULLMIGRATING, "
            "so the watch ends at the period): the cost of watching that many while "
            f"transitions come {every} times less densely.",
        ]
    return lines


def _pairs(
    measurements: list[FanoutMeasurement], tasks: int
) -> list[tuple[FanoutMeasurement, FanoutMeasurement]]:
    ours = [
        m for m in measurements if m.tasks == tasks and m.variant == "ours" and m.flip_every == 1
    ]
    sdk = [m for m in measurements if m.tasks == tasks and m.variant == "sdk"]
    return list(zip(ours, sdk, strict=False))


def _fanout_targets(
    measurements: list[FanoutMeasurement], settings: FanoutSettings, targets: list[Target]
) -> None:
    def ours(tasks: int) -> list[FanoutMeasurement]:
        return [
            m
            for m in measurements
            if m.tasks == tasks and m.variant == "ours" and m.flip_every == 1
        ]

    if ours(1000):
        ms = ours(1000)
        cpu = median([m.cpu_percent for m in ms])
        p99 = median([float(m.result["latency_p99_s"]) for m in ms])
        rss = median([float(m.result["peak_rss_mb"]) for m in ms])
        goal = settings.interval + 1
        targets += [
            Target(
                "1,000 tasks: CPU", "<= 20% of one core", f"{_f(cpu, 1)}%", cpu <= 20,
                _margin(cpu, 20, " points", upper=True),
            ),
            Target(
                "1,000 tasks: p99 detection latency", f"<= {goal:g} s", f"{_f(p99)} s",
                p99 <= goal, _margin(p99, goal, " s", upper=True),
            ),
            Target(
                "1,000 tasks: peak RSS", "<= 300 MB", f"{_f(rss, 0)} MB", rss <= 300,
                _margin(rss, 300, " MB", upper=True),
            ),
        ]  # fmt: skip
    if ours(5000):
        ms = ours(5000)
        cpu = median([m.cpu_percent for m in ms])
        ratio = median([m.total_requests / m.expected_requests(settings.page_size) for m in ms])
        targets += [
            Target(
                "5,000 tasks: requests", "~ pages per interval + transitions",
                f"{_f(ratio)}x the expected count", abs(ratio - 1) <= 0.1,
                f"{_f(100 * (ratio - 1), 0)}% off",
            ),
            Target(
                "5,000 tasks: CPU", "<= 50% of one core", f"{_f(cpu, 1)}%", cpu <= 50,
                _margin(cpu, 50, " points", upper=True),
            ),
        ]  # fmt: skip
    if ours(10000):
        ms = ours(10000)
        cpu = median([m.cpu_percent for m in ms])
        p99 = median([float(m.result["latency_p99_s"]) for m in ms])
        rss = median([float(m.result["peak_rss_mb"]) for m in ms])
        goal = settings.interval + 1
        targets += [
            Target(
                "10,000 tasks: CPU", "<= 50% of one core", f"{_f(cpu, 1)}%", cpu <= 50,
                _margin(cpu, 50, " points", upper=True),
            ),
            Target(
                "10,000 tasks: p99 detection latency", f"<= {goal:g} s", f"{_f(p99)} s",
                p99 <= goal, _margin(p99, goal, " s", upper=True),
            ),
            Target(
                "10,000 tasks: peak RSS", "<= 500 MB", f"{_f(rss, 0)} MB", rss <= 500,
                _margin(rss, 500, " MB", upper=True),
            ),
        ]  # fmt: skip


def startup_section(results: StartupResults, targets: list[Target]) -> list[str]:
    samples = len(results.python_start_s)
    lines = [
        "## (c) Start-up",
        "",
        f"Median of {samples} fresh processes each (first request: of "
        f"{min(3, samples)}, after a warm-up run). "
        "A bare interpreter (`python -c pass`) starts in "
        f"{_f(median(results.python_start_s), 3)} s.",
        "",
    ]
    rows = [
        [
            f"`import {module}`",
            _f(median(results.imports.get(module, [])), 3),
            "yes" if results.imports_prefect.get(module) else "no",
        ]
        for module in IMPORTS
        if module in results.imports
    ]
    lines += _table(["import", "seconds", "imports Prefect"], rows)
    lines += [""]
    status_rows = [
        [f"`dcs-migrate status` ({way})", _f(median(values), 3), _f(max(values), 3)]
        for way, values in results.status_s.items()
    ]
    lines += _table(["command, end to end", "median (s)", "slowest (s)"], status_rows)
    lines += [""]
    first_rows = [
        [
            mode,
            _f(median([v["spawn_to_first_s"] for v in values])),
            _f(median([v["flow_call_to_first_s"] for v in values])),
            _f(median([v["process_wall_s"] for v in values])),
        ]
        for mode, values in results.first_request.items()
    ]
    lines += _table(
        [
            "`wait_for_migration_task`",
            "process spawn -> first request (s)",
            "flow call -> first request (s)",
            "whole process (s)",
        ],
        first_rows,
    )
    if "token" in results.status_s:
        took = median(results.status_s["token"])
        targets.append(
            Target(
                "`dcs-migrate status` end to end (token)",
                "< 0.6 s",
                f"{_f(took, 3)} s",
                took < 0.6,
                _margin(took, 0.6, " s", upper=True),
            )
        )
    return lines


def targets_section(targets: list[Target]) -> list[str]:
    rows = [
        [
            t.what,
            t.goal,
            t.measured,
            "not measured" if t.met is None else ("**met**" if t.met else "**missed**"),
            t.margin,
        ]
        for t in targets
    ]
    return ["## Targets", "", *_table(["target", "goal", "measured", "", "margin"], rows)]


def render(
    *,
    command: str,
    machine: dict[str, str],
    settings: dict[str, Any],
    one_watch: OneWatchResults | None,
    fanout: list[FanoutMeasurement] | None,
    fanout_settings: FanoutSettings,
    startup: StartupResults | None,
    notes: list[str],
    extra: Sequence[tuple[list[str], list[Target]]] = (),
) -> str:
    """The whole report; `extra`: further sections, each with its targets."""
    targets: list[Target] = []
    body: list[str] = []
    if one_watch is not None:
        body += ["", *one_watch_section(one_watch, targets)]
    if fanout is not None:
        body += ["", *fanout_section(fanout, fanout_settings, targets)]
    if startup is not None:
        body += ["", *startup_section(startup, targets)]
    for lines, more in extra:
        body += ["", *lines]
        targets += more
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{command}` on {machine['date']}; see `benchmarks/README.md` for what "
        "each figure measures and how.",
        "",
        *_table(["machine", ""], [[key, f"`{value}`"] for key, value in machine.items()]),
        "",
        *_table(["setting", ""], [[key, f"`{value}`"] for key, value in settings.items()]),
        "",
        *targets_section(targets),
        *body,
    ]
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


#: For the sections of other modules.
table, fmt, margin = _table, _f, _margin

__all__ = ["Target", "fmt", "margin", "render", "table"]
