"""Candidates as asyncio tasks in one process (our library, no CLI, no pipes).

Each candidate has its own session (lease) on one shared client. On ``handoff`` (a line on
stdin) the leader resigns; the time from just before ``resign()`` to the moment the next
candidate's ``campaign()`` returns is printed, and the resigned candidate campaigns again
(at the back of the queue), so the number of candidates stays constant.

    python inproc_candidates.py --endpoint 127.0.0.1:2379 --election NAME --candidates 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from etcd_elector import AsyncClient, AsyncElection


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--election", required=True)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--ttl", type=int, default=10)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    async with AsyncClient(args.endpoint) as client:
        sessions = [await client.session(ttl=args.ttl).start() for _ in range(args.candidates)]
        elections = [AsyncElection(s, args.election) for s in sessions]
        won: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def campaign(i: int) -> None:
            await elections[i].campaign(f"inproc-{i}")
            won.put_nowait((i, time.perf_counter()))

        async def enqueue(i: int) -> None:
            task = asyncio.create_task(campaign(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            while elections[i].key is None and not task.done():  # noqa: ASYNC110 (no event to wait on)
                await asyncio.sleep(0.002)

        for i in range(args.candidates):
            await enqueue(i)
        leader, _ = await won.get()
        await asyncio.sleep(0.2)
        emit("ready", leader=leader)
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command in ("", "quit"):
                break
            if command != "handoff":
                continue
            started = time.perf_counter()
            await elections[leader].resign()
            resigned = time.perf_counter()
            successor, elected = await won.get()
            seconds = elected - started
            await enqueue(leader)
            await asyncio.sleep(0.05)  # the re-campaign's watch on its predecessor
            emit(
                "handoff",
                seconds=seconds,
                resign_seconds=resigned - started,
                old=leader,
                new=successor,
            )
            leader = successor
        for task in list(tasks):  # the queued campaigns end with the process, quietly
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for session in sessions:
            await session.close()


if __name__ == "__main__":
    asyncio.run(main())
