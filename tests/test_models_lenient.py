"""The response models' loose values (numbers as text, three date formats) and the bodies
other than a task's details: stats, list pages and log pages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from blocks.models import (
    BackupFile,
    MigrationLog,
    MigrationStatus,
    MigrationTask,
    MigrationTaskList,
    MigrationTaskLogs,
    MigrationTaskStats,
    SourceInstance,
    TargetInstance,
)

UTC = timezone.utc
S = MigrationStatus


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- lenient values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("6379", 6379, id="string"),
        pytest.param(" 6379 ", 6379, id="padded-string"),
        pytest.param(6379, 6379, id="int"),
        pytest.param(6379.0, 6379, id="integral-float"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="null"),
    ],
)
def test_numbers_accepted(value: object, expected: int | None) -> None:
    """Integer fields take ints, integral floats and numeric strings; "" means unset."""
    task = MigrationTask.model_validate(
        {"bandwidth_limit_mb": value, "target_instance": {"port": value},
         "backup_files": {"files": [{"size": value}]}}
    )  # fmt: skip
    assert task.bandwidth_limit_mb == expected
    assert task.target_instance.port == expected
    assert task.backup_files.files[0].size == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("abc", id="word"),
        pytest.param("6379abc", id="trailing-junk"),
        pytest.param(1.5, id="fraction"),
        pytest.param(True, id="bool"),
        pytest.param([6379], id="list"),
        pytest.param({"v": 1}, id="object"),
    ],
)
@pytest.mark.parametrize("field", ["port", "bandwidth_limit_mb"])
def test_numbers_rejected(field: str, value: object) -> None:
    """Anything that is not a whole number is a ValidationError, never another exception."""
    body = {"source_instance": {"port": value}} if field == "port" else {field: value}
    with pytest.raises(ValidationError):
        MigrationTask.model_validate(body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2019/10/22 14:44:30", utc(2019, 10, 22, 14, 44, 30), id="slashes"),
        pytest.param("2019-10-22 14:44:30", utc(2019, 10, 22, 14, 44, 30), id="dashes"),
        pytest.param("2019-10-22T14:44:30", utc(2019, 10, 22, 14, 44, 30), id="iso-naive"),
        pytest.param("2023-05-15T09:11:25.449Z", utc(2023, 5, 15, 9, 11, 25, 449000), id="iso-z"),
        pytest.param("2019-10-22T22:44:30+08:00", utc(2019, 10, 22, 14, 44, 30), id="iso-offset"),
        pytest.param(" 2019-10-22 14:44:30 ", utc(2019, 10, 22, 14, 44, 30), id="padded"),
        pytest.param("", None, id="empty"),
    ],
)
def test_dates_accepted(value: str, expected: datetime | None) -> None:
    """All three date formats parse to aware UTC datetimes; naive ones are taken as UTC."""
    task = MigrationTask.model_validate({"created_at": value, "released_at": value})
    log = MigrationLog.model_validate({"created_at": value})
    assert task.created_at == task.released_at == log.created_at == expected
    if expected is not None:
        assert task.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("yesterday", id="word"),
        pytest.param("2019", id="bare-year"),
        pytest.param("2019-13-01 00:00:00", id="month-13"),
        pytest.param("0001-01-01T00:00:00+01:00", id="before-year-1-in-utc"),
        pytest.param(True, id="bool"),
        pytest.param(["2019-10-22"], id="list"),
    ],
)
def test_dates_rejected(value: object) -> None:
    """An unparseable date is a ValidationError, never another exception."""
    with pytest.raises(ValidationError):
        BackupFile.model_validate({"update_at": value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(False, False, id="bool"),
        pytest.param("true", True, id="string-true"),
        pytest.param("false", False, id="string-false"),
        pytest.param("", None, id="empty"),
    ],
)
def test_booleans(value: object, expected: bool | None) -> None:
    """proxy_multi_db and is_migrating take booleans and "true"/"false"."""
    assert SourceInstance.model_validate({"proxy_multi_db": value}).proxy_multi_db is expected
    assert MigrationTaskStats.model_validate({"is_migrating": value}).is_migrating is expected


def test_db_is_a_string_even_when_sent_as_a_number() -> None:
    """db is a database index or name, so a number arrives as its text."""
    assert TargetInstance.model_validate({"db": 3}).db == "3"


# --- the other response bodies ------------------------------------------------------------


@pytest.mark.parametrize("progress", ["45.5", "45.5%", " 45.5 % ", 45.5])
def test_stats_body(progress: object) -> None:
    """A show_migration_task_stats body parses, with the progress as a float percentage."""
    stats = MigrationTaskStats.model_validate(
        {"full_migration_progress": progress, "offset": "20395028", "source_dbsize": "1000000",
         "target_dbsize": 999990, "target_input_kbps": "1536.25", "target_ops": "4210",
         "is_migrating": True}
    )  # fmt: skip
    assert stats.full_migration_progress == 45.5
    assert (stats.offset, stats.source_dbsize, stats.target_dbsize) == (20395028, 1000000, 999990)
    assert (stats.target_input_kbps, stats.target_ops) == (1536.25, 4210.0)
    assert stats.is_migrating is True


def test_list_body() -> None:
    """A list_migration_tasks page parses into summaries with the shared status logic."""
    # Every field of the SDK's MigrationTaskList, with values shaped like the live service's.
    item = {
        "task_id": "a276c1ffa0a54c2597fc824b917db317", "task_name": "migration1",
        "status": "INCRMIGEATING", "migration_type": "online_migration",
        "migration_method": "incremental_migration", "ecs_tenant_private_ip": "192.168.0.88",
        "data_source": "192.168.1.2:6379", "source_instance_name": "dcs-test",
        "source_instance_id": "86157b69-8a62-47f9-8c55-fa6ddc8927e1",
        "target_instance_addrs": "192.168.1.3:6379", "target_instance_name": "test-instance",
        "target_instance_id": "86157b69-8a62-47f9-8c55-fa6ddc8927ee",
        "created_at": "2019/10/22 14:44:30", "description": "",
        "source_instance_status": "RUNNING", "target_instance_status": "RUNNING",
        "source_instance_subnet_id": "1d4d3cd7-d9a2-4e4c-a0a0-59c1d51e7b5b",
        "target_instance_subnet_id": "1d4d3cd7-d9a2-4e4c-a0a0-59c1d51e7b5b",
        "source_instance_spec_code": "redis.ha.xu1.large.r2.2",
        "target_instance_spec_code": "redis.ha.xu1.large.r2.4", "error_message": "",
        "released_at": "", "version": "v2", "resume_mode": "auto",
        "supported_features": ["supported_ssl"],
    }  # fmt: skip
    page = MigrationTaskList.model_validate(
        {"count": "2", "migration_tasks": [item, {"task_id": "b", "status": "SUCCESS"}]}
    )
    assert page.count == 2
    first, second = page.migration_tasks
    assert first.model_dump(exclude={"status", "raw_status", "created_at", "released_at"}) == {
        k: v for k, v in item.items() if k not in {"status", "created_at", "released_at"}
    }
    assert (first.status, first.raw_status) == (S.INCRMIGRATING, "INCRMIGEATING")
    assert first.ready_for_cutover
    assert first.created_at == utc(2019, 10, 22, 14, 44, 30)
    assert first.released_at is None
    assert second.succeeded
    assert second.is_terminal


def test_logs_body() -> None:
    """A list_migration_task_logs page parses, with log times as aware datetimes."""
    log_line = {"created_at": "2023-05-15T09:11:25.449Z", "log_level": "Info",
                "message": "full sync finished, start incremental sync",
                "log_code": "DCS.MIGRATION.1003", "keyword": ["full", "incremental"]}  # fmt: skip
    logs = MigrationTaskLogs.model_validate({"log_num": "1", "migration_logs": [log_line]})
    assert logs.log_num == 1
    (log,) = logs.migration_logs
    assert log.created_at == utc(2023, 5, 15, 9, 11, 25, 449000)
    assert (log.log_level, log.log_code) == ("Info", "DCS.MIGRATION.1003")
    assert log.message == "full sync finished, start incremental sync"
    assert log.keyword == ["full", "incremental"]


@pytest.mark.parametrize("page", [{}, {"migration_tasks": None, "migration_logs": None}])
def test_page_item_lists_are_never_none(page: dict[str, Any]) -> None:
    """A missing or null item list is an empty list, so callers can iterate it directly."""
    assert MigrationTaskList.model_validate(page).migration_tasks == []
    assert MigrationTaskLogs.model_validate(page).migration_logs == []
