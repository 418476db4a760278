"""The sandbox as the benchmarks run it: its own process on 127.0.0.1, plus a request counter.

    python -m benchmarks.sandbox_proc --scenario FILE [--clock real|polls]

Prints one JSON line (`url`, `pid`, project and credentials) and serves until SIGTERM.
Around the unchanged sandbox app it adds, for the benchmarks only:

- a counter of DCS requests by route, with the `time.monotonic()` of the first and the last
  (CLOCK_MONOTONIC is one clock for every process of the machine, so a benchmark process
  can subtract its own readings): `GET /_bench/stats`, cleared by `POST /_sandbox/reset`.
  It counts every request, where the sandbox's own log keeps only the last 10,000;
- `--clock polls`: scenario time is the number of `show_migration_task` requests since the
  last reset, so a task scripted `FULLMIGRATING` for N - 0.5 s answers SUCCESS at exactly
  the N-th poll, however fast or slow the client polls;
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import ManualClock, create_app, load_scenario
from sandbox.server import listening_socket, sandbox_credentials, uvicorn_config

_SHOW = re.compile(r"^/v2/[^/]+/migration-task/[^/]+$")
_STATS = re.compile(r"^/v2/[^/]+/migration-task/[^/]+/stats$")
_LIST = re.compile(r"^/v2/[^/]+/migration-tasks$")


def route_of(method: str, path: str) -> str | None:
    """The DCS operation a request is, for the counter (None: not a DCS request)."""
    if method == "GET" and _SHOW.match(path):
        return "show_migration_task"
    if method == "GET" and _STATS.match(path):
        return "show_migration_task_stats"
    if method == "GET" and _LIST.match(path):
        return "list_migration_tasks"
    if path.startswith("/v2/"):
        return "other"
    return None


class CountingApp:
    """Counts DCS requests in front of the sandbox app; `polls_clock` ticks once per show."""

    def __init__(self, app: ASGIApp, polls_clock: ManualClock | None) -> None:
        self.app = app
        self.polls_clock = polls_clock
        self.counts: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "by_route": dict(self.counts),
            "total": sum(self.counts.values()),
            "first_monotonic": self.first,
            "last_monotonic": self.last,
            "pid": os.getpid(),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if path == "/_bench/stats":
                await JSONResponse(self.stats())(scope, receive, send)
                return
            if method == "POST" and path == "/_sandbox/reset":
                self.counts.clear()
                self.first = self.last = None
            route = route_of(method, path)
            if route is not None:
                now = time.monotonic()
                self.counts[route] += 1
                self.first = now if self.first is None else self.first
                self.last = now
                if route == "show_migration_task" and self.polls_clock is not None:
                    self.polls_clock.advance(1)
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox_proc")
    parser.add_argument("--scenario", required=True, help="a scenario file (YAML or JSON)")
    parser.add_argument(
        "--clock",
        choices=["real", "polls"],
        default="real",
        help="real: scenario seconds at the scenario's speed; polls: one second per show",
    )
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario)
    polls_clock = ManualClock() if args.clock == "polls" else None
    app = CountingApp(create_app(scenario, polls_clock), polls_clock)
    sock = listening_socket("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(json.dumps({"url": url, "pid": os.getpid(), **sandbox_credentials(scenario, url)}))
    sys.stdout.flush()
    # In the main thread, uvicorn stops on SIGTERM by itself.
    uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
