"""Fuzzing the client over real sockets: whatever comes back, a model or a DcsError, in time.

(a) A raw-socket HTTP server on 127.0.0.1 answers every request with what Hypothesis drew:
any status, odd or missing Content-Type, a Content-Length that is right, short, long,
missing or garbage, chunking that is right or broken, garbage Retry-After, random bytes,
truncated and mutated task bodies, 2-5 MB bodies; then it keeps the connection, closes it,
or holds it open without a word. The sync and async clients (0.5 s timeout, two attempts),
with a token, AK/SK or an IAM password (IAM answered by the same server), must return the
operation's model, masked, or raise a `DcsError`, within `BOUND` seconds.

(b) Random task ids and list filters against the real sandbox, with a token or AK/SK:
refused before any request, or answered, never with a 401 (the signature holds).

Inputs that once escaped as other exceptions (deep nesting, an IAM expiry with no UTC
equivalent, a huge error code) have their own tests at the end.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from blocks.auth import AkSkAuth, IamPasswordAuth, TokenAuth
from blocks.client import AsyncDcsClient, DcsClient
from blocks.errors import DcsError, DcsValidationError, MigrationTaskNotFound
from blocks.models import MigrationTask, MigrationTaskList, MigrationTaskLogs, MigrationTaskStats
from blocks.retry import RetryPolicy
from sandbox import MigrationScript, SandboxHandle, Scenario, serve
from tests.conftest import DATA, PROJECT_ID, TASK_ID

TIMEOUT = 0.5
RETRY = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.05, max_elapsed_seconds=0.5)
#: Each attempt waits at most one timeout for a silent server (IAM's answer or DCS's),
#: plus the retry waits; the margin is for a 5 MB body and a loaded CI machine.
BOUND = RETRY.max_attempts * TIMEOUT + RETRY.max_elapsed_seconds + 1.5
#: The longest the server holds a silent connection: the client gives up long before.
HOLD_SECONDS = 5.0
#: An error message is read by people and stored by Prefect: it must stay short.
MAX_MESSAGE = 5000
#: Per operation (seven of them) and client: ~200 answers in all, in ~15 s.
FUZZ = settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, as raw bytes: status, headers, body, framing, and what comes after."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b"{}"
    framing: str = "length"  # length, short, long, none, garbage, chunked, bad-chunks
    ending: str = "keep"  # keep the connection, close it, or hold it silent

    def raw(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} Fuzzed", *(f"{n}: {v}" for n, v in self.headers)]
        body = self.body
        length = {"length": len(body), "short": len(body) // 2, "long": len(body) + 100}
        if self.framing in length:
            lines.append(f"Content-Length: {length[self.framing]}")
        elif self.framing == "garbage":
            lines.append("Content-Length: 12, 13")
        elif self.framing in ("chunked", "bad-chunks"):
            lines.append("Transfer-Encoding: chunked")
            size = b"%x" % len(body) if self.framing == "chunked" else b"zz"
            body = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
        return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


class RawServer(socketserver.ThreadingTCPServer):
    """A loopback HTTP/1.1 server that answers every request with `answer`, byte for byte."""

    daemon_threads = True
    block_on_close = False  # a held connection ends when its client gives up

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = Answer()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(socketserver.StreamRequestHandler):
    timeout = HOLD_SECONDS  # the longest a held connection stays open, if its client does
    disable_nagle_algorithm = True
    server: RawServer

    def handle(self) -> None:
        try:
            while head := self._head():
                size = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                self.rfile.read(int(size[1]) if size else 0)
                answer = self.server.answer
                self.wfile.write(answer.raw())
                if answer.ending == "hold":
                    self.rfile.read(1)  # until the client gives up
                if answer.ending != "keep":
                    return
        except OSError:
            return

    def _head(self) -> bytes:
        head = b""
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            head += line
        return head if line else b""


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    """One fuzzing server for the module; each example sets its answer."""
    with RawServer() as raw:
        yield raw
        raw.shutdown()


# --- what the server says -------------------------------------------------------------

SEED = json.loads((DATA / "show_migration_task_example.json").read_text())
SEED_BYTES = json.dumps(SEED).encode()
KEYS = [*SEED, "port", "password", "count", "migration_tasks", "log_num", "error_code", "token"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/html", "",
                 "application/octet-stream", "text/plain; charset=utf-16", "x/fuzz"]  # fmt: skip
RETRY_AFTERS = ["0", "0.2", "-1", "nan", "inf", "1e309", "soon", "99999999999",
                "Wed, 21 Oct 2015 07:28:00 GMT"]  # fmt: skip
STATUSES = [200, 201, 204, 400, 401, 403, 404, 429, 500, 502, 503]
FRAMINGS = ["length", "short", "long", "none", "garbage", "chunked", "bad-chunks"]
error_codes = st.text(max_size=20) | st.sampled_from(["DCS.4133", "DCS.4975", "DCS.5000"])
latin1 = st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f")
header_values = st.text(latin1, max_size=40)
# Nesting is kept shallow here for speed; the deep cases have their own tests at the end.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=15,
)
# Years far from 1 and 9999: an expiry outside UTC's range escapes today (see the end).
expiries = st.datetimes(min_value=datetime(1970, 1, 1)).map(datetime.isoformat) | st.sampled_from(
    ["", "soon", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+08:00"]
)
tasks = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5).map(
    lambda changes: {**SEED, **changes}
)
pages = st.builds(
    lambda items, count: {"count": count, "migration_tasks": items, "migration_logs": items},
    st.lists(tasks, max_size=3),
    json_values,
)


def _big(size: int, shape: str) -> bytes:
    if shape == "json":  # a valid task whose description is megabytes long
        return json.dumps({**SEED, "description": "x" * size}).encode()
    return bytes(range(256)) * (size // 256)


def _encoded(body: object) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


bodies = st.one_of(
    st.binary(max_size=512),
    st.integers(0, len(SEED_BYTES)).map(lambda n: SEED_BYTES[:n]),
    tasks,
    st.fixed_dictionaries({"error_code": error_codes, "error_msg": json_values}),
    st.builds(lambda expiry: {"token": {"expires_at": expiry}}, expiries),
    st.builds(_big, st.integers(2_000_000, 5_000_000), st.sampled_from(["json", "bytes"])),
).map(_encoded)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(CONTENT_TYPES),
        "Retry-After": st.sampled_from(RETRY_AFTERS) | header_values,
        "X-Request-Id": header_values,
        "X-Subject-Token": st.text(latin1, min_size=1, max_size=40).filter(str.strip),
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "x-fuzz"]),
        "Connection": st.sampled_from(["close", "keep-alive"]),
    },
).map(lambda found: tuple(found.items()))
# Half the answers are well-formed successes with odd contents, so that parsing is
# exercised as much as what goes wrong around it.
answers = st.builds(
    Answer,
    status=st.sampled_from([200, 201]),
    headers=st.just((("Content-Type", "application/json"), ("X-Subject-Token", "fuzz-issued"))),
    body=(tasks | pages).map(_encoded),
    framing=st.sampled_from(["length", "chunked"]),
    ending=st.sampled_from(["keep", "close"]),
) | st.builds(
    Answer,
    status=st.sampled_from(STATUSES) | st.integers(100, 599),
    headers=headers,
    body=bodies,
    framing=st.sampled_from(FRAMINGS),
    ending=st.sampled_from(["keep", "keep", "close", "close", "hold"]),
)

# --- what the client is asked ---------------------------------------------------------

OPERATIONS: dict[str, tuple[Callable[[Any], Any], type | None]] = {
    "show": (lambda client: client.show_migration_task(TASK_ID), MigrationTask),
    "stats": (lambda client: client.show_migration_task_stats(TASK_ID), MigrationTaskStats),
    "list": (lambda client: client.list_migration_tasks(name="m"), MigrationTaskList),
    "logs": (lambda client: client.list_migration_task_logs(TASK_ID), MigrationTaskLogs),
    "stop": (lambda client: client.stop_migration_task(TASK_ID), MigrationTask),
    "exchange": (lambda client: client.exchange_instance_ip(TASK_ID), None),
    "rollback": (lambda client: client.rollback_exchange_instance_ip(TASK_ID), None),
}
auths = st.sampled_from(["token", "aksk", "iam"])


def _auth(kind: str, url: str) -> httpx.Auth:
    if kind == "token":
        return TokenAuth(SecretStr("fuzz-token"))
    if kind == "aksk":
        return AkSkAuth("FUZZACCESSKEY", SecretStr("fuzz-secret-key"), project_id=PROJECT_ID)
    password = SecretStr("fuzz-password")
    return IamPasswordAuth("u", password, "d", project_id=PROJECT_ID, iam_endpoint=url)


def _check(outcome: object, expected: type | None, elapsed: float) -> None:
    """The fuzzing property: the right model (masked) or a short DcsError, in time."""
    assert elapsed < BOUND, f"took {elapsed:.2f} s (bound {BOUND} s)"
    event(type(outcome).__name__)  # `pytest --hypothesis-show-statistics` shows the mix
    if isinstance(outcome, DcsError):
        assert len(str(outcome)) < MAX_MESSAGE
        assert str(pickle.loads(pickle.dumps(outcome))) == str(outcome)  # Prefect persists it
        return
    if expected is None:
        assert outcome is None
        return
    assert isinstance(outcome, expected)
    assert not outcome.has_unmasked_secrets()


def _attempt(url: str, auth: str, call: Callable[[Any], Any], retry: RetryPolicy) -> object:
    """What the sync client returned or raised (a DcsError) for `call`."""
    with DcsClient(url, PROJECT_ID, _auth(auth, url), timeout=TIMEOUT, retry=retry) as client:
        try:
            return call(client)
        except DcsError as error:
            return error


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@FUZZ
@given(answer=answers, auth=auths)
def test_sync_client_answers_with_a_model_or_a_dcs_error(
    server: RawServer, answer: Answer, operation: str, auth: str
) -> None:
    """Whatever the server sends, the sync client returns a model or raises a DcsError, in time."""
    server.answer = answer
    call, expected = OPERATIONS[operation]
    began = time.monotonic()
    outcome = _attempt(server.url, auth, call, RETRY)
    _check(outcome, expected, time.monotonic() - began)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@settings(FUZZ, max_examples=12)
@given(answer=answers, auth=auths)
def test_async_client_answers_with_a_model_or_a_dcs_error(
    server: RawServer, answer: Answer, operation: str, auth: str
) -> None:
    """Whatever the server sends, the async client returns a model or raises a DcsError, in time."""
    server.answer = answer
    call, expected = OPERATIONS[operation]

    async def attempt() -> object:
        async with AsyncDcsClient(
            server.url, PROJECT_ID, _auth(auth, server.url), timeout=TIMEOUT, retry=RETRY
        ) as client:
            try:
                return await call(client)
            except DcsError as error:
                return error

    began = time.monotonic()
    outcome = asyncio.run(attempt())
    _check(outcome, expected, time.monotonic() - began)


# --- (b) random ids and names against the real sandbox --------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """The sandbox with one task, for the whole module."""
    with serve(Scenario(tasks=[MigrationScript.incremental(TASK_ID)])) as handle:
        yield handle


def _sandbox_client(dcs: SandboxHandle, auth: str) -> DcsClient:
    if auth == "token":
        credentials: httpx.Auth = TokenAuth(SecretStr(dcs.credentials["token"]))
    else:
        secret = SecretStr(dcs.credentials["secret_key"])
        credentials = AkSkAuth(dcs.credentials["access_key"], secret, project_id=dcs.project_id)
    return DcsClient(dcs.url, dcs.project_id, credentials, timeout=5, retry=RETRY)


task_ids = st.text(max_size=140) | st.sampled_from(
    [TASK_ID, TASK_ID.upper(), f"{TASK_ID}~", "a;b", "a+b", "a=b&c", ".", "..", "a/b", "%2F"]
)
READS: dict[str, Callable[[DcsClient, str], Any]] = {
    "show": DcsClient.show_migration_task,
    "stats": DcsClient.show_migration_task_stats,
    "logs": DcsClient.list_migration_task_logs,
}


@settings(max_examples=150, deadline=None)
@given(
    task_id=task_ids, auth=st.sampled_from(["token", "aksk"]), read=st.sampled_from(sorted(READS))
)
def test_any_task_id_is_refused_first_or_answered(
    sandbox: SandboxHandle, task_id: str, auth: str, read: str
) -> None:
    """An id is refused before any request, or reaches DCS intact, signed, and is answered."""
    before = len(sandbox.state.requests)
    with _sandbox_client(sandbox, auth) as client:
        try:
            outcome = READS[read](client, task_id)
        except DcsError as error:
            outcome = error
    if isinstance(outcome, DcsValidationError):
        assert len(sandbox.state.requests) == before  # refused before any request
    elif task_id == TASK_ID:
        assert isinstance(outcome, MigrationTask | MigrationTaskStats | MigrationTaskLogs)
    else:
        assert isinstance(outcome, MigrationTaskNotFound), outcome  # never a 401
        assert sandbox.state.requests[-1].task_id == task_id  # one segment, decoded intact


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(max_size=30) | st.none(),
    offset=st.integers(-2, 3),
    limit=st.integers(-1, 1002),
    auth=st.sampled_from(["token", "aksk"]),
)
def test_any_list_filter_is_refused_first_or_answered(
    sandbox: SandboxHandle, name: str | None, offset: int, limit: int, auth: str
) -> None:
    """A name, offset or limit is refused before any request, or reaches DCS intact, signed."""
    before = len(sandbox.state.requests)
    with _sandbox_client(sandbox, auth) as client:
        try:
            page = client.list_migration_tasks(offset=offset, limit=limit, name=name)
        except DcsValidationError:
            assert len(sandbox.state.requests) == before
            return
    task_name = sandbox.scenario.tasks[0].task_name.lower()
    matches = int((name or "").lower() in task_name)
    assert page.count == matches  # the sandbox read the very name that was sent
    assert len(page.migration_tasks) == (matches if offset < matches else 0)


# --- inputs that escape today: each a bug, pinned until fixed --------------------------


def _outcome(server: RawServer, answer: Answer, auth: str = "token") -> object:
    server.answer = answer
    return _attempt(server.url, auth, OPERATIONS["show"][0], RetryPolicy(max_attempts=1))


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_TOKEN_BODY = b'{"token": {"expires_at": ' + DEEP + b"}}"
IAM_TOKEN = (("X-Subject-Token", "fuzz-issued-token"),)


@pytest.mark.parametrize(
    ("answer", "auth"),
    [
        pytest.param(Answer(200, body=DEEP), "token", id="task-body"),
        pytest.param(Answer(500, body=DEEP), "token", id="error-body"),
        pytest.param(Answer(201, IAM_TOKEN, DEEP_TOKEN_BODY), "iam", id="iam-token-body"),
    ],
)
def test_deeply_nested_json_is_a_dcs_error(server: RawServer, answer: Answer, auth: str) -> None:
    """A body of 100,000 nested arrays is a DcsError (not JSON DCS sends), not RecursionError."""
    assert isinstance(_outcome(server, answer, auth), DcsError)


def test_an_extra_field_nested_600_deep_parses_or_is_refused(server: RawServer) -> None:
    """A valid JSON task with an extra field nested 600 deep is a model or a DcsError."""
    body = json.dumps({**SEED, "extra": json.loads("[" * 600 + "]" * 600)}).encode()
    assert isinstance(_outcome(server, Answer(200, body=body)), MigrationTask | DcsError)


def test_an_iam_expiry_outside_utc_range_is_not_an_overflow(server: RawServer) -> None:
    """IAM's `expires_at` 0001-01-01T00:00:00+01:00 (no UTC equivalent) never escapes."""
    body = json.dumps({"token": {"expires_at": "0001-01-01T00:00:00+01:00"}}).encode()
    outcome = _outcome(server, Answer(201, IAM_TOKEN, body), "iam")
    assert isinstance(outcome, MigrationTask | DcsError)


def test_a_huge_error_code_makes_a_short_message(server: RawServer) -> None:
    """An error body whose error_code is 100,000 characters gives a message of a few lines."""
    body = json.dumps({"error_code": "X" * 100_000, "error_msg": "busy"}).encode()
    outcome = _outcome(server, Answer(400, body=body))
    assert isinstance(outcome, DcsError)
    assert len(str(outcome)) < MAX_MESSAGE
