"""The fakes of the services the tests talk to: one per service, each with named modes.

Every fake is an `httpx.MockTransport` handler (`httpx.Request` in, `httpx.Response` out).
`for_stub(fake)` serves the same fake from the loopback `StubDcs` (tests/conftest.py), for
tests that need a real socket or a Prefect flow between the client and the fake.

- `FakeDcs`: a DCS project of migration tasks. Its modes are options, freely combined:
  - scripted (the default): `FakeDcs({task_id: steps})`; each detail read answers the
    task's next step (a status, an HTTP error status, or an httpx exception).
  - a project snapshot: `add()` tasks, with `fields` that list pages carry as well;
    `hidden` tasks (missing from plain pages, found by a name search), `unlisted` ones
    (deleted, yet their details still read), and a 503 outage with `fail_from_offset`.
  - cutover: `add(..., task_statuses=[...])`; an exchange-ip or rollback-ip POST makes the
    task's task_status walk `after[action]`; `post_answer`, `hold_posts` and `gate` bend it.
  - token checks: every X-Auth-Token is kept in `tokens`; `refused_tokens` get a 401.
  - stats: reads walk through `stats` steps as detail reads walk through a script, a dict
    being the figures of a 200 (by default `CAUGHT_UP`), with the next `progress`, if any;
    `task_stats` and `task_after` give one task steps of its own. `task_posts` counts
    switches per (task id, action).
- `FakeIam`: IAM's token endpoint, issuing token-1, token-2, ... or refusing as told;
  `cloud(iam, dcs)` puts IAM and DCS behind one handler.
- `CannedReplies`: any service as a list of answers, for tests of the HTTP layer itself.
- `SyncFakeTime`: `flows.clock.FakeTime` with a blocking sleep too, for the sync client.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import httpx

from blocks.models import EXCHANGE_SUCCESS, EXCHANGING, ROLLBACK_SUCCESS
from flows.clock import FakeTime

PASSWORD = "redis-canary-Pa55w0rd"
REQUEST_ID = "req-s"
IAM_TOKENS = "/v3/auth/tokens"
Step = str | int | Exception
StatsStep = dict[str, Any] | int | Exception
#: The stats of a target that is caught up: what a stats read says unless scripted.
CAUGHT_UP: dict[str, Any] = {
    "offset": "0",
    "source_dbsize": "1000",
    "target_dbsize": "1000",
    "is_migrating": True,
}
Handler = Callable[[httpx.Request], httpx.Response]
StubAnswer = tuple[int, dict[str, str], bytes]
StubHandler = Callable[[str, str, dict[str, str], bytes], StubAnswer]

_SHOW = re.compile(r"/v2/[^/]+/migration-task/([^/?]+)(/stats)?$")
_POST = re.compile(r"/v2/[^/]+/migration-task/([^/?]+)/(exchange-ip|rollback-ip|stop)$")
_LIST = re.compile(r"/v2/[^/]+/migration-tasks$")
_ERRORS = {
    404: ("DCS.4133", "The migration task does not exist."),
    401: ("DCS.1001", "The token is invalid."),
    429: (None, "Too many requests."),
    503: (None, "Service unavailable."),
    500: ("DCS.5000", "Internal service error."),
}
# The stub writes its own framing headers; a second Content-Length would break the client.
_FRAMING = {"content-length", "content-type", "transfer-encoding"}


def for_stub(handler: Handler) -> StubHandler:
    """`handler` as a `StubDcs` handler: the same fake, over a real socket.

    A client-side exception cannot cross a socket; the nearest thing, a 503, does.
    """

    def answer(method: str, target: str, headers: dict[str, str], body: bytes) -> StubAnswer:
        request = httpx.Request(method, f"http://stub{target}", headers=headers, content=body)
        try:
            response = handler(request)
        except Exception:
            return 503, {"X-Request-Id": REQUEST_ID}, b"<html>503 Service Unavailable</html>"
        extra = {k: v for k, v in response.headers.items() if k.lower() not in _FRAMING}
        return response.status_code, extra, response.read()

    return answer


def _error(status: int) -> tuple[int, bytes]:
    code, msg = _ERRORS.get(status, (None, "error"))
    return status, json.dumps({"error_code": code, "error_msg": msg}).encode()


class FakeDcs:
    """A DCS project whose tasks answer from scripts: one step per read of a task's details.

    A step is a status (a 200 with that status), an int (that HTTP error status, with
    DCS.4133 for 404) or an `httpx` exception (raised on the client side). The last step
    repeats for ever; task_status scripts (`task_statuses`) work the same way. Every request
    is counted (`requests`, `posts`), as a MockTransport handler or behind `StubDcs`.
    """

    def __init__(
        self,
        scripts: dict[str, list[Step]] | None = None,
        *,
        progress: list[float | str] | None = None,
        advance_on_list: bool = False,
        loose: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        unlisted: Iterable[str] = (),
        refused_tokens: Iterable[str] = (),
        stats: list[StatsStep] | None = None,
    ) -> None:
        self.scripts = {task_id: list(steps) for task_id, steps in (scripts or {}).items()}
        self.position: Counter[str] = Counter()
        # advance_on_list: time moves with each list request (a round of a fan-out watch),
        # and detail reads show what the last list page showing the task showed.
        self.advance_on_list = advance_on_list
        self.listed_position: dict[str, int] = {}
        self.progress = list(progress or [])
        self.stats: list[StatsStep] = list(stats or [CAUGHT_UP])
        # A task's own stats steps, instead of the shared `stats` (a fleet of tasks).
        self.task_stats: dict[str, list[StatsStep]] = {}
        # Fields of every task, in list pages and details (DCS lists more than the status).
        self.fields = dict(fields or {})
        self.task_fields: dict[str, dict[str, Any]] = {}
        # Fields merged into every task's details: values DCS may send that are no number.
        self.loose = dict(loose or {})
        # Missing from the plain list pages (pages shifted), shown when asked by name.
        self.hidden: set[str] = set()
        # Deleted tasks whose details still read (SUCCESS, say): no list page shows them.
        self.unlisted = set(unlisted)
        # After a switch POST, the task's detail reads walk through after[action].
        self.after: dict[str, list[Step]] = {
            "exchange-ip": [EXCHANGING, EXCHANGING, EXCHANGE_SUCCESS],
            "rollback-ip": [EXCHANGING, ROLLBACK_SUCCESS],
        }
        # A task's own after[action] (one task of a fleet whose exchange goes wrong).
        self.task_after: dict[str, dict[str, list[Step]]] = {}
        self.task_statuses: dict[str, list[Step]] = {}
        self.task_status_position: Counter[str] = Counter()
        self.post_answer: tuple[int, bytes] | None = None  # None: 204, and the switch happens
        self.post_bodies: list[Any] = []
        self.gets_after_post = 0  # detail reads since the last switch
        # hold_posts: a switch POST is held unanswered until `release`, and never acted on.
        self.hold_posts = False
        self.held, self.release = threading.Event(), threading.Event()
        # gate: reads (any request but a switch POST) wait until `gate.parties` of them
        # are waiting together; then the gate is gone.
        self.gate: threading.Barrier | None = None
        # A 503 for every request whose offset (0 when absent) is at least this: list pages
        # from there on, and details too when it is 0.
        self.fail_from_offset: int | None = None
        self.refused_tokens = set(refused_tokens)
        self.tokens: list[str | None] = []
        self.requests: Counter[str] = Counter()
        self.posts: Counter[str] = Counter()
        self.task_posts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    @property
    def exchange_steps(self) -> list[Step]:
        """The task_status values detail reads walk through after an exchange-ip POST."""
        return self.after["exchange-ip"]

    @exchange_steps.setter
    def exchange_steps(self, steps: list[Step]) -> None:
        self.after["exchange-ip"] = list(steps)

    def add(
        self,
        task_id: str,
        *steps: Step,
        name: str | None = None,
        task_statuses: list[Step] | None = None,
        **fields: Any,
    ) -> None:
        """Add (or replace) a task: its status steps, its name and fields, its task_status."""
        with self._lock:
            self.scripts[task_id] = list(steps)
            self.position.pop(task_id, None)
            self.task_fields[task_id] = {**({"task_name": name} if name else {}), **fields}
        if task_statuses is not None:
            self.show(*task_statuses, task_id=task_id)

    def show(self, *task_statuses: Step, task_id: str | None = None) -> None:
        """The next detail reads of a task (the only one, unless named) show `task_statuses`."""
        if task_id is None:
            (task_id,) = self.scripts
        with self._lock:
            self.task_statuses[task_id] = list(task_statuses)
            self.task_status_position[task_id] = 0

    def status_of(self, task_id: str) -> Step:
        """The step the task is on now (what a list page shows)."""
        steps = self.scripts[task_id]
        return steps[min(self.position[task_id], len(steps) - 1)]

    def _next(self, task_id: str) -> Step:
        if self.advance_on_list:
            steps = self.scripts[task_id]
            shown = self.listed_position.get(task_id, max(self.position[task_id] - 1, 0))
            return steps[min(shown, len(steps) - 1)]
        step = self.status_of(task_id)
        self.position[task_id] += 1
        return step

    def _next_task_status(self, task_id: str) -> Step | None:
        steps = self.task_statuses.get(task_id)
        if not steps:
            return None
        step = steps[min(self.task_status_position[task_id], len(steps) - 1)]
        self.task_status_position[task_id] += 1
        return step

    def entry(self, task_id: str, status: str) -> dict[str, Any]:
        """A task as a list page shows it."""
        own = self.task_fields.get(task_id, {})
        name = f"migration-{task_id}"
        return {"task_id": task_id, "task_name": name, "status": status, **self.fields, **own}

    def body(self, task_id: str, status: str) -> dict[str, Any]:
        """A task's details as DCS sends them: plain-text passwords, numbers as strings."""
        return {
            "task_id": task_id,
            "task_name": f"migration-{task_id}",
            "status": status,
            "migration_type": "incremental_migration",
            "source_instance": {"addrs": "10.0.0.1:6379", "password": PASSWORD, "port": "6379"},
            "target_instance": {"id": "dcs-1", "password": PASSWORD, "port": 6379},
            "created_at": "2026/01/01 00:00:00",
            **self.fields,
            **self.task_fields.get(task_id, {}),
            **self.loose,
        }

    def answer(self, method: str, path: str, query: str = "") -> tuple[int, bytes]:
        """Status code and body for a request; steps advance on detail reads only."""
        params = dict(parse_qsl(query))
        with self._lock:
            outage = self.fail_from_offset
            if outage is not None and int(params.get("offset", 0)) >= outage:
                return _error(503)
            if method == "POST" and (post := _POST.search(path)):
                return self._switch(*post.groups())
            if _LIST.search(path):
                self.requests["list"] += 1
                offset, limit = int(params.get("offset", 0)), int(params.get("limit", 100))
                page = self._page(offset, limit, params.get("name"))
                return 200, json.dumps(page).encode()
            match = _SHOW.search(path)
            if match is None:
                return 404, b'{"error_code": "DCS.4000", "error_msg": "no route"}'
            task_id, stats = match.groups()
            if stats:
                self.requests["stats"] += 1
                steps = self.task_stats.get(task_id, self.stats)
                return self._stats(steps.pop(0) if len(steps) > 1 else steps[0])
            self.requests["show"] += 1
            self.requests[f"show:{task_id}"] += 1
            self.gets_after_post += 1
            if task_id not in self.scripts:
                return 404, json.dumps({"error_code": "DCS.4133", "error_msg": "gone"}).encode()
            step = self._next(task_id)
            task_status = self._next_task_status(task_id) if isinstance(step, str) else None
        for outcome in (step, task_status):
            if isinstance(outcome, Exception):
                raise outcome
            if isinstance(outcome, int):
                return _error(outcome)
        assert isinstance(step, str)
        body = self.body(task_id, step)
        if task_status is not None:
            body["task_status"] = task_status
        return 200, json.dumps(body).encode()

    def _stats(self, step: StatsStep) -> tuple[int, bytes]:
        """A stats answer: the step's figures (with the next progress, if any), or its error."""
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            return _error(step)
        if self.progress:
            value = self.progress.pop(0) if len(self.progress) > 1 else self.progress[0]
            step = {"full_migration_progress": str(value), **step}
        return 200, json.dumps(step).encode()

    def _switch(self, task_id: str, action: str) -> tuple[int, bytes]:
        self.posts[action] += 1
        self.task_posts[task_id, action] += 1
        if action == "stop":
            return 200, json.dumps(self.body(task_id, "TERMINATING")).encode()
        status, content = self.post_answer or (204, b"")
        if not 400 <= status < 500:  # a refused request switches nothing
            after = self.task_after.get(task_id, {}).get(action, self.after[action])
            self.task_statuses[task_id] = list(after)
            self.task_status_position[task_id] = 0
            self.gets_after_post = 0
        return status, content

    def _page(self, offset: int, limit: int, name: str | None) -> dict[str, Any]:
        tasks = []
        for task_id in self.scripts:
            step = self.status_of(task_id)
            shown = task_id not in self.unlisted and (name or task_id not in self.hidden)
            if isinstance(step, str) and shown:
                entry = self.entry(task_id, step)
                if name is None or name in entry["task_name"]:  # a name search matches a part
                    tasks.append(entry)
        page = tasks[offset : offset + limit]
        for entry in page:
            self.listed_position[entry["task_id"]] = self.position[entry["task_id"]]
        if self.advance_on_list and offset + limit >= len(tasks):
            for task_id in self.scripts:  # the round is over once its last page is read
                self.position[task_id] += 1
        return {"count": len(tasks), "migration_tasks": page}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as this DCS would: the MockTransport handler."""
        token = request.headers.get("X-Auth-Token")
        self.tokens.append(token)
        if token in self.refused_tokens:
            status, content = _error(401)
            return httpx.Response(status, content=content, headers={"X-Request-Id": REQUEST_ID})
        path = request.url.path
        switch = request.method == "POST" and _POST.search(path)
        if switch and switch[2] != "stop":
            if self.hold_posts:
                self.held.set()
                self.release.wait(timeout=30)
                return httpx.Response(504)
            self.post_bodies.append(json.loads(request.content or b"{}"))
        elif not switch and (gate := self.gate) is not None:
            # Hold each read until `gate.parties` of them are waiting: every caller has then
            # done what it does before reading, so what they do next really races.
            gate.wait(timeout=30)
            self.gate = None
        # Through self.answer, looked up now: a test may wrap it to bend one route.
        status, content = self.answer(request.method, path, request.url.query.decode())
        return httpx.Response(status, content=content, headers={"X-Request-Id": REQUEST_ID})

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering as this DCS."""
        return httpx.MockTransport(self)

    def stub_handler(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> StubAnswer:
        """A `StubDcs` handler answering as this DCS (exceptions become a 503)."""
        return for_stub(self)(method, path, headers, body)


class FakeIam:
    """IAM's token endpoint: each request gets a new token (token-1, token-2, ...).

    With `status` >= 300 or an `error` body, every request is refused with that instead.
    """

    def __init__(
        self, expires_at: str | None = None, *, status: int = 201, error: Any = None
    ) -> None:
        self.expires_at = expires_at
        self.status, self.error = status, error
        self.bodies: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one token request: the MockTransport handler."""
        self.bodies.append(json.loads(request.read()))
        if self.status >= 300 or self.error is not None:
            headers = {"X-Request-Id": "r1"}
            return httpx.Response(self.status, json=self.error, headers=headers)
        body = {"token": {"expires_at": self.expires_at} if self.expires_at else {}}
        headers = {"X-Subject-Token": f"token-{len(self.bodies)}"}
        return httpx.Response(201, headers=headers, json=body)


def cloud(iam: FakeIam, dcs: FakeDcs) -> Handler:
    """IAM and DCS behind one handler, told apart by IAM's token path."""

    def route(request: httpx.Request) -> httpx.Response:
        return (iam if request.url.path == IAM_TOKENS else dcs)(request)

    return route


def ok(body: Any = None, status: int = 200) -> httpx.Response:
    """A canned answer with a request id: `body` as JSON, or no body at all."""
    if body is None:
        return httpx.Response(status, headers={"X-Request-Id": "req-1"})
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req-1"})


class CannedReplies:
    """Each request gets the next canned answer (the last repeats); every request is kept.

    An answer is an `httpx.Response` or an exception, raised as the transport would.
    """

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request: the MockTransport handler."""
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        # A fresh response each time: httpx consumes the one it is handed.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


class SyncFakeTime(FakeTime):
    """`flows.clock.FakeTime` that can also sleep without an event loop, for `DcsClient`.

    (`FakeTime` alone serves the async client, and the auth classes through `now`.)
    """

    def sleep_sync(self, seconds: float) -> None:
        """Let `seconds` pass at once, as `sleep` does, without awaiting."""
        self.sleeps.append(seconds)
        self.elapsed += max(seconds, 0.0)


__all__ = [
    "CAUGHT_UP",
    "IAM_TOKENS",
    "PASSWORD",
    "REQUEST_ID",
    "CannedReplies",
    "FakeDcs",
    "FakeIam",
    "StatsStep",
    "Step",
    "SyncFakeTime",
    "cloud",
    "for_stub",
    "ok",
]
