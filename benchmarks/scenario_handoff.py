"""Scenario 1, graceful handoff: the leader resigns, the next candidate is elected.

Peers, interleaved trial by trial on one etcd:

- ``ours_cli``: ``etcd-elector campaign --json`` processes; SIGTERM makes the leader resign
  (and exit); measured from the signal to the next process printing ``elected``.
- ``go_elect``: ``etcdctl elect NAME PROPOSAL`` processes; SIGINT makes the leader resign;
  measured from the signal to the next process printing its proposal.
- ``ours_inproc``: candidates as asyncio tasks in one process (``workers/inproc_candidates.py``);
  measured in-process from ``resign()`` to the next ``campaign()`` returning (no process exit,
  no pipe).

Times are those at which the harness read the lines (the same for every process peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

from harness.children import Child, ChildExited
from harness.layout import WORKERS
from harness.peers import PEERS
from harness.pool import KeyCounter, Pool
from harness.runner import Context, interleaved, log, scenario_main
from harness.stats import ratio, summarize

PROCESS_PEERS = ["ours_cli", "go_elect"]
LOW_WATER = 2  # refill the queue when fewer candidates wait than this
HIGH_WATER = 5  # ... up to this many (spawned together, outside any measurement)


async def run(ctx: Context) -> dict[str, Any]:
    from etcd_elector.testing import EtcdCluster

    handoffs = 4 if ctx.quick else 200
    peers = [*PROCESS_PEERS, "ours_inproc"]
    samples: dict[str, list[float]] = {p: [] for p in peers}
    parts: dict[str, dict[str, list[float]]] = {p: {"resign": [], "successor": []} for p in peers}
    self_reported: list[float] = []
    with EtcdCluster.start(1) as cluster:
        endpoint = cluster.endpoints[0]
        async with KeyCounter(endpoint) as counter:
            pools = {
                key: Pool(PEERS[key], f"handoff-{key.replace('_', '-')}", endpoint, ttl=10)
                for key in PROCESS_PEERS
            }
            inproc = Child(
                "inproc",
                [
                    sys.executable,
                    str(WORKERS / "inproc_candidates.py"),
                    "--endpoint",
                    endpoint,
                    "--election",
                    "handoff-inproc",
                    "--candidates",
                    "4",
                ],
                stdin=True,
            )
            # An observer watch per election stamps each DELETE of a candidate key: it splits
            # a handoff into the old leader's part (signal -> key deleted) and the
            # successor's part (deletion -> it announces itself).
            deletes: dict[str, list[float]] = {key: [] for key in pools}

            async def observe(key: str, prefix: bytes) -> None:
                async with counter.client.watch(prefix, prefix=True, no_put=True) as watch:
                    async for batch in watch:
                        deletes[key].extend(time.time() for _ in batch.events)

            observers = [
                asyncio.create_task(observe(key, pool.peer.queue_prefix(pool.election) or b""))
                for key, pool in pools.items()
            ]
            try:
                for pool in pools.values():
                    await pool.spawn(1)
                    await pool.wait_elected(30, 0)
                    await pool.spawn(HIGH_WATER)
                    await pool.wait_queued(counter)
                await inproc.start()
                await inproc.wait_line(lambda x: x.json is not None, 60)
                log(f"handoff: {handoffs} handoffs per peer, interleaved")
                last_logged = 0
                for trial, peer in interleaved(peers, handoffs):
                    if peer == "ours_inproc":
                        since = len(inproc.lines)
                        await inproc.send("handoff")
                        line = await inproc.wait_line(
                            lambda x: (x.json or {}).get("event") == "handoff", 30, since
                        )
                        samples[peer].append(float(line.json["seconds"]))  # type: ignore[index]
                        parts[peer]["resign"].append(float(line.json["resign_seconds"]))  # type: ignore[index]
                        parts[peer]["successor"].append(
                            float(line.json["seconds"]) - float(line.json["resign_seconds"])  # type: ignore[index]
                        )
                    else:
                        pool = pools[peer]
                        if len(pool.waiting()) < LOW_WATER:
                            await pool.spawn(HIGH_WATER - len(pool.waiting()))
                            await pool.wait_queued(counter)
                            await asyncio.sleep(0.3)
                        old = pool.leader
                        assert old is not None
                        since = len(pool.events)
                        seen = len(deletes[peer])
                        t0 = old.signal(pool.peer.resign_signal)
                        line = await pool.wait_elected(15, since)
                        samples[peer].append(line.t - t0)
                        for _ in range(50):
                            if len(deletes[peer]) > seen:
                                break
                            await asyncio.sleep(0.01)
                        if len(deletes[peer]) > seen:
                            deleted_at = deletes[peer][seen]
                            parts[peer]["resign"].append(deleted_at - t0)
                            parts[peer]["successor"].append(line.t - deleted_at)
                        data = line.json
                        if data is not None and "time" in data:
                            self_reported.append(float(data["time"]) - t0)
                        # Let the old process finish exiting before the next measurement.
                        with contextlib.suppress(ChildExited, TimeoutError):
                            await old.wait_line(lambda x: False, 10)
                        await old.stop()
                    await asyncio.sleep(0.05)
                    if trial % 50 == 0 and trial and trial != last_logged:
                        last_logged = trial
                        log(f"handoff: {trial}/{handoffs}")
            finally:
                if inproc.running:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(inproc.send("quit"), 2)
                await inproc.stop()
                for task in observers:
                    task.cancel()
                await asyncio.gather(*observers, return_exceptions=True)
                for pool in pools.values():
                    await pool.close()
    summaries = {p: summarize(v) for p, v in samples.items()}
    return {
        "unit": "seconds",
        "handoffs_per_peer": handoffs,
        "peers": {
            "ours_cli": PEERS["ours_cli"].label,
            "go_elect": PEERS["go_elect"].label,
            "ours_inproc": "etcd-elector AsyncElection, candidates as asyncio tasks (one process)",
        },
        "samples": samples,
        "ours_cli_self_reported": self_reported,
        "parts": parts,
        "parts_summary": {p: {k: summarize(v) for k, v in d.items()} for p, d in parts.items()},
        "summary": summaries,
        "ratios": {
            "ours_cli/go_elect p50": ratio(
                summaries["ours_cli"].get("p50"), summaries["go_elect"].get("p50")
            ),
            "ours_cli/go_elect p99": ratio(
                summaries["ours_cli"].get("p99"), summaries["go_elect"].get("p99")
            ),
            "ours_inproc/go_elect p50": ratio(
                summaries["ours_inproc"].get("p50"), summaries["go_elect"].get("p50")
            ),
        },
    }


if __name__ == "__main__":
    scenario_main("handoff", run)
