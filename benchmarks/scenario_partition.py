"""Scenario 3, partition: blackhole the leader's connection to etcd.

Every candidate reaches etcd through its own ``FaultProxy``; the leader's proxy is switched to
blackhole (nothing forwarded either way, nothing closed). Measured from that moment:

- ``new_leader``: until the standby announces it leads (etcd expired the old lease);
- ``known_lost``: until the old leader says it is no longer leader, if it ever does
  (ours: the ``lost`` event; etcdctl lock: its ``session expired`` error; python-etcd3: a
  failed refresh);
- ``overlap`` = known_lost - new_leader: positive means two processes believed they led at
  once. For ours the self-reported end of belief (``ended_at``, the local lease deadline) is
  compared with the new leader's self-reported election too.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from harness.children import ChildExited, Line
from harness.peers import PEERS
from harness.pool import KeyCounter, Pool
from harness.runner import Context, interleaved, log, scenario_main
from harness.stats import summarize

DEFAULT_PEERS = ["ours_cli", "go_lock", "py_etcd3"]


async def one_trial(
    peer: str, endpoint: str, counter: KeyCounter, ttl: int, trial: int
) -> dict[str, Any]:
    from etcd_elector.testing import FaultProxy

    proxies = [FaultProxy.start(endpoint), FaultProxy.start(endpoint)]
    served = iter(proxies)
    pool = Pool(
        PEERS[peer],
        f"partition-{peer.replace('_', '-')}-{trial}",
        lambda: next(served).endpoint,
        ttl,
    )
    record: dict[str, Any] = {"trial": trial}
    try:
        (first,) = await pool.spawn(1)
        await pool.wait_elected(30, 0)
        (second,) = await pool.spawn(1)
        await pool.wait_queued(counter)
        await asyncio.sleep(0.3 + random.uniform(0, ttl / 3))
        since = len(pool.events)
        t0 = time.time()
        await asyncio.to_thread(proxies[0].blackhole)
        limit = ttl * 3 + 5
        new_task = asyncio.ensure_future(pool.wait_elected(limit, since))

        async def lost() -> Line | None:
            try:
                return await first.wait_line(PEERS[peer].is_lost, limit, since=len(first.lines))
            except (TimeoutError, ChildExited):
                return None

        lost_task = asyncio.ensure_future(lost())
        new = await new_task
        gone = await lost_task
        if new.child is not second:
            raise RuntimeError("the partitioned leader was elected again")
        record["new_leader"] = new.t - t0
        record["known_lost"] = None if gone is None else gone.t - t0
        record["overlap"] = None if gone is None else gone.t - new.t
        record["old_exited"] = None if first.exited_at is None else first.exited_at - t0
        if gone is not None and gone.json is not None and new.json is not None:
            ended = gone.json.get("ended_at")
            elected = new.json.get("elected_at") or new.json.get("time")
            if ended is not None and elected is not None:
                record["overlap_self_reported"] = float(ended) - float(elected)
                record["known_lost_self_reported"] = float(ended) - t0
        if gone is not None:
            record["lost_line"] = gone.text[:300]
        record["waited"] = limit
    finally:
        for proxy in proxies:
            await asyncio.to_thread(proxy.heal)
        await pool.close()
        for proxy in proxies:
            await asyncio.to_thread(proxy.close)
    return record


async def run(ctx: Context) -> dict[str, Any]:
    from etcd_elector.testing import EtcdCluster

    ctx.peers = ctx.peers or DEFAULT_PEERS
    skipped = ctx.skipped_peers()
    peers = [p for p in ctx.peers if p not in skipped]
    ttl = 2
    trials = 1 if ctx.quick else 8
    records: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    with EtcdCluster.start(1) as cluster:
        endpoint = cluster.endpoints[0]
        async with KeyCounter(endpoint) as counter:
            log(f"partition ttl={ttl}: {trials} trials per peer")
            for trial, peer in interleaved(peers, trials):
                records[peer].append(await one_trial(peer, endpoint, counter, ttl, trial))
    summary: dict[str, Any] = {}
    for peer, rows in records.items():
        reported = [r for r in rows if r["known_lost"] is not None]
        summary[peer] = {
            "new_leader": summarize(r["new_leader"] for r in rows),
            "known_lost": summarize(r["known_lost"] for r in reported),
            "overlap": summarize(r["overlap"] for r in reported),
            "overlap_self_reported": summarize(
                r["overlap_self_reported"] for r in rows if "overlap_self_reported" in r
            ),
            "trials": len(rows),
            "loss_reported": len(reported),
            "overlapping_trials": sum(1 for r in reported if r["overlap"] > 0),
        }
    return {
        "unit": "seconds",
        "ttl": ttl,
        "trials_per_peer": trials,
        "peers": {p: PEERS[p].label for p in peers},
        "skipped": skipped,
        "records": records,
        "summary": summary,
    }


if __name__ == "__main__":
    scenario_main("partition", run)
