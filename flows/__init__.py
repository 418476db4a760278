"""Prefect tasks and flows for DCS data migrations: fetch, wait, cut over, notify, sense."""

from flows.credentials import DEFAULT_BLOCK_NAME, aload_credentials, load_credentials
from flows.cutover import exchange_instance_ip, rollback_instance_ip, run_cutover_deployment
from flows.notify import format_message, notify_migration, send_notification
from flows.runbook import RunbookSummary, migration_runbook
from flows.sensor import migration_sensor
from flows.tasks import fetch_migration_task
from flows.wait import WatchResult, wait_for_migration_task, wait_for_migration_tasks

__all__ = [
    "DEFAULT_BLOCK_NAME",
    "RunbookSummary",
    "WatchResult",
    "aload_credentials",
    "exchange_instance_ip",
    "fetch_migration_task",
    "format_message",
    "load_credentials",
    "migration_runbook",
    "migration_sensor",
    "notify_migration",
    "rollback_instance_ip",
    "run_cutover_deployment",
    "send_notification",
    "wait_for_migration_task",
    "wait_for_migration_tasks",
]
