"""Scenario 6, steady-state cost on etcd: requests per second of an idle leader and of each
idle waiting candidate, from etcd's /metrics (gRPC messages received, by method).

For each peer in turn on one etcd: one candidate alone (the leader) over a window, then four
more waiting candidates over a second window; per candidate = (second - first) / 4. TTL 10 s
everywhere except ``etcdctl elect`` (fixed 60 s). gRPC HTTP/2 pings are not gRPC messages and
are not counted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from harness.etcd_metrics import metrics_delta, requests_by_method, scrape
from harness.peers import PEERS
from harness.pool import KeyCounter, Pool
from harness.runner import Context, log, scenario_main

DEFAULT_PEERS = ["ours_cli", "go_lock", "go_elect", "py_etcd3"]
WAITING = 4


async def window(url: str, seconds: float) -> dict[str, float]:
    before = scrape(url)
    await asyncio.sleep(seconds)
    after = scrape(url)
    delta = metrics_delta(before, after)
    elapsed = delta["_seconds"]
    rates = {k: v / elapsed for k, v in requests_by_method(delta).items()}
    rates["_watch_events"] = delta.get("etcd_debugging_mvcc_events_total", 0.0) / elapsed
    return rates


async def run(ctx: Context) -> dict[str, Any]:
    from etcd_elector.testing import EtcdCluster

    ctx.peers = ctx.peers or DEFAULT_PEERS
    skipped = ctx.skipped_peers()
    peers = [p for p in ctx.peers if p not in skipped]
    seconds = 1.0 if ctx.quick else 20.0
    settle = 0.5 if ctx.quick else 2.0
    out: dict[str, Any] = {}
    with EtcdCluster.start(1) as cluster:
        endpoint = cluster.endpoints[0]
        url = cluster.members[0].client_url
        async with KeyCounter(endpoint) as counter:
            baseline = await window(url, min(seconds, 5.0))
            for peer in peers:
                ttl = 60 if peer == "go_elect" else 10
                pool = Pool(PEERS[peer], f"steady-{peer.replace('_', '-')}", endpoint, ttl)
                try:
                    log(f"steady: {peer}, leader alone then +{WAITING} waiting, {seconds:g}s each")
                    await pool.spawn(1)
                    await pool.wait_elected(30, 0)
                    await asyncio.sleep(settle)
                    alone = await window(url, seconds)
                    await pool.spawn(WAITING)
                    await pool.wait_queued(counter)
                    await asyncio.sleep(settle)
                    crowd = await window(url, seconds)
                finally:
                    await pool.close()
                per_candidate = {
                    k: (crowd.get(k, 0.0) - alone.get(k, 0.0)) / WAITING
                    for k in set(alone) | set(crowd)
                }
                out[peer] = {
                    "ttl": ttl,
                    "leader_per_second": alone,
                    "leader_total": sum(v for k, v in alone.items() if not k.startswith("_")),
                    "waiting_candidate_per_second": per_candidate,
                    "waiting_candidate_total": sum(
                        v for k, v in per_candidate.items() if not k.startswith("_")
                    ),
                    "five_candidates_per_second": crowd,
                }
                await asyncio.sleep(1.0)
    return {
        "window_seconds": seconds,
        "waiting_candidates": WAITING,
        "baseline_per_second": baseline,
        "peers": {p: PEERS[p].label for p in peers},
        "skipped": skipped,
        "results": out,
    }


if __name__ == "__main__":
    scenario_main("steady", run)
