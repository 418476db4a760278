"""The public surface is pinned: a name added or removed from `__all__` is a deliberate change."""

from __future__ import annotations

import blocks
import flows


def test_blocks_exports() -> None:
    """`blocks` exports exactly these names, and each of them resolves."""
    assert set(blocks.__all__) == {
        "AkSkAuth", "AsyncDcsClient", "CutoverAlreadyRequested", "CutoverError",
        "CutoverFailed", "CutoverGateTimeout", "CutoverRejected", "MigrationUnreachable",
        "NotificationError",
        "DcsApiError", "DcsAuthError", "DcsBusyError",
        "DcsClient", "DcsCredentials", "DcsError", "DcsNotFoundError", "DcsRateLimitedError",
        "DcsServerError", "DcsSettings", "DcsTransportError", "DcsUnexpectedResponse",
        "DcsValidationError",
        "IamPasswordAuth", "MigrationError", "MigrationFailed", "MigrationStatus",
        "MigrationNotConfigured", "MigrationTask", "MigrationTaskNotFound", "MigrationTimeout",
        "RetryPolicy",
        "TokenAuth", "__version__",
    }  # fmt: skip
    for name in blocks.__all__:
        assert getattr(blocks, name) is not None
    assert set(blocks.__all__) <= set(dir(blocks))


def test_flows_exports() -> None:
    """`flows` exports exactly these names, and each of them resolves."""
    assert set(flows.__all__) == {
        "DEFAULT_BLOCK_NAME", "GateResult", "MigrationSummary", "migrate_instance",
        "RunbookSummary", "WatchResult", "aload_credentials",
        "exchange_instance_ip", "fetch_migration_task", "format_message", "load_credentials",
        "migration_runbook", "migration_sensor", "notify_migration", "rollback_instance_ip",
        "run_cutover_deployment", "send_notification", "wait_for_migration_task",
        "wait_for_migration_tasks", "wait_until_caught_up",
    }  # fmt: skip
    for name in flows.__all__:
        assert getattr(flows, name) is not None
