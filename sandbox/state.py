"""What happened in a sandbox: the time origin, what clients did to each task, a request log.

The server thread writes, tests read: every method takes one lock. No credential is
ever stored here (a request record holds the route, never a header or a body).

>>> from sandbox.clock import ManualClock
>>> from sandbox.scenario import MigrationScript, Scenario
>>> clock = ManualClock()
>>> state = SandboxState(Scenario(tasks=[MigrationScript.incremental("t1")]), clock)
>>> clock.advance(40)
>>> state.task("t1").status
'INCRMIGEATING'
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sandbox.clock import Clock, utc_now
from sandbox.lifecycle import IpAction, IpActionKind, TaskEvents, TaskSnapshot, snapshot
from sandbox.scenario import MigrationScript, Scenario

AuthKind = Literal["token", "iam_token", "aksk", "temporary_aksk"]

#: How many request records the state keeps (the oldest are forgotten first).
MAX_RECORDS = 10_000


@dataclass(frozen=True)
class RequestRecord:
    """One request the sandbox answered (or dropped: `status` None)."""

    at: float
    method: str
    route: str
    path: str
    status: int | None
    auth: AuthKind | None
    request_id: str
    task_id: str | None = None
    fault: str | None = None
    #: The sandbox clock when the request arrived. Unlike `at`, `/_sandbox/advance` does
    #: not move it: requests per second are counted on it.
    clock_at: float | None = None


class SandboxState:
    """The mutable half of a sandbox; the scenario is the other, immutable, half."""

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        utc_now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.scenario = scenario
        self._clock = clock
        self._utc_now = utc_now
        self._lock = threading.Lock()
        self._start = clock()
        self._origin = utc_now()
        self._events: dict[str, TaskEvents] = {}
        # Tasks created (or configured, or restarted) through the API: they replace the
        # scenario's script of the same id, and come after the scenario's tasks in a list.
        self._scripts: dict[str, MigrationScript] = {}
        self._records: list[RequestRecord] = []
        self._faults: Counter[str] = Counter()
        self._tokens_issued = 0

    # -- time ------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Scenario seconds since the sandbox started (or was reset)."""
        with self._lock:
            return self._clock() - self._start

    @property
    def origin(self) -> datetime:
        """The wall-clock moment of scenario time 0 (task `created_at`)."""
        with self._lock:
            return self._origin

    def clock_reading(self) -> float:
        """The sandbox clock now (real seconds times the speed), unmoved by `advance`."""
        return self._clock()

    def reset(self) -> None:
        """Start the scenario again: time 0 now, no events, no request records."""
        with self._lock:
            self._start = self._clock()
            self._origin = self._utc_now()
            self._events.clear()
            self._scripts.clear()
            self._records.clear()
            self._faults.clear()

    def advance(self, seconds: float) -> None:
        """Jump `seconds` scenario seconds ahead: every task's script moves on at once."""
        if seconds < 0:
            msg = f"time does not go back: advance({seconds!r})"
            raise ValueError(msg)
        with self._lock:
            self._start -= seconds

    # -- tasks -----------------------------------------------------------------------

    def script(self, task_id: str) -> MigrationScript | None:
        """The script `task_id` plays now: one given through the API, or the scenario's."""
        with self._lock:
            played = self._scripts.get(task_id)
        return played if played is not None else self.scenario.task(task_id)

    def scripts(self) -> list[MigrationScript]:
        """Every task's script, the scenario's first, then those created through the API."""
        with self._lock:
            played = dict(self._scripts)
        scenario = [played.pop(task.task_id, task) for task in self.scenario.tasks]
        return scenario + list(played.values())

    def play(self, script: MigrationScript, *, restart: bool = False) -> None:
        """Play `script` for its task from now on (a created, configured or restarted task);
        `restart` forgets the task's stop, so the new script runs unstopped."""
        with self._lock:
            self._scripts[script.task_id] = script
            if restart and script.task_id in self._events:
                self._events[script.task_id] = replace(
                    self._events[script.task_id], stop_at=None, stop_waited=False
                )

    def events(self, task_id: str) -> TaskEvents:
        with self._lock:
            return self._events.get(task_id, TaskEvents())

    def task(self, task_id: str) -> TaskSnapshot:
        """What DCS reports about `task_id` now; KeyError for a task not in the scenario."""
        script = self._script(task_id)
        with self._lock:
            now = self._clock() - self._start
            events = self._events.get(task_id, TaskEvents())
        return snapshot(script, events, now)

    def request_stop(self, task_id: str, at: float, *, waited: bool = False) -> None:
        """Record an accepted stop (the first one counts; later ones change nothing);
        `waited`: a sync-stop, TERMINATED at once."""
        with self._lock:
            events = self._events.get(task_id, TaskEvents())
            if events.stop_at is None:
                self._events[task_id] = replace(events, stop_at=at, stop_waited=waited)

    def delete(self, task_id: str, at: float) -> None:
        """Record an accepted deletion: from `at` on, the task is gone."""
        with self._lock:
            events = self._events.get(task_id, TaskEvents())
            if events.deleted_at is None:
                self._events[task_id] = replace(events, deleted_at=at)

    def add_ip_action(
        self,
        task_id: str,
        kind: IpActionKind,
        at: float,
        exchanged_ip: tuple[str, ...] = (),
        is_exchange_domain: bool = False,
    ) -> None:
        """Record an accepted exchange-ip or rollback-ip."""
        action = IpAction(kind, at, exchanged_ip, is_exchange_domain)
        with self._lock:
            events = self._events.get(task_id, TaskEvents())
            self._events[task_id] = replace(events, ip_actions=(*events.ip_actions, action))

    def ip_actions(self, task_id: str, kind: IpActionKind | None = None) -> list[IpAction]:
        """Accepted IP actions on `task_id` (of one `kind`), oldest first."""
        actions = self.events(task_id).ip_actions
        return [action for action in actions if kind is None or action.kind == kind]

    def exchanges(self, task_id: str) -> int:
        """Exchanges that took effect on `task_id` (each one swaps the addresses)."""
        return len(self.ip_actions(task_id, "exchange"))

    def rollbacks(self, task_id: str) -> int:
        return len(self.ip_actions(task_id, "rollback"))

    def exchange_requests(self, task_id: str) -> int:
        """POST exchange-ip requests received for `task_id`, whatever their answer."""
        return self.count("exchange_instance_ip", task_id=task_id)

    def rollback_requests(self, task_id: str) -> int:
        return self.count("rollback_exchange_instance_ip", task_id=task_id)

    def stop_requests(self, task_id: str) -> int:
        return self.count("stop_migration_task", task_id=task_id)

    def _script(self, task_id: str) -> MigrationScript:
        script = self.script(task_id)
        if script is None:
            msg = f"task {task_id!r} is not in scenario {self.scenario.name!r}"
            raise KeyError(msg)
        return script

    # -- requests --------------------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            if len(self._records) > MAX_RECORDS:
                del self._records[: len(self._records) - MAX_RECORDS]
            if record.fault is not None:
                self._faults[record.fault] += 1

    def note_token_issued(self) -> None:
        with self._lock:
            self._tokens_issued += 1

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request record, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def count(
        self,
        route: str | None = None,
        *,
        task_id: str | None = None,
        status: int | None = None,
        auth: AuthKind | None = None,
    ) -> int:
        """How many recorded requests match every filter given."""
        return sum(
            1
            for record in self.requests
            if (route is None or record.route == route)
            and (task_id is None or record.task_id == task_id)
            and (status is None or record.status == status)
            and (auth is None or record.auth == auth)
        )

    @property
    def faults_injected(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    # -- the admin view --------------------------------------------------------------

    def as_dict(self, recent: int = 50) -> dict[str, Any]:
        """The JSON of `GET /_sandbox/state` (no secret in it); the last `recent` requests."""
        records = self.requests
        # One pass over the log for every task's counts: thousands of tasks times
        # thousands of records, counted per task, would take the sandbox seconds.
        by_task = Counter((record.route, record.task_id) for record in records)
        reads = Counter(
            record.task_id
            for record in records
            if record.route == "show_migration_task" and record.status == 200
        )
        tasks: dict[str, Any] = {}
        for script in self.scripts():
            task_id = script.task_id
            snap = self.task(task_id)
            tasks[task_id] = {
                "task_name": script.task_name,
                "status": snap.status,
                "task_status": snap.task_status,
                "full_migration_progress": round(snap.progress, 2),
                "deleted": snap.deleted,
                "detail_reads_success": snap.detail_reads_success,
                "reads": reads[task_id],
                "addresses_swapped": snap.addresses_swapped,
                "exchange_requests": by_task["exchange_instance_ip", task_id],
                "exchanges": self.exchanges(task_id),
                "rollback_requests": by_task["rollback_exchange_instance_ip", task_id],
                "rollbacks": self.rollbacks(task_id),
                "stop_requests": by_task["stop_migration_task", task_id],
                "stopped_at": self.events(task_id).stop_at,
            }
        return {
            "sandbox": "local DCS emulator: this view is not part of the DCS API",
            "scenario": self.scenario.name,
            "project_id": self.scenario.project_id,
            "speed": self.scenario.speed,
            "elapsed_seconds": round(self.elapsed, 3),
            "requests": {
                "total": len(records),
                "by_route": dict(Counter(record.route for record in records)),
                "by_status": dict(Counter(str(record.status) for record in records)),
                "by_auth": dict(Counter(str(record.auth) for record in records)),
            },
            "faults_injected": self.faults_injected,
            "tokens_issued": self.tokens_issued,
            "tasks": tasks,
            "recent_requests": [
                {
                    "at": round(record.at, 3),
                    "method": record.method,
                    "route": record.route,
                    "path": record.path,
                    "status": record.status,
                    "auth": record.auth,
                    "task_id": record.task_id,
                    "fault": record.fault,
                    "request_id": record.request_id,
                    "clock_at": record.clock_at,
                }
                for record in (records[-recent:] if recent > 0 else [])
            ],
        }


__all__ = ["MAX_RECORDS", "AuthKind", "RequestRecord", "SandboxState"]
