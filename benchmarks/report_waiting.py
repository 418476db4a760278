"""The report's section (d), waiting migrations: tables, ratios, an extrapolation, targets."""

from __future__ import annotations

import math

from benchmarks.report import Target, fmt, margin, table
from benchmarks.waiting import WaitingMeasurement, WaitingSettings

LIST = "list_migration_tasks"
SHOW = "show_migration_task"


def _measured(ms: list[WaitingMeasurement], way: str, tasks: int) -> WaitingMeasurement | None:
    found = [m for m in ms if m.way == way and m.migrations == tasks and m.not_run is None]
    return found[0] if found else None


def _row(m: WaitingMeasurement, interval: float) -> list[str]:
    if m.not_run is not None:
        return [f"{m.migrations:,}", f"`{m.way}`", f"NOT RUN: {m.not_run}", *[""] * 10]
    other = m.total_requests - m.requests.get(LIST, 0) - m.requests.get(SHOW, 0)
    return [
        f"{m.migrations:,}",
        f"`{m.way}`",
        str(m.processes),
        fmt(m.peak_rss_mb, 0),
        fmt(m.peak_sum_rss_mb, 0),
        fmt(m.peak_rss_mb / m.migrations, 2),
        fmt(m.cpu_percent, 2),
        f"{fmt(m.per_interval(interval), 1)} ({fmt(m.per_interval(interval, LIST), 1)} / "
        f"{fmt(m.per_interval(interval, SHOW), 1)} / {fmt(other * interval / m.window_s, 1)})",
        f"{fmt(m.worker_peak_rss_mb, 0)} / {fmt(m.percent_of(m.worker_cpu_s), 2)}",
        fmt(m.percent_of(m.server_cpu_s), 2),
        fmt(m.percent_of(m.sandbox_cpu_s), 2),
        fmt(m.to_running_s, 0),
        fmt(m.startup_cpu_s, 1),
    ]


def section(
    measurements: list[WaitingMeasurement], settings: WaitingSettings
) -> tuple[list[str], list[Target]]:
    interval = settings.interval
    lines = [
        "## (d) Waiting migrations: one fleet run against a runbook each",
        "",
        f"N migration tasks that stay FULLMIGRATING (none becomes ready), watched at a "
        f"{interval:g} s interval, both ways as deployed: flow runs of a deployment on a "
        f"Prefect process worker ({settings.server_database} server), each flow run a "
        "`prefect.engine` "
        "subprocess of the worker. `fleet`: one `migration_fleet` run for the N tasks; "
        "`runbooks`: N `migration_runbook` runs, one per task. Each row has its own sandbox "
        "(exactly its N tasks), work pool, deployment and worker. Once every flow run is "
        f"Running, one interval and 10 s more; then a window of {settings.window:g} s "
        f"({settings.window / interval:g} intervals), one run per row. *Peak RSS* = the sum "
        "of each flow-run process's own peak (VmHWM, start-up included); *highest sum* = "
        "the largest sum of their RSS sampled each second in the window. CPU % is of one "
        "core, over the window, of the flow-run processes only; the worker's, the Prefect "
        "server's and the sandbox's are beside it, not in it. *Requests per interval* = "
        "the sandbox's count over the window x interval / window (list / show / other). "
        "*To Running* = from creating the flow runs to every one Running; *start-up CPU* = "
        "the flow-run processes' CPU from their start to the window.",
        "",
    ]
    header = [
        "migrations",
        "way",
        "flow-run processes",
        "peak RSS (MB)",
        "highest sum (MB)",
        "peak MB / migration",
        "CPU % of a core",
        "requests / interval (list / show / other)",
        "worker peak RSS (MB) / CPU %",
        "server CPU %",
        "sandbox CPU %",
        "to Running (s)",
        "start-up CPU (s)",
    ]
    lines += table(header, [_row(m, interval) for m in measurements])
    ratio_rows = []
    for tasks in sorted({m.migrations for m in measurements}):
        fleet, books = (
            _measured(measurements, "fleet", tasks),
            _measured(measurements, "runbooks", tasks),
        )
        if fleet is None or books is None:
            continue
        ratio_rows.append(
            [
                f"{tasks:,}",
                "measured",
                fmt(books.peak_rss_mb / fleet.peak_rss_mb),
                fmt(books.cpu_s / fleet.cpu_s if fleet.cpu_s > 0 else math.nan),
                fmt(
                    books.total_requests / fleet.total_requests
                    if fleet.total_requests
                    else math.nan
                ),
            ]
        )
    extrapolated = _extrapolation(measurements, settings)
    if extrapolated:
        lines += ["", *extrapolated[0]]
        ratio_rows += extrapolated[1]
    lines += ["", "Ratios `runbooks` / `fleet` at the same number of migrations:", ""]
    lines += table(["migrations", "from", "peak RSS", "CPU", "requests"], ratio_rows)
    return lines, _targets(measurements, settings)


def _extrapolation(
    measurements: list[WaitingMeasurement], settings: WaitingSettings
) -> tuple[list[str], list[list[str]]] | None:
    """Runbooks at `extrapolate_to`, NOT RUN: the largest measured count, scaled."""
    target = settings.extrapolate_to
    books = [m for m in measurements if m.way == "runbooks" and m.not_run is None]
    if not books or any(m.migrations >= target for m in books):
        return None
    base = max(books, key=lambda m: m.migrations)
    scale = target / base.migrations
    mb = base.peak_rss_mb / base.migrations
    cpu = base.cpu_percent / base.migrations
    requests = base.per_interval(settings.interval) / base.migrations
    lines = [
        f"**{target:,} runbooks: NOT RUN.** Extrapolated, not measured: {target:,} "
        f"`prefect.engine` processes at the {mb:.1f} MB each measured with "
        f"{base.migrations:,} runbooks would need {mb:.1f} MB x {target:,} = "
        f"**{mb * target:,.0f} MB** of peak RSS (this machine has 24 GiB, shared); their "
        f"CPU, scaled the same way ({cpu:.3f}% of a core per runbook x {target:,}), "
        f"**{cpu * target:.1f}%** of a core; requests {requests:.2f} per runbook per "
        f"interval x {target:,} = **{requests * target:,.0f} per interval**. A linear "
        "extrapolation: it leaves out what 1,000 processes would add (the worker's and the "
        "Prefect server's load, start-up, memory pressure).",
    ]
    rows = []
    fleet = _measured(measurements, "fleet", target)
    if fleet is not None:
        rows.append(
            [
                f"{target:,}",
                f"**extrapolated** runbooks ({base.migrations:,} x {scale:g}) / measured fleet",
                fmt(mb * target / fleet.peak_rss_mb),
                fmt(cpu * target / fleet.cpu_percent if fleet.cpu_percent > 0 else math.nan),
                fmt(
                    requests * target / fleet.per_interval(settings.interval)
                    if fleet.total_requests
                    else math.nan
                ),
            ]
        )
    return lines, rows


def _targets(measurements: list[WaitingMeasurement], settings: WaitingSettings) -> list[Target]:
    fleet = _measured(measurements, "fleet", 1000)
    if fleet is None:
        return []
    at = f"at {settings.interval:g} s"
    return [
        Target(
            f"fleet run, 1,000 waiting migrations: peak RSS ({at})", "<= 300 MB",
            f"{fmt(fleet.peak_rss_mb, 0)} MB", fleet.peak_rss_mb <= 300,
            margin(fleet.peak_rss_mb, 300, " MB", upper=True),
        ),
        Target(
            f"fleet run, 1,000 waiting migrations: CPU ({at})", "<= 10% of one core",
            f"{fmt(fleet.cpu_percent, 2)}%", fleet.cpu_percent <= 10,
            margin(fleet.cpu_percent, 10, " points", upper=True),
        ),
    ]  # fmt: skip


__all__ = ["section"]
