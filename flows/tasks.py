"""Single-call Prefect tasks: one DCS request each, results masked."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.credentials import DcsCredentials
from blocks.models import MigrationTask
from flows.credentials import DEFAULT_BLOCK_NAME, load_credentials


def status_line(task: MigrationTask) -> str:
    """One log line for a task: name, full id, status as sent, task_status. Never a secret.

    Longer than `MigrationTask.describe()`, the short label other messages embed.
    """
    return (
        f"migration task {task.task_name or '?'!s} ({task.task_id}): "
        f"status {task.status_text}, task_status {task.task_status or '-'}"
    )


# No cache: a poll must always ask DCS, never reuse an earlier answer for the same inputs.
@task(
    name="fetch-migration-task",
    task_run_name="fetch-migration-task-{task_id}",
    cache_policy=NO_CACHE,
)
def fetch_migration_task(
    task_id: str, credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME
) -> MigrationTask:
    """Fetch a migration task's details (`GET /v2/{project_id}/migration-task/{task_id}`).

    `credentials` is the name of a saved `DcsCredentials` block, or a block. Works in sync
    and async flows; the returned task has its Redis passwords masked.

    ```python
    from prefect import flow
    from flows import fetch_migration_task

    @flow
    def check() -> str:
        return fetch_migration_task("a276c1ffa0a54c2597fc824b917db317", "dcs").status_text
    ```
    """
    block = load_credentials(credentials)
    with block.get_client() as client:
        result = client.show_migration_task(task_id)
    get_run_logger().info(status_line(result))
    return result


__all__ = ["fetch_migration_task", "status_line"]
