"""A worker that dies mid-cutover: runs one IP exchange until tests/test_cutover.py kills it.

Usage: python tests/cutover_victim.py <dcs endpoint> <project id> <task id>, with
PREFECT_API_URL pointing at the test's Prefect server. Real time here: the fake DCS holds
the exchange until the test sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from prefect import flow

from blocks.credentials import DcsCredentials
from flows.cutover import exchange_instance_ip


def main() -> None:
    """Run the exchange against the endpoint given in argv."""
    endpoint, project_id, task_id = sys.argv[1:4]
    credentials = DcsCredentials(endpoint=endpoint, project_id=project_id, token="victim-token")

    @flow(name="cutover-victim")
    async def victim() -> None:
        await exchange_instance_ip(
            task_id, credentials, timeout_seconds=120, poll_interval_seconds=0.05
        )

    asyncio.run(victim())


if __name__ == "__main__":
    main()
