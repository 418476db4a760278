"""The JSON (and HTML) bodies the sandbox sends, shaped like DCS's documented answers.

On purpose, as the live service does: Redis passwords in plain text, some numbers as
strings (`port`, `bandwidth_limit_mb`), dates as `2019/10/22 14:44:30`, the status spelled
`INCRMIGEATING`, and an undocumented field or two. Dates are in *scenario* time: the
sandbox's start plus the scenario seconds that passed.

>>> error_body("DCS.4133", "migration task 't1' does not exist")
{'error_code': 'DCS.4133', 'error_msg': "migration task 't1' does not exist", 'error_ext_msg': None}
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sandbox.lifecycle import (
    FAILURE_STATUSES,
    INCREMENTAL_STATUSES,
    MIGRATING_STATUSES,
    TERMINAL_STATUSES,
    HistoryEntry,
    TaskSnapshot,
)
from sandbox.scenario import MigrationScript
from sandbox.sync import incremental_offset

_TENANT = {
    "ecs_tenant_private_ip": "192.168.0.250",
    "tenant_vpc_id": "5b3a9c1e-6d64-4b0c-9d3c-0d6f6a3c7e11",
    "tenant_subnet_id": "1c9e2f3a-8b7d-4e6f-a5c4-3b2a1d0e9f88",
    "tenant_security_group_id": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
}
_VERSION = "1.0.3"
_FEATURES = ["supports_ip_exchange", "supports_resume"]
_SPEC_CODE = "redis.ha.xu1.large.r2.2"


def dcs_date(origin: datetime, seconds: float) -> str:
    """`2019/10/22 14:44:30`: the date format of the task bodies."""
    return (origin + timedelta(seconds=seconds)).strftime("%Y/%m/%d %H:%M:%S")


def log_date(origin: datetime, seconds: float) -> str:
    """`2023-05-15T09:11:25.449Z`: the date format of the migration logs."""
    moment = origin + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def progress_text(progress: float) -> str:
    """`37.5`, `100`: a percentage as DCS sends it, a string."""
    return f"{progress:.2f}".rstrip("0").rstrip(".")


def error_body(code: str, message: str) -> dict[str, Any]:
    """The DCS error body: `{error_code, error_msg, error_ext_msg}`."""
    return {"error_code": code, "error_msg": message, "error_ext_msg": None}


def gateway_error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    """An API gateway's error body (throttling, unknown API): no `error_ext_msg`."""
    return {"error_code": code, "error_msg": message, "request_id": request_id}


def iam_error_body(status: int, title: str, message: str) -> dict[str, Any]:
    """IAM's (Keystone-style) error body."""
    return {"error": {"code": status, "title": title, "message": message}}


def task_body(script: MigrationScript, snap: TaskSnapshot, origin: datetime) -> dict[str, Any]:
    """GET migration-task/{task_id} (and the answer to POST stop)."""
    body: dict[str, Any] = {
        "task_id": script.task_id,
        "task_name": script.task_name,
        "description": script.description,
        "status": snap.status,
        "migration_type": script.migration_type,
        "migration_method": script.migration_method,
        "ecs_tenant_private_ip": _TENANT["ecs_tenant_private_ip"],
        "network_type": script.network_type,
        "created_at": dcs_date(origin, 0),
        "updated_at": dcs_date(origin, snap.status_since),
        "version": _VERSION,
        "resume_mode": "auto",
        "supported_features": list(_FEATURES),
        "tenant_vpc_id": _TENANT["tenant_vpc_id"],
        "tenant_subnet_id": _TENANT["tenant_subnet_id"],
        "tenant_security_group_id": _TENANT["tenant_security_group_id"],
        "bandwidth_limit_mb": script.bandwidth_limit_mb,
    }
    if script.source_instance is not None:
        body["source_instance"] = script.source_instance.model_dump(exclude_none=True)
    body["target_instance"] = script.target_instance.model_dump(exclude_none=True)
    if script.backup_files is not None:
        body["backup_files"] = script.backup_files.model_dump(exclude_none=True)
    if snap.status in TERMINAL_STATUSES:
        body["released_at"] = dcs_date(origin, snap.status_since)
    if snap.task_status is not None:
        body["task_status"] = snap.task_status
    body.update(script.extra_fields)
    return {key: value for key, value in body.items() if value is not None}


def list_item(script: MigrationScript, snap: TaskSnapshot, origin: datetime) -> dict[str, Any]:
    """One entry of GET migration-tasks (no `task_status`: the list does not carry it)."""
    source, target = script.source_instance, script.target_instance
    if source is not None:
        data_source = source.addrs or f"{source.ip}:{source.port}"
    else:
        data_source = (script.backup_files.bucket_name if script.backup_files else None) or ""
    item: dict[str, Any] = {
        "task_id": script.task_id,
        "task_name": script.task_name,
        "status": snap.status,
        "migration_type": script.migration_type,
        "migration_method": script.migration_method,
        "ecs_tenant_private_ip": _TENANT["ecs_tenant_private_ip"],
        "data_source": data_source,
        "source_instance_name": (source.name if source else None) or "",
        "source_instance_id": (source.id if source else None) or "",
        # A task created but not configured yet has no target.
        "target_instance_addrs": target.addrs
        or (f"{target.ip}:{target.port}" if target.ip else ""),
        "target_instance_name": target.name or "",
        "target_instance_id": target.id or "",
        "created_at": dcs_date(origin, 0),
        "description": script.description,
        "source_instance_status": "RUNNING" if source else "",
        "target_instance_status": "RUNNING",
        "source_instance_subnet_id": _TENANT["tenant_subnet_id"] if source else "",
        "target_instance_subnet_id": _TENANT["tenant_subnet_id"],
        "source_instance_spec_code": _SPEC_CODE if source else "",
        "target_instance_spec_code": _SPEC_CODE,
        "version": _VERSION,
        "resume_mode": "auto",
        "supported_features": list(_FEATURES),
    }
    if snap.status in FAILURE_STATUSES:
        item["error_message"] = f"migration ended with status {snap.status}"
    if snap.status in TERMINAL_STATUSES:
        item["released_at"] = dcs_date(origin, snap.status_since)
    return {key: value for key, value in item.items() if value is not None}


def stats_body(script: MigrationScript, snap: TaskSnapshot, t: float) -> dict[str, Any]:
    """GET migration-task/{task_id}/stats: every field a string, as the official SDK types
    them (key counts too), but `is_migrating`. In incremental sync, `offset` and the target's
    keys follow the task's `stats` script; before it, the offset only grows."""
    migrating = snap.status in MIGRATING_STATUSES
    synced = int(script.source_keys * snap.progress / 100)
    offset = int(t * 1024) if migrating else 0
    if snap.status in INCREMENTAL_STATUSES:
        offset = incremental_offset(script.stats, since=snap.status_since, t=t)
        synced = script.source_keys - script.stats.key_difference
    return {
        "full_migration_progress": progress_text(snap.progress),
        "offset": str(offset),
        "source_dbsize": str(script.source_keys),
        "target_dbsize": str(synced),
        "target_input_kbps": "2048.5" if migrating else "0",
        "target_ops": "1500" if migrating else "0",
        "is_migrating": migrating,
    }


def logs_body(
    entries: list[HistoryEntry],
    origin: datetime,
    *,
    offset: int,
    limit: int,
    log_level: str | None,
) -> dict[str, Any]:
    """GET migration-task/{task_id}/logs: newest first; `log_num` counts every match."""
    matching = [
        entry
        for entry in reversed(entries)
        if log_level is None or entry.level.lower() == log_level.lower()
    ]
    page = matching[offset : offset + limit]
    return {
        "log_num": len(matching),
        "migration_logs": [
            {
                "created_at": log_date(origin, entry.at),
                "log_level": entry.level,
                "message": entry.message,
                "log_code": entry.code,
                "keyword": list(entry.keywords),
            }
            for entry in page
        ],
    }


def gateway_page(status: int) -> str:
    """The HTML a load balancer sends instead of JSON when the service behind it is down."""
    title = {502: "502 Bad Gateway", 503: "503 Service Temporarily Unavailable"}.get(
        status, f"{status} Error"
    )
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def portal_page() -> str:
    """An HTML page served with 200 where JSON was expected (a proxy's login page)."""
    return (
        "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
        "<body><h1>Network access requires sign-in</h1>"
        '<form method="post"><input name="user"></form></body></html>\n'
    )


__all__ = [
    "dcs_date",
    "error_body",
    "gateway_error_body",
    "gateway_page",
    "iam_error_body",
    "list_item",
    "log_date",
    "logs_body",
    "portal_page",
    "progress_text",
    "stats_body",
    "task_body",
]
