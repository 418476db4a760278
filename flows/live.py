"""A watch in the terminal: a Rich progress bar and a status line, no Prefect involved."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from blocks.errors import DcsError
from blocks.models import MigrationTask, MigrationTaskStats
from blocks.settings import DcsSettings
from flows.polling import Until, WatchObserver, WatchSettings, open_client, watch_task


class LiveObserver(WatchObserver):
    """Shows each change as a line above a bar that follows the full migration's progress."""

    def __init__(self, progress: Progress, bar: TaskID) -> None:
        self.display = progress
        self.bar = bar

    async def changed(self, previous: MigrationTask | None, task: MigrationTask) -> None:
        old = previous.status_text if previous is not None else None
        new = task.status_text
        self.display.console.print(
            f"{task.task_name or task.task_id}: {old or '(first look)'} -> [bold]{new}[/bold]"
        )
        self.display.update(self.bar, description=f"{task.task_name or task.task_id} {new}")
        if task.ready_for_cutover or task.succeeded:
            self.display.update(self.bar, completed=100)

    async def progress(self, task: MigrationTask, stats: MigrationTaskStats) -> None:
        if stats.progress_percent is not None:
            self.display.update(self.bar, completed=stats.progress_percent)

    async def transient_error(self, task_id: str, error: DcsError, streak: int) -> None:
        if streak & (streak - 1) == 0:  # the first, then as the streak doubles
            self.display.console.print(
                f"[yellow]poll failed ({streak} in a row), still watching:[/yellow] {error}"
            )


async def watch_live(
    settings: DcsSettings,
    task_id: str,
    *,
    until: Until = "auto",
    poll_interval_seconds: float = 15.0,
    timeout_seconds: float = 86400.0,
    console: Console | None = None,
    **client_options: Any,
) -> int:
    """Watch a task with a live display; 0 when done (the errors of `watch_task` propagate).

    `client_options` go to the client (e.g. its `pace`).
    """
    watch = WatchSettings(
        until=until, poll_interval_seconds=poll_interval_seconds, timeout_seconds=timeout_seconds
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console or Console(highlight=False)) as progress:
        bar = progress.add_task(task_id, total=100)
        async with open_client(settings, **client_options) as client:
            final = await watch_task(client, task_id, watch, LiveObserver(progress, bar))
    (console or progress.console).print(f"done: {final.describe()}")
    return 0


__all__ = ["LiveObserver", "watch_live"]
