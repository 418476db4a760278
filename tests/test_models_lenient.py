"""The response models' loose values (numbers as text, three date formats) and the bodies
other than a task's details: stats, list pages and log pages."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from blocks.models import (
    BackupFile,
    MigrationLog,
    MigrationStatus,
    MigrationTask,
    MigrationTaskList,
    MigrationTaskLogs,
    MigrationTaskStats,
    MigrationTaskSummary,
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
        pytest.param("6379.0", 6379, id="integral-decimal-string"),
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
    ("value", "kept"),
    [
        pytest.param("unlimited", "unlimited", id="word"),
        pytest.param("6379abc", "6379abc", id="trailing-junk"),
        pytest.param(1.5, "1.5", id="fraction"),
        pytest.param(True, "true", id="bool"),
        pytest.param([6379], "[6379]", id="list"),
        pytest.param({"v": 1}, '{"v": 1}', id="object"),
    ],
)
def test_numbers_that_do_not_parse_are_kept_as_sent(value: object, kept: str) -> None:
    """A value that is no whole number stays, as text, in its field; the read succeeds."""
    task = MigrationTask.model_validate(
        {"task_id": "t", "status": "FULLMIGRATING", "bandwidth_limit_mb": value,
         "target_instance": {"port": value}, "backup_files": {"files": [{"size": value}]}}
    )  # fmt: skip
    assert task.bandwidth_limit_mb == task.target_instance.port == kept
    assert task.backup_files.files[0].size == kept
    assert (task.task_id, task.status) == ("t", S.FULLMIGRATING)


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
    ("value", "kept"),
    [
        pytest.param("yesterday", "yesterday", id="word"),
        pytest.param("2019", "2019", id="bare-year"),
        pytest.param("22.10.2019 14:44", "22.10.2019 14:44", id="day-first"),
        pytest.param("2019-13-01 00:00:00", "2019-13-01 00:00:00", id="month-13"),
        pytest.param(
            "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00", id="before-year-1-in-utc"
        ),
        pytest.param(True, "true", id="bool"),
        pytest.param(["2019-10-22"], '["2019-10-22"]', id="list"),
    ],
)
def test_dates_that_do_not_parse_are_kept_as_sent(value: object, kept: str) -> None:
    """A date in no format we read stays, as text, in its field; the read succeeds."""
    task = MigrationTask.model_validate(
        {"status": "SUCCESS", "created_at": value, "updated_at": value, "released_at": value}
    )
    assert task.created_at == task.updated_at == task.released_at == kept
    assert task.succeeded
    assert BackupFile.model_validate({"update_at": value}).update_at == kept
    assert MigrationLog.model_validate({"created_at": value}).created_at == kept


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


# Every field the API reference and the SDK type as a string that we read as something
# else: (model, path to the field) -- a path of names and list indexes.
LOOSE_FIELDS = [
    pytest.param(MigrationTask, ("bandwidth_limit_mb",), id="bandwidth_limit_mb"),
    pytest.param(MigrationTask, ("source_instance", "port"), id="source-port"),
    pytest.param(MigrationTask, ("target_instance", "port"), id="target-port"),
    pytest.param(MigrationTask, ("source_instance", "proxy_multi_db"), id="proxy_multi_db"),
    pytest.param(MigrationTask, ("backup_files", "files", 0, "size"), id="file-size"),
    pytest.param(MigrationTask, ("backup_files", "files", 0, "update_at"), id="file-update_at"),
    pytest.param(MigrationTask, ("created_at",), id="created_at"),
    pytest.param(MigrationTask, ("updated_at",), id="updated_at"),
    pytest.param(MigrationTask, ("released_at",), id="released_at"),
    pytest.param(MigrationTaskList, ("migration_tasks", 0, "created_at"), id="item-created_at"),
    pytest.param(MigrationTaskList, ("migration_tasks", 0, "released_at"), id="item-released_at"),
    pytest.param(MigrationTaskLogs, ("migration_logs", 0, "created_at"), id="log-created_at"),
    *(
        pytest.param(MigrationTaskStats, (name,), id=name)
        for name in (
            "full_migration_progress",
            "offset",
            "source_dbsize",
            "target_dbsize",
            "target_input_kbps",
            "target_ops",
            "is_migrating",
        )
    ),
]


def nest(path: tuple[str | int, ...], value: object) -> Any:
    """`value` placed at `path` in an otherwise empty body."""
    for step in reversed(path):
        value = [value] if isinstance(step, int) else {step: value}
    return value


def dig(obj: Any, path: tuple[str | int, ...]) -> Any:
    """The value at `path` in a parsed model."""
    for step in path:
        obj = obj[step] if isinstance(step, int) else getattr(obj, step)
    return obj


@pytest.mark.parametrize(("model", "path"), LOOSE_FIELDS)
def test_every_loose_field_keeps_what_does_not_parse(
    model: type[BaseModel], path: tuple[str | int, ...]
) -> None:
    """Each field DCS documents as a string keeps a value we cannot read, instead of failing."""
    parsed = model.model_validate(nest(path, "n/a"))
    assert dig(parsed, path) == "n/a"
    again = model.model_validate_json(parsed.model_dump_json())
    assert again == parsed
    assert pickle.loads(pickle.dumps(again)) == parsed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"task_id": ["a276c1ff"]}, "task_id", id="task_id"),
        pytest.param({"task_status": {"a": 1}}, "task_status", id="task_status"),
        pytest.param({"source_instance": "10.0.0.1:6379"}, "source_instance", id="instance"),
        pytest.param({"source_instance": {"password": ["pw"]}}, "password", id="password"),
    ],
)
def test_fields_read_as_documented_still_fail_clearly(body: dict[str, Any], field: str) -> None:
    """Leniency is for loose values only: a task id or object of the wrong shape still fails."""
    with pytest.raises(ValidationError, match=field):
        MigrationTask.model_validate({"status": "MIGRATING", **body})


@pytest.mark.parametrize(
    ("model", "field"),
    [
        pytest.param(MigrationTaskList, "count", id="count"),
        pytest.param(MigrationTaskLogs, "log_num", id="log_num"),
    ],
)
def test_page_totals_still_fail_clearly(model: type[BaseModel], field: str) -> None:
    """A page total drives paging (the SDK types it int): one that is no number fails."""
    with pytest.raises(ValidationError, match=field):
        model.model_validate({field: "many"})


def test_a_realistic_task_with_unlimited_bandwidth_reads_what_a_watch_needs(
    seed_body: dict[str, Any],
) -> None:
    """A whole task body with `bandwidth_limit_mb: "unlimited"` parses, status logic intact."""
    seed_body.update(
        status="INCRMIGEATING", migration_method="incremental_migration", task_status="",
        bandwidth_limit_mb="unlimited", released_at="", version="v2", resume_mode="auto",
        tenant_vpc_id="f7a54d5e", supported_features=["supported_ssl"],
    )  # fmt: skip
    task = MigrationTask.model_validate(seed_body)
    assert task.bandwidth_limit_mb == "unlimited"
    assert (task.task_id, task.task_name) == ("a276c1ffa0a54c2597fc824b917db317", "migration1")
    assert (task.status, task.raw_status) == (S.INCRMIGRATING, "INCRMIGEATING")
    assert task.ready_for_cutover
    assert not task.is_terminal
    assert not task.exchanging
    assert task.source_instance.port == task.target_instance.port == 6379
    assert task.created_at == utc(2019, 10, 22, 14, 44, 30)
    assert task.source_instance.password.get_secret_value() == "DCStest123"
    masked = task.masked()
    assert not masked.has_unmasked_secrets()
    assert "DCStest123" not in masked.model_dump_json() + repr(task)


def test_a_list_item_with_loose_values_makes_a_task() -> None:
    """A list item whose loose values do not parse still stands for its task (a first look)."""
    item = MigrationTaskSummary.model_validate(
        {"task_id": "t", "status": "FULLMIGRATING", "created_at": "yesterday",
         "bandwidth_limit_mb": "unlimited"}
    )  # fmt: skip
    task = item.as_task()
    assert (task.task_id, task.status, task.created_at) == ("t", S.FULLMIGRATING, "yesterday")
    assert task.bandwidth_limit_mb == "unlimited"


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


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(int, id="numbers"),
        pytest.param(str, id="strings"),
        pytest.param(lambda n: f" {n} ", id="padded-strings"),
    ],
)
def test_stats_counters_read_numbers_and_strings_of_numbers(shape: Any) -> None:
    """offset and the key counts read the same whether DCS sends 100000 or "100000"."""
    stats = MigrationTaskStats.model_validate(
        {"offset": shape(0), "source_dbsize": shape(100000), "target_dbsize": shape(99990)}
    )
    assert (stats.offset, stats.source_dbsize, stats.target_dbsize) == (0, 100000, 99990)


@pytest.mark.parametrize(
    ("progress", "percent"),
    [
        pytest.param("45.5 %", 45.5, id="text"),
        pytest.param(100, 100.0, id="int"),
        pytest.param("n/a", None, id="not-a-number"),
        pytest.param("nan", None, id="nan"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_progress_percent_is_the_progress_when_it_is_a_number(
    progress: object, percent: float | None
) -> None:
    """progress_percent gives readers a float or None, whatever full_migration_progress holds."""
    stats = MigrationTaskStats.model_validate({"full_migration_progress": progress})
    assert stats.progress_percent == percent


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
