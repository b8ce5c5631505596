"""Scenario 7, shard groups: balance and movement after joins, graceful leaves and crashes,
and the idle cost per replica, with R replica processes and P shards on one etcd.

Each replica is ``python -m etcd_elector.testing._shard_replica`` (no writes), printing when
it started and stopped believing it owned each shard, on the shared clock (CLOCK_BOOTTIME).
For each (R, P): R - 1 replicas settle, then the R-th joins (shards moved, time to balance),
one leaves gracefully (time until its shards are owned elsewhere), one rejoins, one is
SIGKILLed (per shard: kill to new owner; time to balance), and an idle window reads etcd's
/metrics (gRPC messages received, watchers) and its lease list.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
import time
from collections import Counter
from typing import Any

from harness.children import Child, Line
from harness.etcd_metrics import metrics_delta, requests_by_method, scrape
from harness.runner import Context, log, scenario_main
from harness.stats import summarize

from etcd_elector import AsyncClient

TTL = 3
NAMESPACE = "/bench-shards"
FULL = [(3, 64), (3, 1000), (5, 64), (5, 1000), (10, 64), (10, 1000)]
QUICK = [(3, 64)]


def now() -> float:
    """The clock the replicas stamp their lines with: etcd_elector's, CLOCK_BOOTTIME."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Group:
    """R replica processes of one group, and who believes it owns what, from their lines."""

    def __init__(self, name: str, endpoint: str, shards: int) -> None:
        self.name = name
        self.endpoint = endpoint
        self.shards = shards
        self.replicas: dict[str, Child] = {}
        self.departed: set[str] = set()  # told to leave or killed: no longer counted
        self.owner: dict[str, str] = {}  # shard -> replica
        self.acquired: list[tuple[float, str, str]] = []  # (time, shard, replica)
        self.joined: dict[str, float] = {}  # replica -> when its member key was written
        self.changed = asyncio.Event()
        self._next = 0

    def _on_line(self, line: Line) -> None:
        record = line.json
        if record is None or line.child is None:
            return
        who, shard = line.child.name, str(record.get("detail", ""))
        if record.get("kind") == "joined":
            self.joined[who] = float(record["time"])
        elif record.get("kind") == "elected":
            self.owner[shard] = who
            self.acquired.append((float(record["time"]), shard, who))
        elif record.get("kind") == "lost" and self.owner.get(shard) == who:
            del self.owner[shard]
        self.changed.set()

    async def spawn(self) -> Child:
        self._next += 1
        name = f"r{self._next}"
        argv = [
            sys.executable, "-m", "etcd_elector.testing._shard_replica",
            "--endpoints", self.endpoint, "--group", self.name, "--namespace", NAMESPACE,
            "--ttl", str(TTL), "--shards", str(self.shards), "--id", name,
            "--write-every", "0", "--drain", "1", "--library-defaults",
        ]  # fmt: skip
        child = await Child(name, argv, on_line=self._on_line).start()
        self.replicas[name] = child
        return child

    def live(self) -> list[str]:
        return [n for n, c in self.replicas.items() if c.running and n not in self.departed]

    def depart(self, name: str, signum: int) -> None:
        self.departed.add(name)
        self.replicas[name].signal(signum)

    def counts(self) -> list[int]:
        tally = Counter(self.owner.values())
        return [tally[n] for n in self.live()]

    def balanced(self) -> bool:
        counts = self.counts()
        return len(self.owner) == self.shards and bool(counts) and max(counts) - min(counts) <= 1

    async def until(self, condition: Any, timeout: float, what: str) -> float:
        """Wait (on the replicas' lines) until ``condition()``; the clock time it held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: not {what} within {timeout:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.1))
        return now()

    async def close(self) -> None:
        """SIGTERM (a graceful leave) every replica; SIGKILL what is left after 15 s."""
        for child in self.replicas.values():
            child.signal(signal.SIGTERM)
        for child in self.replicas.values():
            with contextlib.suppress(TimeoutError, RuntimeError):
                await child.wait_line(lambda line: '"exited"' in line.text, 15)
            await child.stop(timeout=10)


async def one_config(
    endpoint: str, url: str, replicas: int, shards: int, quick: bool
) -> dict[str, Any]:
    group = Group(f"g{replicas}x{shards}", endpoint, shards)
    settle_timeout = 30 + shards / 20
    out: dict[str, Any] = {"replicas": replicas, "shards": shards, "ttl": TTL}
    try:
        for _ in range(replicas - 1):
            await group.spawn()
        await group.until(group.balanced, settle_timeout, "balanced before the join")

        # Join: what moves, and how long from its membership until balanced again.
        before = dict(group.owner)
        newcomer = await group.spawn()
        done = await group.until(group.balanced, settle_timeout, "balanced after the join")
        mark = group.joined[newcomer.name]
        moved = sum(1 for s, o in group.owner.items() if before.get(s) != o)
        acquisitions = sum(1 for t, _, _ in group.acquired if t >= mark)
        out["join"] = {
            "moved": moved,
            "acquisitions": acquisitions,
            "newcomer_owns": Counter(group.owner.values())[newcomer.name],
            "bound_moves": math.ceil(shards / replicas) + 1,
            "seconds_to_balance": done - mark,
        }

        # Idle cost: R replicas, settled, nothing changing.
        out["idle"] = await idle_cost(endpoint, url, group, 2.0 if quick else 10.0)

        # Graceful leave: until all the leaver's shards are owned by others.
        leaver = group.live()[0]
        theirs = {s for s, o in group.owner.items() if o == leaver}
        before = dict(group.owner)
        mark = now()
        group.depart(leaver, signal.SIGTERM)
        moved_at = await group.until(
            lambda: all(group.owner.get(s) not in (None, leaver) for s in theirs),
            settle_timeout,
            "the leaver's shards moved",
        )
        done = await group.until(group.balanced, settle_timeout, "balanced after the leave")
        out["leave"] = {
            "leaver_owned": len(theirs),
            "moved_others": sum(
                1 for s, o in group.owner.items() if s not in theirs and before.get(s) != o
            ),
            "seconds_to_move": moved_at - mark,
            "seconds_to_balance": done - mark,
        }
        await group.spawn()
        await group.until(group.balanced, settle_timeout, "balanced after the rejoin")

        # Crashes: per shard of the dead replica, kill to the new owner's acquisition.
        crashes: list[dict[str, Any]] = []
        for _ in range(1 if quick else 2):
            victim = group.live()[-1]
            theirs = {s for s, o in group.owner.items() if o == victim}
            before = dict(group.owner)
            mark = now()
            group.depart(victim, signal.SIGKILL)
            group.owner = {s: o for s, o in group.owner.items() if o != victim}
            await group.until(
                lambda dead=theirs: all(s in group.owner for s in dead), settle_timeout, "moved"
            )
            done = await group.until(group.balanced, settle_timeout, "balanced after the crash")
            first_after = {}
            for t, shard, _ in group.acquired:
                if t >= mark and shard in theirs and shard not in first_after:
                    first_after[shard] = t - mark
            crashes.append(
                {
                    "victim_owned": len(theirs),
                    "moved_others": sum(
                        1 for s, o in group.owner.items() if s not in theirs and before.get(s) != o
                    ),
                    "reassign_seconds": sorted(first_after.values()),
                    "seconds_to_balance": done - mark,
                }
            )
            await group.spawn()
            await group.until(group.balanced, settle_timeout, "balanced after the replacement")
        out["crashes"] = crashes
        reassign: list[float] = [t for c in crashes for t in c["reassign_seconds"]]
        out["crash_reassign"] = summarize(reassign)
    finally:
        await group.close()
    return out


async def idle_cost(endpoint: str, url: str, group: Group, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(min(seconds, 2.0))  # let the last claims' answers drain
    before = scrape(url)
    await asyncio.sleep(seconds)
    after = scrape(url)
    delta = metrics_delta(before, after)
    rates = {k: v / delta["_seconds"] for k, v in requests_by_method(delta).items()}
    live = len(group.live())
    async with AsyncClient(endpoint) as client:
        keys = await client.get_prefix(f"{NAMESPACE}/#shards/{group.name}/")
        leases = {kv.lease for kv in keys.kvs}
    return {
        "window_seconds": delta["_seconds"],
        "replicas": live,
        "requests_per_second_per_replica": sum(rates.values()) / live,
        "by_method_per_replica": {k: v / live for k, v in rates.items()},
        "watchers_per_replica": delta.get("etcd_debugging_mvcc_watcher_total", 0.0) / live,
        "watch_streams_per_replica": delta.get("etcd_debugging_mvcc_watch_stream_total", 0.0)
        / live,
        "leases_holding_group_keys": len(leases),
    }


async def run(ctx: Context) -> dict[str, Any]:
    from etcd_elector.testing import EtcdCluster

    configs = QUICK if ctx.quick else FULL
    results = []
    for replicas, shards in configs:
        # A fresh etcd per configuration: the watcher gauge then counts this group alone.
        with EtcdCluster.start(1) as cluster:
            log(f"shards: R={replicas} P={shards}")
            results.append(
                await one_config(
                    cluster.endpoints[0], cluster.members[0].client_url, replicas, shards, ctx.quick
                )
            )
    return {"ttl": TTL, "configs": results}


if __name__ == "__main__":
    scenario_main("shards", run)
