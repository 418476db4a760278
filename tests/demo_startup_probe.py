"""`dcs-migrate demo` up to the moment Prefect's local server starts, then a time-out.

Usage: python tests/demo_startup_probe.py, with no PREFECT_API_URL. The demo runs as the
command line runs it (Prefect imported by the demo itself, after it set its environment),
except that the ephemeral server's `start` prints the seconds it would wait, read where
and when Prefect reads them, and then fails as Prefect fails when nothing answers in time.
"""

from __future__ import annotations

import sys
from typing import Any

import flows.demo
from flows.cli import main

_rehearse = flows.demo._rehearse


def _start(self: object, timeout: int | None = None) -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as TIMEOUT

    print(f"server start waits {timeout or TIMEOUT.value()} s")
    msg = "Timed out while attempting to connect to ephemeral Prefect API server."
    raise RuntimeError(msg)


async def _probed(*args: Any) -> int:
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer.start = _start  # type: ignore[method-assign]
    return await _rehearse(*args)


if __name__ == "__main__":
    flows.demo._rehearse = _probed
    sys.exit(main(["demo"]))
