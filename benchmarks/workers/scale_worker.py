"""Many candidates of one election in one process: ``--sessions`` sessions on ``--clients``
clients. Every session campaigns; on ``resign`` (stdin) the local leader resigns and campaigns
again at the back of the queue. Prints JSON lines: ``begin``, ``ready`` (every key written),
``elected``, ``resigned`` (with ``t0``, taken just before ``resign()``), ``queued``.
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
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--ttl", type=int, default=30)
    parser.add_argument("--worker", type=int, default=0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    clients = [await AsyncClient(args.endpoint).open() for _ in range(args.clients)]
    emit("begin", worker=args.worker)
    sessions = await asyncio.gather(
        *(clients[i % len(clients)].session(ttl=args.ttl).start() for i in range(args.sessions))
    )
    elections = [AsyncElection(s, args.election) for s in sessions]
    resign_now = [asyncio.Event() for _ in elections]
    leading: list[int] = []
    tasks = []

    async def candidate(i: int) -> None:
        election = elections[i]
        while True:
            await election.campaign(f"w{args.worker}-{i}")
            emit("elected", worker=args.worker, idx=i)
            leading.append(i)
            await resign_now[i].wait()
            resign_now[i].clear()
            leading.remove(i)
            t0 = time.time()
            await election.resign()
            emit("resigned", worker=args.worker, idx=i, t0=t0)
            requeued = asyncio.create_task(queued(i))
            tasks.append(requeued)

    async def queued(i: int) -> None:
        while elections[i].key is None:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.002)
        emit("queued", worker=args.worker, idx=i)

    tasks.extend(asyncio.create_task(candidate(i)) for i in range(len(elections)))
    while any(e.key is None for e in elections):  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.01)
    emit("ready", worker=args.worker, sessions=len(elections))
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command in ("", "quit"):
            break
        if command == "resign" and leading:
            resign_now[leading[0]].set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    for client in clients:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
