"""Every retry is logged: DEBUG from the client, INFO in the run log of a flow, no secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import AkSkAuth
from blocks.credentials import DcsCredentials
from flows.clock import FakeTime, use_time
from flows.wait import wait_for_migration_task
from tests.clients import PROJECT_ID, TOKEN, Twin
from tests.conftest import StubDcs
from tests.fakes import CannedReplies, FakeDcs, ok
from tests.prefect_records import read_records

if TYPE_CHECKING:
    from blocks.retry import RetryNotice

TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
TASK = {"task_id": TASK_ID, "status": "SUCCESS"}
SHOW_PATH = f"/v2/{PROJECT_ID}/migration-task/{TASK_ID}"
ACCESS_KEY = "AKCANARY0RETRYLOG7Q2"
SECRET_KEY = "sk-canary-retry-log-5f1e9b"
SECURITY_TOKEN = "st-canary-retry-log-c04d"
FLOW_TOKEN = "flow-token-canary-retry-3e7a"


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each client test runs on both DcsClient and AsyncDcsClient."""
    return str(request.param)


def failure(status: int, code: str | None = None, **headers: str) -> httpx.Response:
    body = {"error_code": code, "error_msg": f"try later {TOKEN}"} if code else {}
    return httpx.Response(status, json=body, headers=headers)


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("Retrying ")]


@pytest.mark.parametrize(
    ("first", "cause"),
    [
        pytest.param(failure(503, "DCS.5000"), "HTTP 503 DCS.5000", id="5xx-with-code"),
        pytest.param(failure(502), "HTTP 502", id="5xx-without-code"),
        pytest.param(failure(429, **{"Retry-After": "2"}), "HTTP 429", id="429"),
        pytest.param(failure(400, "DCS.4111"), "HTTP 400 DCS.4111", id="busy-code"),
        pytest.param(httpx.ConnectError("refused"), "ConnectError", id="connect-error"),
        pytest.param(httpx.ReadTimeout("slow"), "ReadTimeout", id="read-timeout"),
    ],
)
def test_each_retry_is_logged_at_debug_with_what_when_and_why(
    kind: str, first: httpx.Response | Exception, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two retries, two DEBUG lines: operation, method, path, attempt n of max, wait, cause."""
    caplog.set_level(logging.DEBUG, logger="blocks")
    twin = Twin(kind, CannedReplies(first, first, ok(TASK)))
    twin.call("show_migration_task", TASK_ID)
    lines = retry_lines(caplog)
    assert len(lines) == 2
    for number, (record, wait) in enumerate(zip(lines, twin.clock.sleeps, strict=True), 1):
        assert record.levelno == logging.DEBUG
        assert record.name.startswith("blocks.")
        assert record.getMessage() == (
            f"Retrying show_migration_task (GET {SHOW_PATH}) in {wait:.2f} s: "
            f"attempt {number} of 6 failed with {cause}"
        )


def test_the_observer_sees_the_wait_the_client_sleeps(kind: str) -> None:
    """An `on_retry` observer gets each retry, with exactly the wait handed to `sleep`."""
    notices: list[RetryNotice] = []
    twin = Twin(kind, CannedReplies(failure(500), failure(500), ok(TASK)), on_retry=notices.append)
    twin.call("show_migration_task", TASK_ID)
    assert [n.delay for n in notices] == twin.clock.sleeps
    assert [(n.operation, n.attempt, n.max_attempts) for n in notices] == [
        ("show_migration_task", 1, 6),
        ("show_migration_task", 2, 6),
    ]


def test_the_query_string_stays_out_of_the_line(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A list call logs its path only, not the query it was sent with."""
    caplog.set_level(logging.DEBUG, logger="blocks")
    page = {"count": 0, "migration_tasks": []}
    Twin(kind, CannedReplies(failure(503), ok(page))).call("list_migration_tasks", name="nightly")
    (line,) = retry_lines(caplog)
    assert f"(GET /v2/{PROJECT_ID}/migration-tasks)" in line.getMessage()
    assert "nightly" not in line.getMessage()


def test_a_first_time_success_logs_nothing(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """A call that succeeds at once leaves no client record; the next one, retried, leaves one."""
    caplog.set_level(logging.DEBUG)
    twin = Twin(kind, CannedReplies(ok(TASK), failure(503), ok(TASK)))
    twin.call("show_migration_task", TASK_ID)
    assert [r for r in caplog.records if r.name.startswith("blocks")] == []
    twin.call("show_migration_task", TASK_ID)  # the same (recorded) server, now failing once
    assert [r.name for r in caplog.records if r.name.startswith("blocks")] == ["blocks.retry"]


def test_give_up_is_not_announced_as_a_retry(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """Only waits that happen are logged: a call that fails for good logs max_attempts-1 lines."""
    caplog.set_level(logging.DEBUG, logger="blocks")
    twin = Twin(kind, CannedReplies(failure(503)))
    with pytest.raises(Exception, match="503"):
        twin.call("show_migration_task", TASK_ID)
    assert len(retry_lines(caplog)) == len(twin.clock.sleeps) == 5


@pytest.mark.parametrize(
    "signed", [pytest.param(False, id="token"), pytest.param(True, id="ak-sk")]
)
def test_no_secret_reaches_a_retry_record(
    kind: str, signed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither credentials, headers nor the service's or the exception's text are logged."""
    caplog.set_level(logging.DEBUG, logger="blocks")
    auth = (
        AkSkAuth(
            ACCESS_KEY,
            SecretStr(SECRET_KEY),
            project_id=PROJECT_ID,
            security_token=SecretStr(SECURITY_TOKEN),
        )
        if signed
        else None
    )
    answers = (
        failure(503, "DCS.5000"),
        httpx.ConnectError(f"refused, X-Auth-Token: {TOKEN} {SECRET_KEY}"),
        ok(TASK),
    )
    Twin(kind, CannedReplies(*answers), auth=auth).call("show_migration_task", TASK_ID)
    lines = retry_lines(caplog)
    assert len(lines) == 2
    dumped = " ".join(f"{r.getMessage()} {r.args!r} {vars(r)!r}" for r in caplog.records)
    for secret in (TOKEN, ACCESS_KEY, SECRET_KEY, SECURITY_TOKEN, "X-Auth-Token", "Authorization"):
        assert secret not in dumped


def test_the_block_outside_a_run_logs_like_the_client(caplog: pytest.LogCaptureFixture) -> None:
    """A client from the block, used outside any flow run, logs its retries at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="blocks")
    block = DcsCredentials(endpoint="https://dcs.example.test", project_id="p1", token=FLOW_TOKEN)
    transport = httpx.MockTransport(CannedReplies(failure(503), ok(TASK)))
    with block.get_client(transport, sleep=lambda _: None) as client:
        client.show_migration_task(TASK_ID)
    (line,) = retry_lines(caplog)
    assert line.levelno == logging.DEBUG
    assert "attempt 1 of 6 failed with HTTP 503" in line.getMessage()


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    """Waits (polls and the client's retries) pass instantly."""
    fake = FakeTime()
    with use_time(fake):
        yield fake


@pytest.mark.usefixtures("prefect_harness")
async def test_a_flow_shows_each_retry_at_info_in_its_run_log(
    stub_dcs: StubDcs, fake_time: FakeTime
) -> None:
    """A retry inside a flow is an INFO line of that run's log, with its wait, and no token."""
    dcs = FakeDcs({TASK_ID: [500, "SUCCESS"]})
    stub_dcs.handler = dcs.stub_handler
    block = DcsCredentials(endpoint=stub_dcs.url, project_id="project-1", token=FLOW_TOKEN)
    await block.asave("retry-logs", overwrite=True)  # flows take a block's name
    state = await wait_for_migration_task(TASK_ID, "retry-logs", return_state=True)
    assert (await state.result()).succeeded
    assert dcs.requests["show"] == 2
    records = await read_records(state.state_details.flow_run_id, task_runs=1)
    retries = [log for log in records.logs if log.message.startswith("Retrying ")]
    assert len(retries) == 1
    (wait,) = fake_time.sleeps  # the one retry; the watch ended on its first look
    assert retries[0].level == logging.INFO
    assert retries[0].message == (
        f"Retrying show_migration_task (GET /v2/project-1/migration-task/{TASK_ID}) "
        f"in {wait:.2f} s: attempt 1 of 6 failed with HTTP 500 DCS.5000"
    )
    assert FLOW_TOKEN not in records.text()
