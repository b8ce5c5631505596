"""One process holding many elections: resident memory, idle CPU, campaign throughput.

``--mode shared``: one session (lease) for every election; ``--mode per-election``: one session
each. Every election is campaigned (and won: each has one candidate) with at most
``--concurrency`` campaigns in flight. Then the process idles for ``--idle`` seconds between
``idle_start`` and ``idle_end`` lines (the harness reads etcd's metrics at both).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import sys
import time
import urllib.request
from pathlib import Path

from etcd_elector import AsyncClient, AsyncElection, AsyncSession, CampaignFailed, TransportError


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def watchers(metrics_url: str) -> int:
    """etcd's count of watchers (all clients), from its /metrics."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{metrics_url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    return 0


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--elections", type=int, required=True)
    parser.add_argument("--mode", choices=("shared", "per-election"), required=True)
    parser.add_argument("--ttl", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--prefix", default="mem")
    parser.add_argument("--metrics-url", required=True, help="etcd's client URL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(message)s")
    rss_start = status_kib("VmRSS")
    async with AsyncClient(args.endpoint) as client:
        await client.get("warm-up")
        rss_client = status_kib("VmRSS")
        watchers_before = watchers(args.metrics_url)
        limit = asyncio.Semaphore(args.concurrency)
        t_start = time.perf_counter()
        if args.mode == "shared":
            shared = await client.session(ttl=args.ttl).start()
            sessions = [shared]
        else:

            async def start_one() -> AsyncSession:
                async with limit:
                    return await client.session(ttl=args.ttl).start()

            sessions = list(await asyncio.gather(*(start_one() for _ in range(args.elections))))
        t_sessions = time.perf_counter()
        elections = [
            AsyncElection(sessions[i % len(sessions)], f"{args.prefix}-{i}")
            for i in range(args.elections)
        ]

        failures: collections.Counter[str] = collections.Counter()

        async def campaign(i: int) -> None:
            # As the elector would: a campaign that fails on transport trouble is tried again.
            for attempt in range(1, 6):
                async with limit:
                    try:
                        await elections[i].campaign(f"v{i}")
                        return
                    except (TransportError, CampaignFailed) as exc:
                        failures[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                await asyncio.sleep(0.2 * attempt)

        await asyncio.gather(*(campaign(i) for i in range(args.elections)))
        t_done = time.perf_counter()
        leaders = sum(1 for e in elections if e.is_leader())
        # Each term's guard watch on its own key is created after campaign() returns: wait
        # until etcd has them all, so that the idle window below is really idle.
        guards = 0
        while time.perf_counter() - t_done < 300:
            guards = watchers(args.metrics_url) - watchers_before
            if guards >= args.elections:
                break
            await asyncio.sleep(0.1)
        t_guarded = time.perf_counter()
        # Keepalive streams open on the first renewal (after ttl/3): wait for that too.
        await asyncio.sleep(max(2.0, args.ttl / 3 + 1.0 - (t_guarded - t_done)))
        rss_held = status_kib("VmRSS")
        cpu0 = time.process_time()
        emit("idle_start")
        await asyncio.sleep(args.idle)
        cpu1 = time.process_time()
        emit(
            "idle_end",
            idle_seconds=args.idle,
            idle_cpu_seconds=cpu1 - cpu0,
            rss_start_kib=rss_start,
            rss_client_kib=rss_client,
            rss_held_kib=rss_held,
            rss_after_idle_kib=status_kib("VmRSS"),
            hwm_kib=status_kib("VmHWM"),
            sessions=len(sessions),
            elections=args.elections,
            leaders=leaders,
            session_seconds=t_sessions - t_start,
            campaign_seconds=t_done - t_sessions,
            total_seconds=t_done - t_start,
            still_leaders=sum(1 for e in elections if e.is_leader()),
            campaign_failures=dict(failures),
            guard_watches=guards,
            guards_settled_seconds=t_guarded - t_done,
        )
        t_close = time.perf_counter()
        await asyncio.gather(*(s.close() for s in sessions))
        emit("closed", close_seconds=time.perf_counter() - t_close)


if __name__ == "__main__":
    asyncio.run(main())
