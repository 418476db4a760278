"""Execute one flow run of the runbook the way a worker does, until a test kills it.

Usage, from the repository root, with the test's Prefect server in `PREFECT_API_URL`:

    PREFECT__FLOW_RUN_ID=<id> PREFECT__FLOW_ENTRYPOINT=flows.runbook:migration_runbook \
        python tests/runbook_victim.py

This is `python -m prefect.engine`, Prefect's own entrypoint for a flow run that already
exists (what a process worker starts), run inside `flows.clock.use_time` so that the
cutover's 5-second wait between two reads of `task_status` takes 0.05 s: the time in
force everywhere in `flows`, injected as the house rules say, not patched.
"""

from __future__ import annotations

import asyncio
import runpy

from flows.clock import Time, use_time

#: The longest real sleep of any wait in `flows` in this process.
MAX_SLEEP_SECONDS = 0.05


async def _short_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, MAX_SLEEP_SECONDS))


def main() -> None:
    """Run Prefect's engine entrypoint (it reads the flow run id from the environment)."""
    with use_time(Time(sleep=_short_sleep)):
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
