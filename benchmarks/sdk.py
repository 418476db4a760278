"""The official SDK (`huaweicloudsdkdcs`) pointed at the sandbox, as the comparisons use it."""

from __future__ import annotations

from typing import Any

#: Statuses after which a watch is over, as DCS spells them (see DESIGN.md).
TERMINAL_STATUSES = frozenset(
    {
        "SUCCESS",
        "MIGRATION_SUCCESS",
        "FAILED",
        "MIGRATION_FAILED",
        "TERMINATED",
        "RELEASED",
        "ERROR",
        "DELETED",
    }
)


def sdk_client(endpoint: str, project_id: str, access_key: str, secret_key: str) -> Any:
    """Huawei's `DcsClient`, AK/SK-signed (the SDK has no other way for DCS), plain http."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials  # type: ignore[import-untyped]
    from huaweicloudsdkcore.http.http_config import HttpConfig  # type: ignore[import-untyped]
    from huaweicloudsdkdcs.v2 import DcsClient  # type: ignore[import-untyped]

    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (10, 30)
    return (
        DcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(access_key, secret_key, project_id))
        .with_endpoints([endpoint])
        .build()
    )


def sdk_status(client: Any, task_id: str) -> str:
    """One `show_migration_task` through the SDK: the task's status."""
    from huaweicloudsdkdcs.v2 import ShowMigrationTaskRequest

    response = client.show_migration_task(ShowMigrationTaskRequest(task_id=task_id))
    return str(response.status)


__all__ = ["TERMINAL_STATUSES", "sdk_client", "sdk_status"]
