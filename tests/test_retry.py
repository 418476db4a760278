"""Retries: what is retried, how long it waits, and when it gives up, on both clients."""

from __future__ import annotations

import random

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import IamPasswordAuth
from blocks.errors import (
    DcsAuthError,
    DcsBusyError,
    DcsRateLimitedError,
    DcsServerError,
    DcsTransportError,
    MigrationTaskNotFound,
)
from blocks.retry import RetryPolicy
from tests.clients import Twin
from tests.fakes import CannedReplies, ok

TASK_ID = "a276c1ffa0a54c2597fc824b917db317"
TASK = {"task_id": TASK_ID, "status": "SUCCESS"}


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each retry test runs on both DcsClient and AsyncDcsClient."""
    return str(request.param)


def error(status: int, code: str | None = None, **headers: str) -> httpx.Response:
    body = {"error_code": code, "error_msg": "try later"} if code else {"error_msg": "boom"}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(error(500, "DCS.5000"), id="500"),
        pytest.param(error(503), id="503"),
        pytest.param(httpx.Response(502, content=b"<html>Bad Gateway</html>"), id="502-html"),
        pytest.param(error(400, "DCS.4111"), id="busy-code"),
        pytest.param(error(429), id="429"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("dropped"), id="dropped"),
    ],
)
def test_transient_failures_of_a_get_are_retried(
    kind: str, first: httpx.Response | Exception
) -> None:
    """A GET that meets a transient failure twice succeeds on the third attempt."""
    replies = CannedReplies(first, first, ok(TASK))
    twin = Twin(kind, replies)
    task = twin.call("show_migration_task", TASK_ID)
    assert task.task_id == TASK_ID
    assert len(replies.requests) == 3
    assert len(twin.clock.sleeps) == 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(error(400, "DCS.4000"), Exception, id="400"),
        pytest.param(error(401, "DCS.1001"), DcsAuthError, id="401"),
        pytest.param(error(403, "DCS.2003"), DcsAuthError, id="403"),
        pytest.param(error(404, "DCS.4133"), MigrationTaskNotFound, id="404"),
    ],
)
def test_client_errors_are_never_retried(
    kind: str, answer: httpx.Response, expected: type[Exception]
) -> None:
    """400/401/403/404 fail at once: one request, no sleep."""
    replies = CannedReplies(answer, ok(TASK))
    twin = Twin(kind, replies)
    with pytest.raises(expected):
        twin.call("show_migration_task", TASK_ID)
    assert len(replies.requests) == 1
    assert twin.clock.sleeps == []


def test_retry_after_is_honoured(kind: str) -> None:
    """A 429 with Retry-After waits at least that long before the next attempt."""
    replies = CannedReplies(error(429, **{"Retry-After": "7"}), ok(TASK))
    twin = Twin(kind, replies)
    twin.call("show_migration_task", TASK_ID)
    assert twin.clock.sleeps[0] >= 7


def test_backoff_grows_exponentially_and_is_capped(kind: str) -> None:
    """Waits stay under initial*2**n and under max_delay, and attempts stop at max_attempts."""
    policy = RetryPolicy(
        max_attempts=8,
        initial_delay=1,
        max_delay=5,
        max_elapsed_seconds=1e9,
        rng=random.Random(1),
    )
    replies = CannedReplies(error(503))
    twin = Twin(kind, replies, retry=policy)
    with pytest.raises(DcsServerError):
        twin.call("show_migration_task", TASK_ID)
    assert len(replies.requests) == 8
    ceilings = [min(5, 2**n) for n in range(7)]
    assert all(0 <= wait <= cap for wait, cap in zip(twin.clock.sleeps, ceilings, strict=True))
    assert max(twin.clock.sleeps) > 1  # the ceiling did grow past the first


def test_total_time_is_bounded_on_the_monotonic_clock(kind: str) -> None:
    """No wait starts that would end past max_elapsed_seconds from the call's start."""
    policy = RetryPolicy(
        max_attempts=100,
        initial_delay=4,
        max_delay=4,
        max_elapsed_seconds=10,
        rng=random.Random(3),
    )
    replies = CannedReplies(error(503))
    twin = Twin(kind, replies, retry=policy)
    with pytest.raises(DcsServerError):
        twin.call("show_migration_task", TASK_ID)
    assert sum(twin.clock.sleeps) <= 10
    assert len(replies.requests) < 100


def test_a_retry_after_beyond_the_budget_gives_up_with_it(kind: str) -> None:
    """A Retry-After longer than the remaining budget raises at once, carrying retry_after."""
    replies = CannedReplies(error(429, **{"Retry-After": "3600"}))
    twin = Twin(kind, replies)
    with pytest.raises(DcsRateLimitedError) as caught:
        twin.call("show_migration_task", TASK_ID)
    assert caught.value.retry_after == 3600
    assert len(replies.requests) == 1


def test_exhausted_transport_errors_become_dcs_transport_error(kind: str) -> None:
    """A connection that never answers ends in DcsTransportError naming the attempts."""
    replies = CannedReplies(httpx.ConnectError("connection refused"))
    twin = Twin(kind, replies, retry=RetryPolicy(max_attempts=3, rng=random.Random(0)))
    with pytest.raises(DcsTransportError, match="after 3 attempt") as caught:
        twin.call("show_migration_task", TASK_ID)
    assert TASK_ID in str(caught.value)
    assert caught.value.transient


@pytest.mark.parametrize(
    ("failure", "sent"),
    [
        pytest.param(error(500, "DCS.5000"), 1, id="500-may-have-acted"),
        pytest.param(error(504), 1, id="504-may-have-acted"),
        pytest.param(httpx.ReadTimeout("slow"), 1, id="read-timeout-may-have-acted"),
        pytest.param(httpx.RemoteProtocolError("dropped"), 1, id="dropped-may-have-acted"),
        pytest.param(httpx.ConnectError("refused"), 2, id="connect-error-never-sent"),
        pytest.param(error(429), 2, id="429-refused-before-acting"),
        pytest.param(error(400, "DCS.4975"), 2, id="busy-refused-before-acting"),
    ],
)
@pytest.mark.parametrize("method", ["exchange_instance_ip", "rollback_exchange_instance_ip"])
def test_non_idempotent_posts_are_retried_only_when_they_cannot_have_acted(
    kind: str, method: str, failure: httpx.Response | Exception, sent: int
) -> None:
    """An IP exchange is resent only if the first request certainly did not act."""
    replies = CannedReplies(failure, ok(status=204))
    twin = Twin(kind, replies)
    if sent == 1:
        with pytest.raises((DcsServerError, DcsTransportError)):
            twin.call(method, TASK_ID)
    else:
        twin.call(method, TASK_ID)
    assert len(replies.requests) == sent


def test_stop_is_retried_after_an_ambiguous_failure(kind: str) -> None:
    """Stopping twice is harmless, so stop_migration_task retries a 500."""
    replies = CannedReplies(error(500), ok({"task_id": TASK_ID, "status": "TERMINATING"}))
    assert Twin(kind, replies).call("stop_migration_task", TASK_ID).task_id == TASK_ID
    assert len(replies.requests) == 2


def test_busy_error_class(kind: str) -> None:
    """A busy code that outlasts the retries surfaces as DcsBusyError."""
    replies = CannedReplies(error(400, "DCS.4049"))
    twin = Twin(kind, replies, retry=RetryPolicy(max_attempts=2, rng=random.Random(0)))
    with pytest.raises(DcsBusyError):
        twin.call("show_migration_task", TASK_ID)
    assert len(replies.requests) == 2


def test_policy_rejects_nonsense() -> None:
    """A policy with no attempts or negative delays is refused with the value named."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(initial_delay=-1)


def test_an_unsendable_header_is_not_retried_and_not_quoted(kind: str) -> None:
    """A header httpx refuses to send fails at once, without quoting the header's value."""
    replies = CannedReplies(httpx.LocalProtocolError("Illegal header value b'secret-token\\n'"))
    with pytest.raises(DcsTransportError, match="not valid HTTP") as caught:
        Twin(kind, replies).call("show_migration_task", TASK_ID)
    assert "secret-token" not in str(caught.value)
    assert len(replies.requests) == 1


def test_an_unsendable_header_is_not_transient(kind: str) -> None:
    """A request httpx refuses to send fails the same way every time: its error is not transient."""
    replies = CannedReplies(httpx.LocalProtocolError("Illegal header value b'secret-token\\n'"))
    with pytest.raises(DcsTransportError) as caught:
        Twin(kind, replies).call("show_migration_task", TASK_ID)
    assert caught.value.transient is False


def test_the_host_that_did_not_answer_is_named(kind: str) -> None:
    """When IAM is down while fetching a token, the error names IAM's host, not DCS's."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "iam.test":
            raise httpx.ConnectError("refused")
        return ok(TASK)

    auth = IamPasswordAuth(
        "ops", SecretStr("pw"), "acme", project_id="p", iam_endpoint="https://iam.test"
    )
    twin = Twin(kind, handler, retry=RetryPolicy(max_attempts=1), auth=auth)
    with pytest.raises(DcsTransportError, match=r"no answer from iam\.test"):
        twin.call("show_migration_task", TASK_ID)
