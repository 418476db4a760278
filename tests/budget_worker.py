"""A stand-in for one worker: several flow runs at once, each reading a task a few times.

    python -m tests.budget_worker BLOCK_NAME TASK_ID RUNS READS

Every read goes through a client of the saved `DcsCredentials` block, as the project's
flows do, so every request is paced by the project's API budget. The runs start, print
"ready" once all of them hold a client, and read only once a line arrives on stdin: so
the workers of a test start reading together, however long each took to start.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from prefect import flow

from blocks.credentials import DcsCredentials


class Start:
    """The runs of this process say they are ready here, and wait here to go."""

    ready: asyncio.Queue[None]
    go: asyncio.Event


@flow(name="budget-reader", persist_result=False)
async def read_task(block_name: str, task_id: str, reads: int) -> int:
    """Read `task_id` `reads` times, one request after another, once told to go."""
    block = await DcsCredentials.aload(block_name)
    async with block.get_async_client() as client:
        await Start.ready.put(None)
        await Start.go.wait()
        for _ in range(reads):
            await client.show_migration_task(task_id)
    return reads


async def read_together(
    block_name: str, task_id: str, runs: int, reads: int, go: Callable[[], Awaitable[object]]
) -> int:
    """Start `runs` runs; once all hold a client, await `go`, then let them all read."""
    Start.ready = asyncio.Queue()
    Start.go = asyncio.Event()
    started = [asyncio.ensure_future(read_task(block_name, task_id, reads)) for _ in range(runs)]
    for _ in range(runs):
        await Start.ready.get()
    await go()
    Start.go.set()
    return sum(await asyncio.gather(*started))


async def main(block_name: str, task_id: str, runs: int, reads: int) -> None:
    async def ready_then_stdin() -> None:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

    done = await read_together(block_name, task_id, runs, reads, ready_then_stdin)
    print(f"reads done: {done}", flush=True)


if __name__ == "__main__":
    block_name, task_id, runs, reads = sys.argv[1:5]
    asyncio.run(main(block_name, task_id, int(runs), int(reads)))
