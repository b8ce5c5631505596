"""Randomized fault runs for shard groups: replica processes, a seeded nemesis, the checker.

    result = run_shard_chaos(ShardChaosSettings(duration=60, seed=7))
    print(result.summary()); assert result.ok

Replicas join, leave gracefully, crash (SIGKILL), pause (SIGSTOP), get cut off (a blackholing
proxy) and see etcd members killed and restarted. Every replica records, per shard, when it
believed it owned the shard and each fenced write; the election checker then runs once per
shard (:func:`check_history` on that shard's records), so "two owners of a shard at once" is
"two leaders at once" of that shard's history: overlaps, token order, stale writes, and an
owner within the bound after each fault healed. At the end, no key or lease may be left.

    python -m etcd_elector.testing._shard_chaos --duration 20m --seed 3 --members 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from etcd_elector import AsyncClient, _clock
from etcd_elector.shards import GroupKeys

from ._binary import etcd_version, find_etcd_binary
from ._chaos_leaks import find_leaks
from ._chaos_process import ChaosProcess
from ._checker import CheckReport, Violation, check_history
from ._cluster import EtcdCluster
from ._history import Record, RecordKind, dump_records

__all__ = ["SHARD_FAULTS", "ShardChaosResult", "ShardChaosSettings", "run_shard_chaos"]

GROUP = "chaos"
NAMESPACE = "/etcd-elector-shard-chaos"
ETCD_EXPIRY_CHECK = 0.5  # etcd revokes expired leases in a loop of about this period

REPLICA_FAULTS = ("join", "leave", "crash", "pause_short", "pause_long", "partition")
MEMBER_FAULTS = ("member_restart", "etcd_leader_kill")
SHARD_FAULTS = REPLICA_FAULTS + MEMBER_FAULTS
MIN_REPLICAS = 2


@dataclass(frozen=True)
class ShardChaosSettings:
    duration: float = 60.0
    seed: int = 1
    ttl: int = 2
    replicas: int = 3
    max_replicas: int = 5
    shards: int = 12
    members: int = 1
    faults: tuple[str, ...] = ()  # default: every fault that makes sense for ``members``
    write_every: float = 0.1  # seconds between one shard's fenced writes


@dataclass
class ShardChaosResult:
    settings: ShardChaosSettings
    reports: dict[str, CheckReport]
    extra: list[Violation] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    trials: int = 0
    elapsed: float = 0.0
    etcd: str = ""  # the etcd version the run used

    @property
    def violations(self) -> list[Violation]:
        found = list(self.extra)
        for shard, report in sorted(self.reports.items(), key=lambda kv: _natural(kv[0])):
            found += [Violation(v.kind, f"shard {shard}: {v.message}") for v in report.violations]
        return found

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, kind: str) -> int:
        return sum(v.kind == kind for v in self.violations)

    def summary(self) -> str:
        reports = self.reports.values()
        worst = max((r.worst_failover or 0.0 for r in reports), default=0.0)
        rows = [
            ("seed", str(self.settings.seed)),
            ("etcd", self.etcd),
            ("duration", f"{self.elapsed:.0f}s"),
            ("ttl", f"{self.settings.ttl}s"),
            ("shards / etcd members", f"{self.settings.shards} / {self.settings.members}"),
            ("trials", str(self.trials)),
            ("faults", ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"),
            ("ownerships", str(sum(len(r.intervals) for r in reports))),
            (
                "fenced writes committed / refused",
                f"{sum(r.writes_committed for r in reports)} / "
                f"{sum(r.writes_refused for r in reports)}",
            ),
            ("double ownerships", str(self.count("overlap"))),
            ("stale fenced writes", str(self.count("stale_write"))),
            ("token order violations", str(self.count("token"))),
            ("slow recoveries", str(self.count("failover"))),
            ("leaks", str(self.count("leak"))),
            ("etcd members disagreeing", str(self.count("etcd_inconsistent"))),
            ("worst gap between owners", f"{worst:.3f}s"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines += [f"VIOLATION [{v.kind}] {v.message}" for v in self.violations[:50]]
        if not self.ok:
            lines.append(f"replay with: --seed {self.settings.seed}")
        return "\n".join(lines)


def _natural(shard: str) -> tuple[int, str]:
    return (int(shard), "") if shard.isdigit() else (1 << 62, shard)


def _replica(
    ident: str,
    cluster: EtcdCluster,
    settings: ShardChaosSettings,
    sink: Callable[[str], None],
    log_dir: str,
) -> ChaosProcess:
    """One replica process (``_shard_replica``); its logs are kept when the checker finds a
    violation, so it logs at info."""
    args = ["--group", GROUP, "--namespace", NAMESPACE, "--ttl", str(settings.ttl)]
    args += ["--shards", str(settings.shards), "--id", ident, "--log-level", "info"]
    args += ["--write-every", str(settings.write_every)]
    module = "etcd_elector.testing._shard_replica"
    return ChaosProcess(ident, module, args, cluster.endpoints, sink, log_dir)


class _Run:
    def __init__(self, settings: ShardChaosSettings, cluster: EtcdCluster) -> None:
        self.settings = settings
        self.cluster = cluster
        self.rng = random.Random(settings.seed)
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.extra: list[Violation] = []
        self.next_id = 0
        self.replicas: list[ChaosProcess] = []
        self.log_dir = tempfile.mkdtemp(prefix="etcd-elector-shard-chaos-")

    def sink(self, line: str) -> None:
        with contextlib.suppress(ValueError, TypeError):
            record = Record.from_json(line)
            with self.lock:
                self.records.append(record)

    def note(self, kind: str, **fields: object) -> None:
        with self.lock:
            self.records.append(Record(kind, _clock.now(), **fields))  # type: ignore[arg-type]

    def spawn(self) -> ChaosProcess:
        self.next_id += 1
        replica = _replica(f"r{self.next_id}", self.cluster, self.settings, self.sink, self.log_dir)
        self.replicas.append(replica)
        return replica

    def live(self) -> list[ChaosProcess]:
        return [r for r in self.replicas if r.alive]

    def owners(self) -> dict[str, str]:
        """Who currently believes it owns each shard, from the records so far."""
        with self.lock:
            records = sorted(self.records, key=lambda r: r.time)
        owner: dict[str, str] = {}
        for record in records:
            if record.kind == RecordKind.ELECTED:
                owner[record.detail] = record.candidate
            elif record.kind == RecordKind.LOST and owner.get(record.detail) == record.candidate:
                del owner[record.detail]
            elif record.kind in (RecordKind.KILLED, RecordKind.EXITED):
                owner = {s: c for s, c in owner.items() if c != record.candidate}
        return owner

    def wait_all_owned(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.owners()) == self.settings.shards:
                return True
            time.sleep(0.05)
        return False


def run_shard_chaos(
    settings: ShardChaosSettings, progress: Callable[[str], None] = lambda _: None
) -> ShardChaosResult:
    """Run one seeded fault schedule for ``settings.duration`` seconds and check it."""
    faults = settings.faults or (SHARD_FAULTS if settings.members >= 3 else REPLICA_FAULTS)
    ttl = settings.ttl
    bound = ttl + ETCD_EXPIRY_CHECK + 1.5  # expiry, the sweep, a claim's round trips
    trials = 0
    began = time.monotonic()
    with EtcdCluster.start(settings.members) as cluster:
        run = _Run(settings, cluster)
        try:
            for _ in range(settings.replicas):
                run.spawn()
            if not run.wait_all_owned(30):
                run.extra.append(Violation("failover", "the shards were never all owned"))
            while time.monotonic() - began < settings.duration:
                trials += 1
                fault = _choose(run, faults)
                run.faults[fault] += 1
                progress(f"trial {trials}: {fault} ({len(run.live())} replicas)")
                member_fault = fault in MEMBER_FAULTS
                _inject(run, fault)
                run.note(RecordKind.HEALED, until=(2 * ttl + bound) if member_fault else bound)
                if not run.wait_all_owned(4 * ttl + 10):
                    progress("  not every shard had an owner after the fault healed")
                time.sleep(run.rng.uniform(0, ttl / 2))
        finally:
            # Also when a fault or the runner itself fails: no replica outlives the run.
            for replica in run.replicas:
                replica.finish(timeout=15)
        leaks = find_leaks(cluster.endpoint_string, GroupKeys(NAMESPACE, GROUP).base, run.records)
        run.extra.extend(asyncio.run(leaks))
        if settings.members > 1:
            run.extra.extend(asyncio.run(_divergence(cluster.endpoints)))
    reports = _check(run.records, settings.shards)
    version = ".".join(map(str, etcd_version(find_etcd_binary())))
    result = ShardChaosResult(
        settings, reports, run.extra, run.faults, trials, time.monotonic() - began, version
    )
    if result.ok:
        shutil.rmtree(run.log_dir, ignore_errors=True)
    else:
        with open(os.path.join(run.log_dir, "history.jsonl"), "w") as history:
            history.write(dump_records(sorted(run.records, key=lambda r: r.time)))
        progress(f"replica logs and the history kept in {run.log_dir}")
    return result


def _check(records: list[Record], shards: int) -> dict[str, CheckReport]:
    """Run the election checker on each shard's own history."""
    shared = [
        r for r in records if r.kind not in (RecordKind.ELECTED, RecordKind.LOST, RecordKind.WRITE)
    ]
    by_shard: dict[str, list[Record]] = {str(s): [] for s in range(shards)}
    for record in records:
        if record.kind in (RecordKind.ELECTED, RecordKind.LOST, RecordKind.WRITE):
            by_shard.setdefault(record.detail, []).append(record)
    return {shard: check_history([*own, *shared]) for shard, own in by_shard.items()}


def _choose(run: _Run, faults: tuple[str, ...]) -> str:
    fault = run.rng.choice(faults)
    live = len(run.live())
    if fault in ("leave", "crash") and live <= MIN_REPLICAS:
        return "join" if "join" in faults else fault
    if fault == "join" and live >= run.settings.max_replicas:
        return "leave" if "leave" in faults else fault
    return fault


def _inject(run: _Run, fault: str) -> None:
    ttl = run.settings.ttl
    rng = run.rng
    cluster = run.cluster
    live = run.live()
    target = rng.choice(live)
    run.note(RecordKind.FAULT, detail=f"{fault} {target.ident}")
    if fault == "join":
        run.spawn()
    elif fault == "leave":
        target.finish(timeout=15)
    elif fault == "crash":
        target.signal(signal.SIGKILL)
        target.process.wait()
        run.note(RecordKind.KILLED, candidate=target.ident)
    elif fault in ("pause_short", "pause_long"):
        hold = rng.uniform(0.1, ttl / 3) if fault == "pause_short" else rng.uniform(ttl, 2 * ttl)
        target.signal(signal.SIGSTOP)
        target.paused = True
        time.sleep(hold)
        target.signal(signal.SIGCONT)
        target.paused = False
    elif fault == "partition":
        target.each_proxy(lambda p: p.blackhole())
        time.sleep(rng.uniform(ttl / 2, 2 * ttl))
        target.each_proxy(lambda p: p.heal())
    elif fault == "member_restart":
        member = rng.choice(cluster.members)
        member.kill()
        time.sleep(rng.uniform(0.1, ttl))
        member.restart()
    elif fault == "etcd_leader_kill":
        member = cluster.wait_for_leader(10)
        member.kill()
        time.sleep(rng.uniform(0.1, ttl))
        member.restart()


async def _divergence(endpoints: list[str]) -> list[Violation]:
    """Whether etcd's members hold the same data once quiet. They must; etcd 3.5.0 to 3.5.2
    can diverge after a member is killed under load (etcd-io/etcd#13766), and then no client
    can be safe: a history checked against such a cluster says nothing about the client."""
    views: dict[str, tuple[int, tuple[tuple[bytes, int, int, bytes], ...]]] = {}
    for _ in range(50):  # bounded: until every member reports the same revision
        views = {}
        for endpoint in endpoints:
            with contextlib.suppress(Exception):
                async with AsyncClient(endpoint, timeout=2.0) as client:
                    read = await client.get_prefix(NAMESPACE, serializable=True)
                    content = tuple(
                        (kv.key, kv.create_revision, kv.mod_revision, kv.value) for kv in read.kvs
                    )
                    views[endpoint] = (read.revision, content)
        if len(views) == len(endpoints) and len({v[0] for v in views.values()}) == 1:
            break
        await asyncio.sleep(0.2)
    if len({v[1] for v in views.values()}) <= 1 and len({v[0] for v in views.values()}) <= 1:
        return []
    seen = ", ".join(f"{e} at revision {v[0]}" for e, v in views.items())
    return [
        Violation(
            "etcd_inconsistent",
            f"etcd's members disagree about the data ({seen}); etcd 3.5.0-3.5.2 can diverge "
            "after a member is killed under load (etcd-io/etcd#13766): use etcd 3.4.22+ or "
            "3.5.3+ (ETCD_BINARY)",
        )
    ]


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: use 90s, 20m or 1h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak a shard group under seeded faults.")
    parser.add_argument("--duration", type=_duration, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ttl", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--shards", type=int, default=12)
    parser.add_argument("--members", type=int, choices=(1, 3), default=1)
    args = parser.parse_args(argv)
    settings = ShardChaosSettings(
        duration=args.duration,
        seed=args.seed,
        ttl=args.ttl,
        replicas=args.replicas,
        shards=args.shards,
        members=args.members,
    )
    result = run_shard_chaos(settings, progress=lambda line: print(line, file=sys.stderr))
    print(result.summary())
    return 0 if result.ok else 9


if __name__ == "__main__":
    sys.exit(main())
