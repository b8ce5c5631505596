"""Scenario 2, crash failover: SIGKILL the leader, time until the next candidate is elected.

Peers, interleaved trial by trial on one etcd, at each TTL:

- ``ours_cli``: ``etcd-elector campaign --ttl N`` processes;
- ``go_lock``: ``etcdctl lock --ttl N NAME`` (``etcdctl elect`` has a fixed 60 s TTL);
- ``py_etcd3``: python-etcd3 0.12 ``Lock(name, ttl=N)`` (its own virtual environment).

Failover is measured from just before the SIGKILL to the harness reading the next holder's
announcement; ``failover - TTL`` is reported too. The kill comes at a random moment within a
keepalive period, so the lease had between 2/3 of its TTL and all of it left.
"""

from __future__ import annotations

import asyncio
import random
import signal
from typing import Any

from harness.peers import PEERS
from harness.pool import KeyCounter, Pool
from harness.runner import Context, interleaved, log, scenario_main
from harness.stats import ratio, summarize

DEFAULT_PEERS = ["ours_cli", "go_lock", "py_etcd3"]
STANDBYS = 2


async def run(ctx: Context) -> dict[str, Any]:
    from etcd_elector.testing import EtcdCluster

    ctx.peers = ctx.peers or DEFAULT_PEERS
    skipped = ctx.skipped_peers()
    peers = [p for p in ctx.peers if p not in skipped]
    ttls = [2] if ctx.quick else [2, 5]
    trials = 1 if ctx.quick else 10
    samples: dict[str, dict[str, list[float]]] = {str(t): {p: [] for p in peers} for t in ttls}
    with EtcdCluster.start(1) as cluster:
        endpoint = cluster.endpoints[0]
        async with KeyCounter(endpoint) as counter:
            for ttl in ttls:
                pools = {
                    key: Pool(PEERS[key], f"failover-{ttl}-{key.replace('_', '-')}", endpoint, ttl)
                    for key in peers
                }
                try:
                    for pool in pools.values():
                        await pool.spawn(1)
                        await pool.wait_elected(30, 0)
                        await pool.spawn(STANDBYS)
                        await pool.wait_queued(counter)
                    log(f"failover ttl={ttl}: {trials} trials per peer")
                    for _trial, peer in interleaved(peers, trials):
                        pool = pools[peer]
                        if len(pool.waiting()) < STANDBYS:
                            await pool.spawn(STANDBYS - len(pool.waiting()))
                            await pool.wait_queued(counter)
                        await asyncio.sleep(0.3 + random.uniform(0, ttl / 3))
                        old = pool.leader
                        assert old is not None
                        since = len(pool.events)
                        t0 = old.signal(signal.SIGKILL)
                        line = await pool.wait_elected(ttl * 3 + 10, since)
                        samples[str(ttl)][peer].append(line.t - t0)
                        await old.stop()
                finally:
                    for pool in pools.values():
                        await pool.close()
    summary: dict[str, Any] = {}
    for ttl_key, by_peer in samples.items():
        ttl_s = float(ttl_key)
        summary[ttl_key] = {
            peer: {
                "failover": summarize(values),
                "minus_ttl": summarize(v - ttl_s for v in values),
            }
            for peer, values in by_peer.items()
        }
    ratios = {}
    for ttl_key, by_peer in summary.items():
        ours = by_peer.get("ours_cli", {}).get("failover", {}).get("p50")
        for peer in by_peer:
            if peer != "ours_cli":
                other = by_peer[peer]["failover"].get("p50")
                ratios[f"ttl {ttl_key}: ours_cli/{peer} p50"] = ratio(ours, other)
    return {
        "unit": "seconds",
        "ttls": ttls,
        "trials_per_peer": trials,
        "peers": {p: PEERS[p].label for p in peers},
        "skipped": skipped,
        "samples": samples,
        "summary": summary,
        "ratios": ratios,
    }


if __name__ == "__main__":
    scenario_main("failover", run)
