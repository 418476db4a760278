"""A scripted DCS for watch tests: each task answers its next scripted step on every read.

A step is a status string (a 200 with that status), an int (that HTTP error status, with
DCS.4133 for 404), or an `httpx` exception (raised on the client side). The last step
repeats for ever. Stats reads walk through their own steps the same way, a dict being the
figures of a 200 (by default: caught up, offset 0 and equal key counts). The same script
serves an `httpx.MockTransport` (engine tests) and the loopback `StubDcs` (tests through
Prefect), and counts every request it answers.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

import httpx

PASSWORD = "redis-canary-Pa55w0rd"
Step = str | int | Exception
StatsStep = dict[str, Any] | int | Exception
#: The stats of a target that is caught up: what a stats read says unless scripted.
CAUGHT_UP: dict[str, Any] = {
    "offset": "0",
    "source_dbsize": "1000",
    "target_dbsize": "1000",
    "is_migrating": True,
}

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


class ScriptedDcs:
    """Tasks that walk through scripted statuses, one step per read of their details."""

    def __init__(
        self,
        scripts: dict[str, list[Step]],
        *,
        progress: list[float | str] | None = None,
        advance_on_list: bool = False,
        loose: dict[str, Any] | None = None,
        stats: list[StatsStep] | None = None,
    ):
        # advance_on_list: time moves with each list request (a round of a fan-out watch),
        # and detail reads show what the last list showed.
        self.advance_on_list = advance_on_list
        # After an exchange-ip POST, detail reads walk through these task_status values.
        self.exchange_steps = ["EXCHANGING", "EXCHANGING", "EXCHANGE_SUCCESS"]
        self.posts: Counter[str] = Counter()
        self._exchange_reads: Counter[str] = Counter()
        self.scripts = {task_id: list(steps) for task_id, steps in scripts.items()}
        self.position: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.progress = list(progress or [])
        self.stats: list[StatsStep] = list(stats or [CAUGHT_UP])
        # Fields merged into every task body: values DCS may send that are no number.
        self.loose = dict(loose or {})
        self._lock = threading.Lock()

    def status_of(self, task_id: str) -> Step:
        """The step the task is on now (what a list page shows)."""
        steps = self.scripts[task_id]
        return steps[min(self.position[task_id], len(steps) - 1)]

    def _next(self, task_id: str) -> Step:
        if self.advance_on_list:
            steps = self.scripts[task_id]
            return steps[min(max(self.position[task_id] - 1, 0), len(steps) - 1)]
        step = self.status_of(task_id)
        self.position[task_id] += 1
        return step

    def body(self, task_id: str, status: str) -> dict[str, Any]:
        """A task body as DCS sends it: plain-text passwords, numbers as strings."""
        return {
            "task_id": task_id,
            "task_name": f"migration-{task_id}",
            "status": status,
            "migration_type": "incremental_migration",
            "source_instance": {"addrs": "10.0.0.1:6379", "password": PASSWORD, "port": "6379"},
            "target_instance": {"id": "dcs-1", "password": PASSWORD, "port": 6379},
            "created_at": "2026/01/01 00:00:00",
            **self.loose,
        }

    def answer(self, method: str, path: str, query: str = "") -> tuple[int, bytes]:
        """Status code and body for a request; steps advance on detail reads only."""
        with self._lock:
            if method == "POST" and (post := _POST.search(path)):
                task_id, action = post.groups()
                self.posts[action] += 1
                if action == "stop":
                    return 200, json.dumps(self.body(task_id, "TERMINATING")).encode()
                return 204, b""
            if _LIST.search(path):
                self.requests["list"] += 1
                params = dict(parse_qsl(query))
                offset, limit = int(params.get("offset", 0)), int(params.get("limit", 100))
                return 200, json.dumps(self._page(offset, limit)).encode()
            match = _SHOW.search(path)
            if match is None:
                return 404, b'{"error_code": "DCS.4000", "error_msg": "no route"}'
            task_id, stats = match.groups()
            if stats:
                self.requests["stats"] += 1
                return self._stats(self.stats.pop(0) if len(self.stats) > 1 else self.stats[0])
            self.requests["show"] += 1
            self.requests[f"show:{task_id}"] += 1
            if task_id not in self.scripts:
                return 404, json.dumps({"error_code": "DCS.4133", "error_msg": "gone"}).encode()
            step = self._next(task_id)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            code, msg = _ERRORS.get(step, (None, "error"))
            return step, json.dumps({"error_code": code, "error_msg": msg}).encode()
        body = self.body(task_id, step)
        if self.posts["exchange-ip"]:
            with self._lock:
                reads = self._exchange_reads[task_id]
                self._exchange_reads[task_id] += 1
            body["task_status"] = self.exchange_steps[min(reads, len(self.exchange_steps) - 1)]
        return 200, json.dumps(body).encode()

    def _stats(self, step: StatsStep) -> tuple[int, bytes]:
        """A stats answer: the step's figures (with the next progress, if any), or its error."""
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            code, msg = _ERRORS.get(step, (None, "error"))
            return step, json.dumps({"error_code": code, "error_msg": msg}).encode()
        if self.progress:
            value = self.progress.pop(0) if len(self.progress) > 1 else self.progress[0]
            step = {"full_migration_progress": str(value), **step}
        return 200, json.dumps(step).encode()

    def _page(self, offset: int, limit: int) -> dict[str, Any]:
        tasks = []
        for task_id in self.scripts:
            step = self.status_of(task_id)
            if isinstance(step, str):
                name = f"migration-{task_id}"
                tasks.append({"task_id": task_id, "task_name": name, "status": step})
        page = tasks[offset : offset + limit]
        if self.advance_on_list and offset + limit >= len(tasks):
            for task_id in self.scripts:  # the round is over once its last page is read
                self.position[task_id] += 1
        return {"count": len(tasks), "migration_tasks": page}

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering from the script."""

        def handler(request: httpx.Request) -> httpx.Response:
            query = request.url.query.decode()
            status, content = self.answer(request.method, request.url.path, query)
            return httpx.Response(status, content=content, headers={"X-Request-Id": "req-s"})

        return httpx.MockTransport(handler)

    def stub_handler(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        """A `StubDcs` handler answering from the script (exceptions become a 503)."""
        try:
            route, _, query = path.partition("?")
            status, content = self.answer(method, route, query)
        except Exception:
            status, content = 503, b"<html>503 Service Unavailable</html>"
        return status, {"X-Request-Id": "req-s"}, content
