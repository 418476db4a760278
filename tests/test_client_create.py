"""The client's calls that create, configure, stop, delete and restart tasks: every value is
checked before a request leaves, with an error naming the field; creates are never sent
twice by accident; Redis passwords stay out of reprs, dumps, logs and errors; answers are
read leniently. Each test runs on DcsClient and AsyncDcsClient."""

from __future__ import annotations

import doctest
import json
import logging
from typing import Any

import httpx
import pytest

import blocks.requests
from blocks.client import _Call
from blocks.errors import DcsApiError, DcsServerError, DcsTransportError, DcsValidationError
from blocks.models import MigrationStatus
from blocks.requests import ConfigureOnlineMigration, RedisEndpoint, parse_request
from tests.clients import PROJECT_ID, Twin

TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
TARGET_ID = "86157b69-8a62-47f9-8c55-fa6ddc8927ee"
SOURCE_PASSWORD = "src-canary-9f3b2e71"
TARGET_PASSWORD = "dst-canary-4c8d1a56"
NETWORK = {"vpc_id": "vpc-1", "subnet_id": "subnet-1", "security_group_id": "sg-1"}
CONFIGURATION: dict[str, Any] = {
    "migration_method": "incremental",
    "resume_mode": "auto",
    "bandwidth_limit_mb": 100,
    "source_instance": {"addrs": "192.168.1.2:6379", "password": SOURCE_PASSWORD},
    "target_instance": {"id": TARGET_ID, "password": TARGET_PASSWORD},
}
IMPORT: dict[str, Any] = {
    "bucket_name": "backups",
    "files": ["appendonly.aof"],
    "target_instance": {"id": TARGET_ID, "password": TARGET_PASSWORD},
}


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each test runs on both DcsClient and AsyncDcsClient."""
    return str(request.param)


class Replies:
    """A MockTransport handler that plays `replies` in order and keeps every request."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        # A fresh copy: a response read by one client cannot be handed to another.
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)


def ok(body: dict[str, Any] | None = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


# --- bad input: refused before anything is sent ---------------------------------------


@pytest.mark.parametrize(
    ("operation", "args", "kwargs", "fragments"),
    [
        pytest.param(
            "create_online_migration_task",
            ("  ",),
            NETWORK,
            ["name: must be non-empty text"],
            id="blank-name",
        ),
        pytest.param(
            "create_online_migration_task",
            ("m",),
            {**NETWORK, "vpc_id": "vpc 1"},
            ["vpc_id: must be an id", "'vpc 1'"],
            id="vpc-id-with-space",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "migration_method": "fast"},
            ["migration_method: must be one of 'full'", "'incremental'"],
            id="unknown-method",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "resume_mode": "sometimes"},
            ["resume_mode: must be 'auto'", "or 'manual'"],
            id="unknown-resume-mode",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "bandwidth_limit_mb": 0},
            ["bandwidth_limit_mb: must be a positive integer of MB/s", "got 0"],
            id="zero-bandwidth",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "bandwidth_limit_mb": "100"},
            ["bandwidth_limit_mb: must be a positive integer", "got '100'"],
            id="bandwidth-as-text",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "bandwidth_limit_mb": 10241},
            ["from 1 to 10240"],
            id="bandwidth-over-the-maximum",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "source_instance": {"id": "a", "addrs": "h:1"}},
            ["source_instance: give exactly one of id", "not both"],
            id="instance-by-id-and-address",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "target_instance": {"password": TARGET_PASSWORD}},
            ["target_instance: give exactly one of id", "not neither"],
            id="instance-by-neither",
        ),
        pytest.param(
            "set_online_migration_task",
            (TASK_ID,),
            {**CONFIGURATION, "source_instance": {"addrs": "192.168.1.2"}},
            ["source_instance.addrs: must be host:port"],
            id="address-without-port",
        ),
        pytest.param(
            "set_online_migration_task",
            ("../tasks",),
            CONFIGURATION,
            ["task_id '../tasks' is not a valid DCS identifier"],
            id="task-id-with-slash",
        ),
        pytest.param(
            "create_migration_task",
            ("import",),
            {**IMPORT, "backup_id": "b1"},
            ["bucket_name and files", "or backup_id, not both"],
            id="import-from-two-sources",
        ),
        pytest.param(
            "create_migration_task",
            ("import",),
            {**IMPORT, "files": []},
            ["needs both bucket_name and at least one file"],
            id="import-without-files",
        ),
        pytest.param(
            "create_migration_task",
            ("import",),
            {**IMPORT, "target_instance": {"addrs": "10.0.0.1:6379"}},
            ["target_instance must be a DCS instance given by id"],
            id="import-into-an-address",
        ),
        pytest.param(
            "delete_migration_task", ([],), {}, ["task_id_list: must name at least one"], id="none"
        ),
        pytest.param(
            "batch_stop_migration_tasks",
            (TASK_ID,),
            {},
            ["migration_tasks: must be a list of task ids, got str"],
            id="a-lone-id",
        ),
        pytest.param(
            "batch_restart_online_migration_tasks",
            ([f"t{n}" for n in range(51)],),
            {},
            ["names 51 tasks; send at most 50"],
            id="restart-51",
        ),
        pytest.param(
            "batch_stop_migration_tasks",
            ([TASK_ID, TASK_ID],),
            {},
            [f"names ['{TASK_ID}'] more than once"],
            id="repeated-id",
        ),
    ],
)
def test_bad_input_is_refused_before_sending_and_names_the_field(
    kind: str, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], fragments: list[str]
) -> None:
    """A bad value raises DcsValidationError naming the field and the fix; nothing is sent."""
    replies = Replies(ok({}))
    with pytest.raises(DcsValidationError) as caught:
        Twin(kind, replies).call(operation, *args, **kwargs)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert replies.requests == []


def test_the_request_module_example_runs() -> None:
    """The example in blocks.requests' docstring is true."""
    result = doctest.testmod(blocks.requests)
    assert (result.failed, result.attempted > 0) == (0, True)


def test_a_bad_password_type_is_refused_without_echoing_it() -> None:
    """A password that is no string is refused by type name; its value is never quoted."""
    with pytest.raises(DcsValidationError) as caught:
        parse_request(RedisEndpoint, "set_online_migration_task", addrs="h:1", password=987654321)
    assert "password: must be a string (or SecretStr), got int" in str(caught.value)
    assert "987654321" not in str(caught.value)


# --- retries: a create is never sent twice by accident --------------------------------

CREATE_CALLS = [
    pytest.param("create_online_migration_task", ("m",), NETWORK, id="create-online"),
    pytest.param("set_online_migration_task", (TASK_ID,), CONFIGURATION, id="configure"),
    pytest.param("create_migration_task", ("import",), IMPORT, id="create-import"),
    pytest.param("batch_restart_online_migration_tasks", ([TASK_ID],), {}, id="batch-restart"),
]


@pytest.mark.parametrize(("operation", "args", "kwargs"), CREATE_CALLS)
@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.Response(500, json={"error_code": "DCS.5000"}), id="500"),
        pytest.param(httpx.ReadTimeout("no answer"), id="read-timeout"),
    ],
)
def test_a_create_that_may_have_acted_is_not_sent_again(
    kind: str,
    operation: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    failure: httpx.Response | Exception,
) -> None:
    """After a 5xx or a timeout the create may have happened: one request, then the error."""
    replies = Replies(failure, ok({"instance_id": TASK_ID}))
    with pytest.raises((DcsServerError, DcsTransportError)):
        Twin(kind, replies).call(operation, *args, **kwargs)
    assert len(replies.requests) == 1


@pytest.mark.parametrize(("operation", "args", "kwargs"), CREATE_CALLS)
@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param(httpx.Response(429, headers={"Retry-After": "1"}), id="429"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
    ],
)
def test_a_create_that_certainly_did_not_act_is_retried(
    kind: str,
    operation: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    refusal: httpx.Response | Exception,
) -> None:
    """A 429 or a refused connection did nothing: the create is sent again, and succeeds."""
    replies = Replies(refusal, ok({"instance_id": TASK_ID, "migration_tasks": []}))
    Twin(kind, replies).call(operation, *args, **kwargs)
    assert len(replies.requests) == 2


@pytest.mark.parametrize(
    ("operation", "args", "reply"),
    [
        pytest.param("stop_migration_task_sync", (TASK_ID,), ok(status=204), id="sync-stop"),
        pytest.param(
            "batch_stop_migration_tasks",
            ([TASK_ID],),
            ok({"migration_tasks": []}),
            id="batch-stop",
        ),
        pytest.param(
            "delete_migration_task", ([TASK_ID],), ok({"task_id_list": [TASK_ID]}), id="delete"
        ),
    ],
)
def test_stops_and_deletes_are_retried_after_a_5xx(
    kind: str, operation: str, args: tuple[Any, ...], reply: httpx.Response
) -> None:
    """Stopping or deleting twice leaves the same state: a 503 is retried."""
    replies = Replies(httpx.Response(503, json={"error_code": "DCS.5000"}), reply)
    Twin(kind, replies).call(operation, *args)
    assert len(replies.requests) == 2


# --- secrets --------------------------------------------------------------------------


def test_passwords_are_masked_everywhere_but_on_the_wire(kind: str) -> None:
    """repr, str and model_dump of the request and repr of the call mask the passwords;
    the body sent carries them, as the API needs."""
    request = parse_request(ConfigureOnlineMigration, "set_online_migration_task", **CONFIGURATION)
    shown = [repr(request), str(request), str(request.model_dump()), request.model_dump_json()]
    call = _Call("set", "POST", "/p", None, idempotent=False, body=request.wire())
    shown.append(repr(call))
    for text in shown:
        assert SOURCE_PASSWORD not in text
        assert TARGET_PASSWORD not in text
    replies = Replies(ok({"id": TASK_ID, "status": "RUNNING"}))
    Twin(kind, replies).call("set_online_migration_task", TASK_ID, **CONFIGURATION)
    sent = json.loads(replies.requests[0].content)
    assert sent["source_instance"]["password"] == SOURCE_PASSWORD
    assert sent["target_instance"]["password"] == TARGET_PASSWORD


def test_retry_logs_carry_no_body_and_no_password(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The retry line of a configuration names the call, never its body or passwords."""
    caplog.set_level(logging.DEBUG)
    replies = Replies(httpx.Response(429), ok({"id": TASK_ID, "status": "RUNNING"}))
    Twin(kind, replies).call("set_online_migration_task", TASK_ID, **CONFIGURATION)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert lines == [
        f"Retrying set_online_migration_task (POST /v2/{PROJECT_ID}/migration/{TASK_ID}/task) "
        f"in {lines[0].split(' in ')[1].split(' s:')[0]} s: attempt 1 of 6 failed with HTTP 429"
    ]
    everything = " ".join(r.getMessage() for r in caplog.records)
    assert SOURCE_PASSWORD not in everything
    assert TARGET_PASSWORD not in everything


def test_a_refusal_quoting_a_password_is_scrubbed(kind: str) -> None:
    """Should DCS quote a password in its refusal, the error holds it masked."""
    refusal = {"error_code": "DCS.4800", "error_msg": f"cannot AUTH with {TARGET_PASSWORD}"}
    replies = Replies(httpx.Response(400, json=refusal))
    with pytest.raises(DcsApiError) as caught:
        Twin(kind, replies).call("set_online_migration_task", TASK_ID, **CONFIGURATION)
    error = caught.value
    assert TARGET_PASSWORD not in str(error)
    assert error.error_msg == "cannot AUTH with **********"
    assert (error.status_code, error.error_code, error.task_id) == (400, "DCS.4800", TASK_ID)


# --- answers --------------------------------------------------------------------------


def test_answers_are_read_leniently(kind: str) -> None:
    """Unknown fields are kept, the status is parsed (raw text kept), results say which failed."""
    created = Twin(kind, Replies(ok({"instance_id": TASK_ID, "job_id": "j1"}))).call(
        "create_online_migration_task", "m", **NETWORK
    )
    assert (created.task_id, created.model_extra) == (TASK_ID, {"job_id": "j1"})
    accepted = Twin(
        kind, Replies(ok({"id": TASK_ID, "name": "m", "status": "INCRMIGEATING"}))
    ).call("set_online_migration_task", TASK_ID, **CONFIGURATION)
    assert (accepted.task_id, accepted.status, accepted.raw_status) == (
        TASK_ID, MigrationStatus.INCRMIGRATING, "INCRMIGEATING",
    )  # fmt: skip
    results = {
        "migration_tasks": [
            {"result": "success", "task_id": TASK_ID},
            {"result": "failed", "task_id": "t2", "error_code": "DCS.4133", "error_msg": "gone"},
        ]
    }
    stopped = Twin(kind, Replies(ok(results))).call("batch_stop_migration_tasks", [TASK_ID, "t2"])
    assert [(r.task_id, r.error_code) for r in stopped.failed] == [("t2", "DCS.4133")]
    deleted = Twin(kind, Replies(ok({"task_id_list": None}))).call("delete_migration_task", ["t"])
    assert deleted.task_id_list == []
    assert Twin(kind, Replies(ok(status=204))).call("stop_migration_task_sync", TASK_ID) is None


def test_an_unknown_task_in_a_list_call_is_named_by_the_service(kind: str) -> None:
    """DCS.4133 on a call naming several tasks: the error quotes DCS's words, not "task None"."""
    refusal = {"error_code": "DCS.4133", "error_msg": "migration task 't9' does not exist"}
    with pytest.raises(DcsApiError) as caught:
        Twin(kind, Replies(httpx.Response(400, json=refusal))).call("delete_migration_task", ["t9"])
    message = str(caught.value)
    assert "task None" not in message
    assert message.startswith("a migration task the request names was not found in project")
    assert message.endswith("during delete_migration_task: migration task 't9' does not exist")
