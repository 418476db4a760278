"""Prefect tasks and flows for DCS data migrations: fetch, wait, cut over, notify, sense.

Names are loaded on first use, so `flows.polling` and `flows.cli` (whose `status` command
must answer fast) do not pay for importing Prefect until a flow is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks._lazy import lazy_attributes

if TYPE_CHECKING:
    from flows.credentials import DEFAULT_BLOCK_NAME, aload_credentials, load_credentials
    from flows.cutover import exchange_instance_ip, rollback_instance_ip, run_cutover_deployment
    from flows.gate import GateResult, wait_until_caught_up
    from flows.message import format_message
    from flows.migrate import MigrationSummary, migrate_instance
    from flows.notify import notify_migration, send_notification
    from flows.runbook import RunbookSummary, migration_runbook
    from flows.sensor import migration_sensor
    from flows.tasks import fetch_migration_task
    from flows.wait import WatchResult, wait_for_migration_task, wait_for_migration_tasks

_LAZY = {
    "DEFAULT_BLOCK_NAME": "flows.credentials",
    "aload_credentials": "flows.credentials",
    "load_credentials": "flows.credentials",
    "exchange_instance_ip": "flows.cutover",
    "rollback_instance_ip": "flows.cutover",
    "run_cutover_deployment": "flows.cutover",
    "GateResult": "flows.gate",
    "wait_until_caught_up": "flows.gate",
    "format_message": "flows.message",
    "MigrationSummary": "flows.migrate",
    "migrate_instance": "flows.migrate",
    "notify_migration": "flows.notify",
    "send_notification": "flows.notify",
    "RunbookSummary": "flows.runbook",
    "migration_runbook": "flows.runbook",
    "migration_sensor": "flows.sensor",
    "fetch_migration_task": "flows.tasks",
    "WatchResult": "flows.wait",
    "wait_for_migration_task": "flows.wait",
    "wait_for_migration_tasks": "flows.wait",
}


__getattr__, __dir__ = lazy_attributes("flows", _LAZY, globals())


__all__ = [
    "DEFAULT_BLOCK_NAME",
    "GateResult",
    "MigrationSummary",
    "RunbookSummary",
    "WatchResult",
    "aload_credentials",
    "exchange_instance_ip",
    "fetch_migration_task",
    "format_message",
    "load_credentials",
    "migrate_instance",
    "migration_runbook",
    "migration_sensor",
    "notify_migration",
    "rollback_instance_ip",
    "run_cutover_deployment",
    "send_notification",
    "wait_for_migration_task",
    "wait_for_migration_tasks",
    "wait_until_caught_up",
]
