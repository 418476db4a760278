"""The response models: the documented example, lenient parsing, statuses and masking."""

from __future__ import annotations

import doctest
import json
import pickle
import string
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, ValidationError

import blocks.models
from blocks.models import (
    FAILED_STATUSES,
    IN_PROGRESS_STATUSES,
    MASKED,
    READY_FOR_CUTOVER_STATUSES,
    SUCCEEDED_STATUSES,
    BackupFile,
    BackupFiles,
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

EXAMPLE = Path(__file__).parent / "data" / "show_migration_task_example.json"
UTC = timezone.utc
PASSWORD = "DCStest123"
S = MigrationStatus


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# The example's instances, as parsed (all but the password).
INSTANCE = {"addrs": "192.168.1.2:6379", "ip": "192.168.1.2", "port": 6379,
            "proxy_multi_db": False, "task_status": "RUNNING", "db": "0"}  # fmt: skip
SOURCE = {**INSTANCE, "id": "86157b69-8a62-47f9-8c55-fa6ddc8927e1", "name": "dcs-test"}
TARGET = {**INSTANCE, "id": "86157b69-8a62-47f9-8c55-fa6ddc8927ee", "name": "test-instance"}


@pytest.fixture
def task(seed_body: dict[str, Any]) -> MigrationTask:
    """The seed document's example response (`seed_body`, from conftest), parsed."""
    return MigrationTask.model_validate(seed_body)


# --- the documented example, field by field ---------------------------------------------


def test_example_top_level_fields(task: MigrationTask) -> None:
    """Every top-level field of the documented example parses to the right typed value."""
    assert task.task_name == "migration1"
    assert task.task_id == "a276c1ffa0a54c2597fc824b917db317"
    assert task.status is S.TERMINATING
    assert task.raw_status == "TERMINATING"
    assert task.migration_type == "incremental_migration"
    assert task.network_type == "vpc"
    assert task.created_at == utc(2019, 10, 22, 14, 44, 30)
    assert task.updated_at == utc(2019, 10, 22, 18, 0, 0)
    absent = set(MigrationTask.model_fields) - task.model_fields_set
    assert absent == {
        "description", "migration_method", "ecs_tenant_private_ip", "backup_files",
        "released_at", "version", "resume_mode", "supported_features", "tenant_vpc_id",
        "tenant_subnet_id", "tenant_security_group_id", "bandwidth_limit_mb", "task_status",
    }  # fmt: skip
    assert all(getattr(task, name) is None for name in absent)
    assert task.model_extra == {}


@pytest.mark.parametrize(
    ("attribute", "cls", "expected"),
    [
        pytest.param("source_instance", SourceInstance, SOURCE, id="source"),
        pytest.param("target_instance", TargetInstance, TARGET, id="target"),
    ],
)
def test_example_instances(
    task: MigrationTask, attribute: str, cls: type[BaseModel], expected: dict[str, Any]
) -> None:
    """Every field of both instances parses: port as int, proxy_multi_db as bool, db as str."""
    instance = getattr(task, attribute)
    assert type(instance) is cls
    assert instance.model_dump(exclude={"password"}) == expected
    assert instance.password.get_secret_value() == PASSWORD
    assert instance.model_extra == {}


def test_example_password_never_shown(task: MigrationTask) -> None:
    """The plain password shows in no repr, str or dump; only get_secret_value() reveals it."""
    for text in (repr(task), str(task), task.model_dump_json(), str(task.model_dump())):
        assert PASSWORD not in text
    assert PASSWORD not in json.dumps(task.model_dump(mode="json"))
    assert isinstance(task.model_dump()["source_instance"]["password"], SecretStr)
    assert task.has_unmasked_secrets()


def test_masked_copy_hides_passwords_pickles_and_round_trips(task: MigrationTask) -> None:
    """masked() sets passwords to MASKED in a copy that pickles and re-parses to itself."""
    masked = task.masked()
    assert masked.source_instance.password == SecretStr(MASKED)
    assert masked.target_instance.password == SecretStr(MASKED)
    assert not masked.has_unmasked_secrets()
    assert task.source_instance.password.get_secret_value() == PASSWORD  # original untouched
    instances = {"source_instance", "target_instance"}
    assert masked.model_dump(exclude=instances) == task.model_dump(exclude=instances)
    assert pickle.loads(pickle.dumps(masked)) == masked
    assert MigrationTask.model_validate_json(masked.model_dump_json()) == masked


def test_masked_is_idempotent_deep_and_keeps_fields_set(seed_body: dict[str, Any]) -> None:
    """Masking twice changes nothing more; no mutable value is shared; unset stays unset."""
    task = MigrationTask.model_validate({**seed_body, "supported_features": ["a"], "x": {"y": [1]}})
    masked = task.masked()
    assert masked.masked() == masked
    assert masked.model_fields_set == task.model_fields_set
    assert (
        masked.model_dump(exclude_unset=True).keys() == task.model_dump(exclude_unset=True).keys()
    )
    masked.supported_features.append("b")
    masked.model_extra["x"]["y"].append(2)
    assert task.supported_features == ["a"]
    assert task.model_extra == {"x": {"y": [1]}}
    assert masked.source_instance is not task.source_instance


def test_passwords_empty_string_is_no_password() -> None:
    """An empty password means none is set, so masking does not invent one."""
    task = MigrationTask.model_validate({"source_instance": {"password": ""}})
    assert task.source_instance.password is None
    assert task.masked() == task


# --- statuses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("INCRMIGRATING", id="documented"),
        pytest.param("INCRMIGEATING", id="live-service"),
        pytest.param(" incrmigeating\n", id="padded-lowercase"),
        pytest.param("IncrMigRating", id="mixed-case"),
    ],
)
def test_incremental_spellings_are_one_status(raw: str) -> None:
    """Both spellings, in any case or padding, parse to INCRMIGRATING: ready for cutover."""
    task = MigrationTask.model_validate({"status": raw})
    assert task.status is S.INCRMIGRATING
    assert task.raw_status == raw
    assert task.ready_for_cutover
    assert not task.is_terminal
    assert not task.in_progress


#: status -> (in_progress, succeeded, failed, ready_for_cutover)
EXPECTED_FLAGS = {
    **dict.fromkeys(IN_PROGRESS_STATUSES, (True, False, False, False)),
    **dict.fromkeys(SUCCEEDED_STATUSES, (False, True, False, False)),
    **dict.fromkeys(FAILED_STATUSES, (False, False, True, False)),
    **dict.fromkeys(READY_FOR_CUTOVER_STATUSES, (False, False, False, True)),
    S.UNKNOWN: (False, False, False, False),
}


def test_status_sets_partition_the_enum() -> None:
    """Every status is in exactly one set, except UNKNOWN, which is in none."""
    sets = [IN_PROGRESS_STATUSES, SUCCEEDED_STATUSES, FAILED_STATUSES, READY_FOR_CUTOVER_STATUSES]
    assert sum(len(s) for s in sets) == len(frozenset().union(*sets)) == len(S) - 1
    assert set(EXPECTED_FLAGS) == set(S)


@pytest.mark.parametrize("model", [MigrationTask, MigrationTaskSummary])
@pytest.mark.parametrize("status", [pytest.param(s, id=s.value) for s in S])
def test_status_properties(model: type[MigrationTask], status: MigrationStatus) -> None:
    """Each status drives the watcher's properties, identically on details and list items."""
    task = model.model_validate({"status": status.value.lower()})
    in_progress, succeeded, failed, ready = EXPECTED_FLAGS[status]
    assert task.status is status
    assert (task.in_progress, task.succeeded, task.failed) == (in_progress, succeeded, failed)
    assert task.ready_for_cutover == ready
    assert task.is_terminal == (succeeded or failed)
    assert task.is_unknown_status == (status is S.UNKNOWN)


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        pytest.param({"status": "PAUSED"}, "PAUSED", id="new-status"),
        pytest.param({}, None, id="absent"),
        pytest.param({"status": None}, None, id="null"),
        pytest.param({"status": ""}, "", id="empty"),
        pytest.param({"status": 42}, "42", id="number"),
        pytest.param({"status": {"a": 1}}, "{'a': 1}", id="object"),
    ],
)
def test_unknown_status_keeps_raw_and_never_fails(body: dict[str, Any], raw: str | None) -> None:
    """Anything unlisted is UNKNOWN (neither terminal nor failed) and the raw text is kept."""
    task = MigrationTask.model_validate({"task_id": "t", **body})
    assert task.status is S.UNKNOWN
    assert task.is_unknown_status
    assert not task.is_terminal
    assert not task.failed
    assert task.raw_status == raw
    assert json.loads(task.model_dump_json())["raw_status"] == raw
    assert MigrationTask.model_validate_json(task.model_dump_json()) == task


@pytest.mark.parametrize(
    ("task_status", "exchanging"),
    [
        pytest.param("EXCHANGING", True, id="exchanging"),
        pytest.param("exchanging ", True, id="padded-lowercase"),
        pytest.param("EXCHANGE_SUCCESS", False, id="done"),
        pytest.param(None, False, id="absent"),
    ],
)
def test_exchanging(task_status: str | None, exchanging: bool) -> None:
    """exchanging is true only while task_status says the IPs are being switched."""
    assert MigrationTask(task_status=task_status).exchanging is exchanging


def test_describe_and_str() -> None:
    """describe() gives name, short id and status as DCS sent it; str(status) is its value."""
    assert f"{S.INCRMIGEATING} {S.SUCCESS!s}" == "INCRMIGRATING SUCCESS"
    task = MigrationTaskSummary(task_name="m1", task_id="a276c1ffa0a5", status="INCRMIGEATING")
    assert task.describe() == "m1 (a276c1ff...) INCRMIGEATING"
    unknown = MigrationTask(task_id="abc", status="PAUSED")
    assert unknown.describe() == "(unnamed) (abc) 'PAUSED' (unknown status)"


# --- unknown fields and secrets in them ---------------------------------------------------


def test_extra_fields_are_kept_at_every_level(seed_body: dict[str, Any]) -> None:
    """A field the service adds later is kept in model_extra, top level and nested."""
    seed_body["az_code"] = "cn-north-4a"
    seed_body["source_instance"]["tls"] = {"enabled": True}
    seed_body["backup_files"] = {"files": [{"file_name": "a.rdb", "checksum": "md5:1"}]}
    task = MigrationTask.model_validate(seed_body)
    assert task.model_extra == {"az_code": "cn-north-4a"}
    assert task.source_instance.model_extra == {"tls": {"enabled": True}}
    assert task.backup_files.files[0].model_extra == {"checksum": "md5:1"}
    assert json.loads(task.model_dump_json())["source_instance"]["tls"] == {"enabled": True}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"redis_pwd": "s3cret!!"}, {"redis_pwd": MASKED}, id="pwd"),
        pytest.param({"AuthToken": "t0k3n"}, {"AuthToken": MASKED}, id="token-mixed-case"),
        pytest.param({"client_secret": {"v": 1}}, {"client_secret": MASKED}, id="whole-object"),
        pytest.param({"auth": {"Passwd": "x"}}, {"auth": {"Passwd": MASKED}}, id="nested-dict"),
        pytest.param({"l": [{"secret": 1}]}, {"l": [{"secret": MASKED}]}, id="inside-list"),
        pytest.param({"token": None, "ok": "x"}, {"token": None, "ok": "x"}, id="unset-and-plain"),
        pytest.param({"pin_secret": 0}, {"pin_secret": MASKED}, id="falsy-number"),
        pytest.param({"pwd_list": []}, {"pwd_list": MASKED}, id="empty-list"),
        pytest.param({"token": ""}, {"token": ""}, id="empty-string"),
    ],
)
def test_masked_masks_secret_looking_extra_fields(
    seed_body: dict[str, Any], extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    """An unknown field whose name looks secret is masked by masked(), at any depth."""
    seed_body["source_instance"].update(extra)
    task = MigrationTask.model_validate({**seed_body, **extra})
    masked = task.masked()
    assert masked.model_extra == expected
    assert masked.source_instance.model_extra == expected
    assert not masked.has_unmasked_secrets()


def test_module_docstring_example_runs() -> None:
    """The example in the module docstring is true."""
    assert doctest.testmod(blocks.models).failed == 0


def test_public_names_are_pinned() -> None:
    """The module's public surface is exactly this (a change here is an API change)."""
    assert set(blocks.models.__all__) == {
        "EXCHANGE_SUCCESS", "EXCHANGING", "FAILED_STATUSES", "IN_PROGRESS_STATUSES", "MASKED",
        "READY_FOR_CUTOVER_STATUSES", "ROLLBACK_SUCCESS", "SUCCEEDED_STATUSES", "BackupFile",
        "BackupFiles", "DcsModel", "IpExchange", "MigrationLog", "MigrationStatus",
        "MigrationTask", "MigrationTaskList", "MigrationTaskLogs", "MigrationTaskStats",
        "MigrationTaskSummary", "SourceInstance", "StatusMeaning", "TargetInstance",
        # The answers to the calls that create, configure, stop and delete tasks.
        "DeletedMigrationTasks", "MigrationTaskAccepted", "MigrationTaskActionResult",
        "MigrationTaskActionResults", "OnlineMigrationTaskCreated",
    }  # fmt: skip
    assert all(hasattr(blocks.models, name) for name in blocks.models.__all__)


# --- properties ---------------------------------------------------------------------------

MODELS: list[type[BaseModel]] = [MigrationTask, MigrationTaskSummary, MigrationTaskList,
                                  MigrationTaskStats, MigrationTaskLogs, BackupFiles]  # fmt: skip
FIELD_NAMES = sorted(
    {name for m in [*MODELS, BackupFile, SourceInstance, MigrationLog] for name in m.model_fields}
)
TRICKY_TEXT = ["", " ", "6379", "45.5%", "1e400", "nan", "true", "2019/10/22 14:44:30",
               "2023-05-15T09:11:25Z", "0001-01-01 00:00:00+01:00", "INCRMIGEATING"]  # fmt: skip
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(TRICKY_TEXT))  # fmt: skip
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=24,
)
json_objects = st.dictionaries(keys, json_values, max_size=12)
NESTED: dict[str, type[BaseModel]] = {
    "source_instance": SourceInstance, "target_instance": TargetInstance,
    "backup_files": BackupFiles, "files": BackupFile,
    "migration_tasks": MigrationTaskSummary, "migration_logs": MigrationLog,
}  # fmt: skip


def shaped(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects using the model's own field names (nested ones shaped too), plus random keys."""

    def value(name: str) -> st.SearchStrategy[Any]:
        if name not in NESTED:
            return json_values
        inner = shaped(NESTED[name])
        return json_values | inner | st.lists(inner, max_size=3)

    known = st.fixed_dictionaries({}, optional={name: value(name) for name in model.model_fields})
    extra = st.dictionaries(keys, json_values, max_size=3)
    return st.builds(lambda k, x: {**x, **k}, known, extra)


# Random JSON rarely nests a known field inside a known object; shaped objects do, often.
any_objects = json_objects | st.sampled_from(MODELS).flatmap(shaped)


@settings(max_examples=300, deadline=None)
@given(obj=any_objects)
def test_any_json_object_parses_or_raises_validation_error(obj: dict[str, Any]) -> None:
    """Any JSON object, even with known fields of wrong types, parses or is a ValidationError."""
    for model in MODELS:
        try:
            parsed = model.model_validate(obj)
        except ValidationError:
            continue
        # What parsed can be masked, printed, dumped and pickled without surprises too.
        masked = parsed.masked()  # type: ignore[attr-defined]
        repr(masked)
        # Compared as JSON: an extra NaN (json.loads accepts one) is never == to itself.
        restored = pickle.loads(pickle.dumps(masked))
        assert restored.model_dump_json() == masked.model_dump_json()


passwords = st.text(string.ascii_letters + string.digits, min_size=8, max_size=24).filter(
    # letters and digits both, so the text cannot be a word that appears in a repr anyway
    lambda p: any(c.isdigit() for c in p) and any(c.isalpha() for c in p)
)
secret_keys = st.builds(
    "{}{}{}".format,
    st.text(string.ascii_letters + "_", max_size=4),
    st.sampled_from(["password", "PWD", "Secret", "token", "passwd", "Credential"]),
    st.text(string.ascii_letters + "_", max_size=4),
)
noise_keys = st.text(max_size=8).filter(lambda k: k not in {*FIELD_NAMES, "vendor", "hooks"})
Place = Callable[[dict[str, Any], str, str], None]
PLACES: list[Place] = [
    lambda b, _k, s: b["source_instance"].__setitem__("password", s),
    lambda b, _k, s: b["target_instance"].__setitem__("password", s),
    lambda b, k, s: b.__setitem__(k, s),
    lambda b, k, s: b["target_instance"].__setitem__(k, s),
    lambda b, k, s: b.setdefault("vendor", {}).setdefault("auth", {}).__setitem__(k, s),
    lambda b, k, s: b.setdefault("hooks", []).append({"cfg": {k: s}}),
    lambda b, k, s: b.__setitem__("backup_files", {"files": [{"file_name": "a", k: s}]}),
]


@st.composite
def bodies_with_secrets(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    body = json.loads(EXAMPLE.read_text())
    noise = draw(st.dictionaries(noise_keys, json_values, max_size=4))
    secrets = draw(st.lists(passwords, min_size=1, max_size=4, unique=True))
    # A secret the input also carries in a non-secret place is not ours to hide.
    assume(not any(s in repr(noise) or s in json.dumps(noise) for s in secrets))
    body.update(noise)
    for secret in secrets:
        draw(st.sampled_from(PLACES))(body, draw(secret_keys), secret)
    return body, [*secrets, PASSWORD]


@settings(max_examples=200, deadline=None)
@given(case=bodies_with_secrets())
def test_masked_output_never_contains_a_password(case: tuple[dict[str, Any], list[str]]) -> None:
    """Wherever a secret sits, masked() output never shows it, nor does repr() of the original."""
    body, secrets = case
    task = MigrationTask.model_validate(body)
    masked = task.masked()
    shown = [masked.model_dump_json(), repr(masked), str(masked), repr(task)]
    assert not [s for s in secrets for text in shown if s in text]
    assert not masked.has_unmasked_secrets()


@settings(max_examples=300, deadline=None)
@given(raw=st.text() | st.none())
def test_status_parse_never_raises(raw: str | None) -> None:
    """MigrationStatus.parse maps any text at all to a member, without raising."""
    assert isinstance(MigrationStatus.parse(raw), MigrationStatus)
