"""DcsClient and AsyncDcsClient: requests, parsing, errors and masking, in both flavours."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks.client import USER_AGENT, validate_path_parameter
from blocks.errors import (
    DcsAuthError,
    DcsError,
    DcsServerError,
    DcsUnexpectedResponse,
    DcsValidationError,
    MigrationTaskNotFound,
)
from blocks.models import DcsModel, MigrationStatus
from blocks.retry import RetryPolicy
from tests.clients import PROJECT_ID, TOKEN, Twin
from tests.fakes import CannedReplies, ok

TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
BASE = f"/v2/{PROJECT_ID}"


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each client test runs on both DcsClient and AsyncDcsClient."""
    return str(request.param)


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "http", "path", "query", "answer"),
    [
        pytest.param(
            "show_migration_task",
            (TASK_ID,),
            {},
            "GET",
            f"/migration-task/{TASK_ID}",
            {},
            {"task_id": TASK_ID, "status": "MIGRATING"},
            id="show",
        ),
        pytest.param(
            "show_migration_task_stats",
            (TASK_ID,),
            {},
            "GET",
            f"/migration-task/{TASK_ID}/stats",
            {},
            {"full_migration_progress": "42.5"},
            id="stats",
        ),
        pytest.param(
            "list_migration_tasks",
            (),
            {"offset": 10, "limit": 5, "name": "mig 1"},
            "GET",
            "/migration-tasks",
            {"offset": "10", "limit": "5", "name": "mig 1"},
            {"count": 0, "migration_tasks": []},
            id="list",
        ),
        pytest.param(
            "list_migration_task_logs",
            (TASK_ID,),
            {"log_level": "error"},
            "GET",
            f"/migration-task/{TASK_ID}/logs",
            {"offset": "0", "limit": "10", "log_level": "error"},
            {"total_num": 0, "migration_logs": []},
            id="logs",
        ),
        pytest.param(
            "stop_migration_task",
            (TASK_ID,),
            {},
            "POST",
            f"/migration-task/{TASK_ID}/stop",
            {},
            {"task_id": TASK_ID, "status": "TERMINATING"},
            id="stop",
        ),
        pytest.param(
            "rollback_exchange_instance_ip",
            (TASK_ID,),
            {},
            "POST",
            f"/migration-task/{TASK_ID}/rollback-ip",
            {},
            None,
            id="rollback",
        ),
    ],
)
def test_each_operation_sends_the_documented_request(
    kind: str,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    http: str,
    path: str,
    query: dict[str, str],
    answer: Any,
) -> None:
    """Every operation uses the documented method, path and query, with token and User-Agent."""
    replies = CannedReplies(ok(answer, 200 if answer is not None else 204))
    Twin(kind, replies).call(method, *args, **kwargs)
    (request,) = replies.requests
    assert request.method == http
    assert request.url.path == BASE + path
    assert dict(request.url.params) == query
    assert request.headers["X-Auth-Token"] == TOKEN
    assert request.headers["User-Agent"] == USER_AGENT


def test_exchange_ip_sends_its_body(kind: str) -> None:
    """exchange_instance_ip POSTs the documented JSON body and accepts 204."""
    replies = CannedReplies(ok(status=204))
    result = Twin(kind, replies).call(
        "exchange_instance_ip",
        TASK_ID,
        exchanged_ip=["10.0.0.1", "10.0.0.2"],
        is_exchange_domain=True,
    )
    assert result is None
    (request,) = replies.requests
    assert request.url.path == f"{BASE}/migration-task/{TASK_ID}/exchange-ip"
    assert json.loads(request.content) == {
        "exchanged_ip": ["10.0.0.1", "10.0.0.2"],
        "is_exchange_domain": True,
    }
    assert request.headers["Content-Type"] == "application/json"


def test_show_parses_the_seed_example_and_masks_passwords(
    kind: str, seed_body: dict[str, Any]
) -> None:
    """The seed example comes back as a typed task whose passwords are masked by default."""
    task = Twin(kind, CannedReplies(ok(seed_body))).call("show_migration_task", TASK_ID)
    assert task.task_name == "migration1"
    assert task.status is MigrationStatus.TERMINATING
    assert task.source_instance.port == 6379
    assert task.source_instance.password.get_secret_value() != "DCStest123"
    assert "DCStest123" not in task.model_dump_json() + repr(task)


def test_keep_passwords_is_an_explicit_opt_in(kind: str, seed_body: dict[str, Any]) -> None:
    """With keep_passwords=True the caller gets the password the service sent."""
    task = Twin(kind, CannedReplies(ok(seed_body)), keep_passwords=True).call(
        "show_migration_task", TASK_ID
    )
    assert task.source_instance.password.get_secret_value() == "DCStest123"


def test_iter_migration_tasks_walks_every_page(kind: str) -> None:
    """Iterating reads pages by offset until the count is reached, one request per page."""
    tasks = [{"task_id": f"t{i}", "task_name": f"n{i}", "status": "MIGRATING"} for i in range(5)]
    pages = [
        ok({"count": 5, "migration_tasks": tasks[0:2]}),
        ok({"count": 5, "migration_tasks": tasks[2:4]}),
        ok({"count": 5, "migration_tasks": tasks[4:5]}),
    ]
    replies = CannedReplies(*pages)
    seen = Twin(kind, replies).call("iter_migration_tasks", page_size=2)
    assert [task.task_id for task in seen] == [f"t{i}" for i in range(5)]
    assert [r.url.params["offset"] for r in replies.requests] == ["0", "2", "4"]


def test_iter_stops_on_a_full_last_page_when_count_is_reached(kind: str) -> None:
    """A last page that is full does not cost an extra empty request when count says done."""
    tasks = [{"task_id": f"t{i}"} for i in range(4)]
    replies = CannedReplies(
        ok({"count": 4, "migration_tasks": tasks[:2]}),
        ok({"count": 4, "migration_tasks": tasks[2:]}),
    )
    assert len(Twin(kind, replies).call("iter_migration_tasks", page_size=2)) == 4
    assert len(replies.requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "expected", "fragment"),
    [
        pytest.param(
            404,
            {"error_code": "DCS.4133", "error_msg": "task not found"},
            MigrationTaskNotFound,
            "not found in project",
            id="not-found",
        ),
        pytest.param(
            401,
            {"error_code": "DCS.1001", "error_msg": "token expired"},
            DcsAuthError,
            "DCS.1001: token expired",
            id="auth",
        ),
        pytest.param(
            502,
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            DcsServerError,
            "502 Bad Gateway",
            id="gateway-html",
        ),
    ],
)
def test_errors_name_operation_task_and_request(
    kind: str, status: int, body: Any, expected: type[Exception], fragment: str
) -> None:
    """Error answers become the right DcsApiError, naming the operation, task and request."""
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = httpx.Response(status, content=content, headers={"X-Request-Id": "req-9"})
    twin = Twin(kind, CannedReplies(response))
    with pytest.raises(expected) as caught:
        twin.call("show_migration_task", TASK_ID)
    text = str(caught.value)
    assert fragment in text
    assert TASK_ID in text
    assert "req-9" in text
    assert caught.value.status_code == status
    assert caught.value.request_id == "req-9"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b"<html>maintenance</html>", "not JSON: maintenance", id="html"),
        pytest.param(b'{"task_id": ["x"], "created_at": "yesterday"}', "task_id", id="bad-id"),
    ],
)
def test_a_2xx_body_that_is_not_the_documented_json_is_a_clear_error(
    kind: str, content: bytes, fragment: str
) -> None:
    """A 200 with HTML or an unparseable field is DcsUnexpectedResponse, not a crash."""
    twin = Twin(kind, CannedReplies(httpx.Response(200, content=content)))
    with pytest.raises(DcsUnexpectedResponse, match=fragment) as caught:
        twin.call("show_migration_task", TASK_ID)
    assert "show_migration_task" in str(caught.value)


def test_validation_error_text_never_echoes_input(kind: str) -> None:
    """A bad password field type is reported by location only, never by its value."""
    body = {"task_id": "x", "source_instance": {"password": ["hunter2-secret"], "port": "x"}}
    twin = Twin(kind, CannedReplies(ok(body)), keep_passwords=True)
    with pytest.raises(DcsUnexpectedResponse) as caught:
        twin.call("show_migration_task", TASK_ID)
    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "bad_id",
    [
        pytest.param("", id="empty"),
        pytest.param("a/b", id="slash"),
        pytest.param("..", id="dotdot"),
        pytest.param("a..b", id="dotdot-inside"),
        pytest.param("a b", id="space"),
        pytest.param("a\nb", id="newline"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("a%2fb", id="percent"),
        pytest.param("a?b=c", id="query"),
        pytest.param("é", id="non-ascii"),
        pytest.param("x" * 129, id="too-long"),
    ],
)
def test_bad_task_ids_are_refused_before_any_request(kind: str, bad_id: str) -> None:
    """An id that could change the URL is refused with its value named, and nothing is sent."""
    replies = CannedReplies(ok({}))
    with pytest.raises(DcsValidationError, match="task_id") as caught:
        Twin(kind, replies).call("show_migration_task", bad_id)
    assert repr(bad_id) in str(caught.value)
    assert replies.requests == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"offset": -1}, "offset", id="negative-offset"),
        pytest.param({"limit": 0}, "limit", id="zero-limit"),
        pytest.param({"limit": 5000}, "limit", id="huge-limit"),
    ],
)
def test_bad_paging_is_refused(kind: str, kwargs: dict[str, int], fragment: str) -> None:
    """Offsets and limits outside what DCS serves are refused with the value named."""
    with pytest.raises(DcsValidationError, match=fragment):
        Twin(kind, CannedReplies(ok({}))).call("list_migration_tasks", **kwargs)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=140))
def test_path_validation_never_lets_a_value_escape_its_segment(value: str) -> None:
    """Any string is either refused or encoded to one segment that decodes back to itself."""
    try:
        encoded = validate_path_parameter("task_id", value)
    except DcsValidationError:
        return
    url = httpx.URL(f"https://dcs.example.test/v2/p/migration-task/{encoded}")
    segments = url.path.split("/")
    assert segments[:4] == ["", "v2", "p", "migration-task"]
    assert len(segments) == 5
    assert httpx.URL(url).path.rsplit("/", 1)[1] == value


def test_client_layer_does_not_import_prefect() -> None:
    """`import blocks.client` stays free of Prefect, so a status check starts fast."""
    code = "import sys, blocks.client, blocks; blocks.DcsClient; print('prefect' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
bodies = st.one_of(
    st.dictionaries(
        st.sampled_from(["task_id", "status", "source_instance", "port", "created_at", "count"])
        | st.text(max_size=8),
        json_values,
    ).map(lambda obj: json.dumps(obj).encode()),
    st.binary(max_size=64),
)


@settings(max_examples=200, deadline=None)
@given(status=st.sampled_from([200, 400, 401, 404, 429, 500, 502]), content=bodies)
def test_any_answer_is_a_model_or_a_dcs_error(status: int, content: bytes) -> None:
    """Whatever status and body come back, the caller gets a model or a DcsError, nothing else."""
    response = httpx.Response(status, content=content)
    twin = Twin("sync", CannedReplies(response), retry=RetryPolicy(max_attempts=1))
    for method in ("show_migration_task", "show_migration_task_stats", "list_migration_task_logs"):
        try:
            result = twin.call(method, TASK_ID)
        except DcsError:
            continue
        assert status == 200
        assert isinstance(result, DcsModel)
