"""Randomized fault runs: real candidate processes, a seeded nemesis, and the checker.

    result = run_chaos(ChaosSettings(duration=60, seed=7))
    print(result.summary()); assert result.report.ok

Each trial injects one fault from the seeded random schedule (every fault once, in a shuffled
order, before any comes again), holds it, heals it, records ``healed`` with the recovery bound
the settings imply (:func:`recovery_bound`), and waits for a leader before the next. At the
end every candidate exits cleanly and etcd is asked whether any lease or key leaked.

Planned moves are mixed in as faults of their own: a handoff request to a chosen standby or
to the next in line, a candidate of higher priority that joins (and later leaves), and a pause
held a moment then resumed. The checker then also holds that the work of a term ended by a
move had stopped before the next term began.

With three etcd members the faults include peer partitions: the member that the leading
candidate talks to, or the one a standby talks to, is cut off from the other members (the
candidates' own connections stay up, so they see a member without a raft leader).

Data-loss faults make etcd's history go back: ``wipe`` (a one-member etcd started again on an
empty data dir, same cluster id) and ``restore_old_snapshot`` (every member restored from a
backup taken a fault cycle earlier, with a new cluster id). Their repair is the operator's
remedy from docs/operations.md: once every candidate has reported the loss, the revision is
moved past the highest token any of them saw (writes to a scratch key, which etcd 3.5.1 needs
in place of ``--bump-revision``), with the candidates cut off from etcd meanwhile, as the
docs' "before candidates run"; only then is the fault healed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from etcd_elector import AsyncClient, _clock
from etcd_elector._errors import ConfigurationError

from ._chaos_leaks import find_leaks
from ._chaos_process import ChaosProcess
from ._chaos_repair import MIN_LOST_REVISIONS, Backups, Repair, bump_revision, revision_of
from ._checker import CheckReport, FaultKind, Violation, check_history, recovery_bound
from ._cluster import EtcdCluster
from ._history import Record, RecordKind
from ._losses import LossLedger

__all__ = [
    "DATA_LOSS_FAULTS",
    "FAULTS",
    "MOVE_FAULTS",
    "PEER_FAULTS",
    "ChaosResult",
    "ChaosSettings",
    "chosen_faults",
    "run_chaos",
]

ELECTION = "chaos"
NAMESPACE = "/etcd-elector-chaos"

# Faults on candidates, and (needing a cluster to stay meaningful) on etcd members.
CANDIDATE_FAULTS = ("kill", "pause_short", "pause_long", "blackhole", "drop", "latency", "compact")
MEMBER_FAULTS = ("member_restart", "etcd_leader_kill", "quorum_loss")
# The member the leader's (or a standby's) client uses is cut off from its peers.
PEER_FAULTS = ("partition_leader_member", "partition_standby_member")
# etcd's history goes back: its data dir wiped (one member only), or an older backup restored.
DATA_LOSS_FAULTS = ("wipe", "restore_old_snapshot")
# Planned moves, asked for the way an operator asks (through etcd, as `handoff` and `pause`).
MOVE_FAULTS = ("handoff", "handoff_next", "priority_join", "pause")
FAULTS = CANDIDATE_FAULTS + MEMBER_FAULTS + PEER_FAULTS + DATA_LOSS_FAULTS + MOVE_FAULTS
PREFERRED = 5  # the priority of a candidate that joins to take over
# What the checker finds when tokens or revisions go back, or a loss goes unreported.
HISTORY_VIOLATIONS = ("token", "reused_revision", "history_lost")
# Where the repair writes to move etcd's revision (outside the election's prefix).
BUMP_KEY = f"{NAMESPACE}/revision-bump"


def fault_kind(fault: str) -> FaultKind:
    """Whether ``fault`` can cost etcd its raft leader (and so restart every lease), or
    its history."""
    if fault in DATA_LOSS_FAULTS:
        return "history"
    return "etcd" if fault in MEMBER_FAULTS + PEER_FAULTS else "candidate"


@dataclass(frozen=True)
class ChaosSettings:
    duration: float = 60.0
    seed: int = 1
    ttl: int = 2
    candidates: int = 3
    members: int = 1
    faults: tuple[str, ...] = ()  # default: every fault that makes sense for ``members``
    # Trials to run however long they take, then go on until ``duration`` is over: a short
    # run covers the faults it names (each once before any twice) on a slow machine too.
    min_trials: int = 0


@dataclass
class ChaosResult:
    settings: ChaosSettings
    report: CheckReport
    faults: Counter[str] = field(default_factory=Counter)
    trials: int = 0
    repairs: list[Repair] = field(default_factory=list)

    def summary(self) -> str:
        report = self.report
        worst = report.worst_failover
        longest = max(self.repairs, key=lambda r: r.seconds, default=None)
        across = report.worst_repair_failover
        rows = [
            ("seed", str(self.settings.seed)),
            ("ttl", f"{self.settings.ttl}s"),
            ("candidates / etcd members", f"{self.settings.candidates} / {self.settings.members}"),
            ("trials", str(self.trials)),
            ("faults", ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"),
            ("terms", str(len(report.intervals))),
            (
                "fenced writes committed / refused",
                f"{report.writes_committed} / {report.writes_refused}",
            ),
            ("overlaps", str(sum(v.kind == "overlap" for v in report.violations))),
            ("stale writes", str(sum(v.kind == "stale_write" for v in report.violations))),
            (
                "other violations",
                str(
                    sum(
                        v.kind not in ("overlap", "stale_write", *HISTORY_VIOLATIONS)
                        for v in report.violations
                    )
                ),
            ),
            ("worst failover", f"{worst:.3f}s" if worst is not None else "n/a"),
            (
                "etcd data losses / reports",
                f"{report.data_losses} / {report.loss_reports} from candidates",
            ),
            ("regressions after a report", str(report.regressions_reported)),
            (
                "token / revision / loss violations",
                str(sum(v.kind in HISTORY_VIOLATIONS for v in report.violations)),
            ),
            ("longest repair", longest.describe() if longest is not None else "n/a"),
            ("worst failover across a repair", f"{across:.3f}s" if across is not None else "n/a"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines += [f"VIOLATION [{v.kind}] {v.message}" for v in report.violations]
        if report.violations:
            lines.append(f"replay with: --seed {self.settings.seed}")
        return "\n".join(lines)


def _candidate(
    ident: str,
    cluster: EtcdCluster,
    ttl: int,
    sink: Callable[[str], None],
    log_dir: str,
    first: int = 0,
    priority: int = 1,
) -> ChaosProcess:
    """One candidate process (``_chaos_candidate``), given the members from ``first`` on."""
    args = ["--name", ELECTION, "--namespace", NAMESPACE, "--ttl", str(ttl), "--id", ident]
    args += ["--priority", str(priority)]
    module = "etcd_elector.testing._chaos_candidate"
    return ChaosProcess(ident, module, args, cluster.endpoints, sink, log_dir, first=first)


class _Run:
    def __init__(self, settings: ChaosSettings, progress: Callable[[str], None]):
        self.settings = settings
        self.progress = progress
        self.rng = random.Random(settings.seed)
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.extra: list[Violation] = []
        self.next_id = 0
        self.candidates: list[ChaosProcess] = []
        self.log_dir = tempfile.mkdtemp(prefix="etcd-elector-chaos-")
        self.backups = Backups(self.log_dir)
        self.repairs: list[Repair] = []

    def sink(self, line: str) -> None:
        with contextlib.suppress(ValueError, TypeError):
            record = Record.from_json(line)
            with self.lock:
                self.records.append(record)

    def note(self, kind: str, **fields: object) -> Record:
        with self.lock:
            record = Record(kind, _clock.now(), **fields)  # type: ignore[arg-type]
            self.records.append(record)
        return record

    def spawn(self, cluster: EtcdCluster, priority: int = 1) -> ChaosProcess:
        self.next_id += 1
        candidate = _candidate(
            f"c{self.next_id}",
            cluster,
            self.settings.ttl,
            self.sink,
            self.log_dir,
            first=self.next_id - 1,
            priority=priority,
        )
        self.candidates.append(candidate)
        return candidate

    def leader(self) -> str | None:
        """Who currently believes it leads, from the records so far."""
        with self.lock:
            records = sorted(self.records, key=lambda r: r.time)
        current: dict[str, bool] = {}
        for record in records:
            if record.kind == RecordKind.ELECTED:
                current[record.candidate] = True
            elif record.kind in (RecordKind.LOST, RecordKind.KILLED, RecordKind.EXITED):
                current[record.candidate] = False
        leaders = [who for who, leads in current.items() if leads]
        return leaders[-1] if leaders else None

    def wait_for_leader(self, timeout: float, other_than: str | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != other_than:
                return True
            time.sleep(0.02)
        return False

    def wait_for_no_leader(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.leader() is None:
                return True
            time.sleep(0.02)
        return False

    def members_in_use(self, cluster: EtcdCluster, window: float) -> dict[str, str]:
        """Which member each live candidate talks to: the one its traffic went to during
        ``window`` seconds (it renews its lease several times a TTL, so there is some)."""
        live = [c for c in self.candidates if c.process.poll() is None]
        before = {c.ident: c.traffic() for c in live}
        time.sleep(window)
        members = cluster.members
        in_use = {}
        for candidate in live:
            now = candidate.traffic()
            grown = [a - b for a, b in zip(now, before[candidate.ident], strict=True)]
            if max(grown) > 0:
                in_use[candidate.ident] = members[grown.index(max(grown))].name
        return in_use

    def by_ident(self, ident: str | None) -> ChaosProcess:
        live = [c for c in self.candidates if c.process.poll() is None]
        for candidate in live:
            if candidate.ident == ident:
                return candidate
        return self.rng.choice(live)

    def live(self) -> list[ChaosProcess]:
        return [c for c in self.candidates if c.process.poll() is None]

    def ledger(self) -> LossLedger:
        with self.lock:
            return LossLedger.of(self.records)

    def unaware(self, back_to: int) -> set[str]:
        """Live candidates that have not seen etcd far enough past ``back_to`` to be sure to
        notice if it went back there now (see :meth:`LossLedger.must_report`)."""
        now = Record(RecordKind.DATA_LOST, _clock.now(), revision=back_to)
        return {c.ident for c in self.live()} - self.ledger().must_report(now)

    def unreported(self, loss: Record) -> set[str]:
        """Live candidates that must report ``loss`` and have not yet."""
        ledger = self.ledger()
        live = {c.ident for c in self.live()}
        return {
            who
            for who in ledger.must_report(loss) & live
            if ledger.next_report(who, after=loss.time) is None
        }

    def highest_seen(self) -> int:
        """The highest token or revision any candidate saw, by its records: what an operator
        reads from the history-loss ERROR lines and the fenced systems."""
        with self.lock:
            return max(
                (
                    max(r.token, r.revision, r.previous_revision)
                    for r in self.records
                    if r.candidate and r.kind != RecordKind.KILLED
                ),
                default=0,
            )


def chosen_faults(settings: ChaosSettings) -> tuple[str, ...]:
    """The faults a run of ``settings`` injects: ``settings.faults``, or every fault that
    makes sense for its number of members.

    :raises ConfigurationError: for an unknown fault, or one that needs three members.
    """
    if not settings.faults:
        if settings.members >= 3:
            return tuple(f for f in FAULTS if f != "wipe")
        return (*CANDIDATE_FAULTS, "member_restart", *DATA_LOSS_FAULTS, *MOVE_FAULTS)
    unknown = [fault for fault in settings.faults if fault not in FAULTS]
    if unknown:
        raise ConfigurationError(
            f"unknown chaos fault {unknown[0]!r}: choose from {', '.join(FAULTS)}"
        )
    needs_three = [f for f in settings.faults if f in ("quorum_loss", *PEER_FAULTS)]
    if needs_three and settings.members < 3:
        raise ConfigurationError(f"chaos fault {needs_three[0]!r} needs three etcd members")
    if "wipe" in settings.faults and settings.members != 1:
        raise ConfigurationError(
            "chaos fault 'wipe' needs a one-member etcd (a wiped member of a larger cluster "
            "must be removed and added again); use restore_old_snapshot with three"
        )
    return settings.faults


def run_chaos(
    settings: ChaosSettings, progress: Callable[[str], None] = lambda _: None
) -> ChaosResult:
    """Run one seeded fault schedule for ``settings.duration`` seconds (and at least
    ``settings.min_trials`` trials) and check it."""
    faults = chosen_faults(settings)
    run = _Run(settings, progress)
    trials = 0
    partitionable = settings.members >= 3
    restores = "restore_old_snapshot" in faults
    with EtcdCluster.start(settings.members, partitionable=partitionable) as cluster:
        try:
            if restores:
                run.backups.take(cluster)  # before the first candidate: an empty etcd
            for _ in range(settings.candidates):
                run.spawn(cluster)
            if not run.wait_for_leader(30):
                run.extra.append(Violation("failover", "no leader was ever elected"))
            started = time.monotonic()
            deck: list[str] = []
            while trials < settings.min_trials or time.monotonic() - started < settings.duration:
                trials += 1
                if not deck:
                    deck = list(faults)
                    run.rng.shuffle(deck)
                    if restores:  # a restore goes back to the backup of the cycle before
                        run.backups.take(cluster)
                fault = deck.pop()
                run.faults[fault] += 1
                target = run.by_ident(run.leader() if run.rng.random() < 0.8 else None)
                run.note(RecordKind.FAULT, detail=f"{fault} {target.ident}")
                progress(f"trial {trials}: {fault} (target {target.ident}, leader {run.leader()})")
                what = _inject(run, cluster, fault, target)
                bound = recovery_bound(
                    fault_kind(fault),
                    ttl=settings.ttl,
                    election_timeout=cluster.election_timeout_ms / 1000,
                    heartbeat=cluster.heartbeat_ms / 1000,
                )
                run.note(RecordKind.HEALED, until=bound.seconds, detail=what)
                if not run.wait_for_leader(4 * settings.ttl + 10):
                    progress("  no leader after the fault healed")
                time.sleep(run.rng.uniform(0, settings.ttl / 2))
        finally:
            # Also when a fault or the runner itself fails: no candidate outlives the run.
            for candidate in run.candidates:
                candidate.finish(timeout=10)
        leaks = find_leaks(cluster.endpoint_string, f"{NAMESPACE}/{ELECTION}/", run.records)
        run.extra.extend(asyncio.run(leaks))
    report = check_history(run.records, extra=run.extra)
    if report.ok:
        shutil.rmtree(run.log_dir, ignore_errors=True)
    else:
        progress(f"candidate logs kept in {run.log_dir}")
    return ChaosResult(
        settings=settings, report=report, faults=run.faults, trials=trials, repairs=run.repairs
    )


def _inject(run: _Run, cluster: EtcdCluster, fault: str, target: ChaosProcess) -> str:
    """Inject ``fault``, hold it, heal it; say what was done."""
    ttl = run.settings.ttl
    rng = run.rng
    if fault == "kill":
        target.signal(signal.SIGKILL)
        target.process.wait()
        run.note(RecordKind.KILLED, candidate=target.ident)
        run.spawn(cluster)
    elif fault in ("pause_short", "pause_long"):
        hold = rng.uniform(0.1, ttl / 3) if fault == "pause_short" else rng.uniform(ttl, 2 * ttl)
        target.signal(signal.SIGSTOP)
        target.paused = True
        time.sleep(hold)
        target.signal(signal.SIGCONT)
        target.paused = False
    elif fault == "blackhole":
        target.each_proxy(lambda p: p.blackhole())
        time.sleep(rng.uniform(ttl / 2, 2 * ttl))
        target.each_proxy(lambda p: p.heal())
    elif fault == "drop":
        target.each_proxy(lambda p: p.drop())
    elif fault == "latency":
        target.each_proxy(lambda p: p.delay(rng.uniform(0.05, 0.3)))
        time.sleep(rng.uniform(ttl / 2, ttl))
        target.each_proxy(lambda p: p.heal())
    elif fault == "compact":
        asyncio.run(_compact(cluster.endpoint_string))
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
    elif fault == "quorum_loss":
        stopped = rng.sample(cluster.members, 2)
        for member in stopped:
            member.stop()
        time.sleep(rng.uniform(ttl / 2, 2 * ttl))
        for member in stopped:
            member.cont()
        cluster.wait_for_leader(10)
    elif fault in PEER_FAULTS:
        return _partition(run, cluster, fault)
    elif fault in DATA_LOSS_FAULTS:
        return _lose_data(run, cluster, fault)
    elif fault in MOVE_FAULTS:
        return _move(run, cluster, fault, target)
    return fault


def _lose_data(run: _Run, cluster: EtcdCluster, fault: str) -> str:
    """Make etcd's history go back, then repair it as an operator would: wait until every
    candidate reported the loss, cut them off, move the revision past the highest token any
    of them saw, let them back."""
    ttl = run.settings.ttl
    backup = run.backups.before_last() if fault == "restore_old_snapshot" else None
    back_to = 1 if backup is None else backup.revision
    # A loss large enough for every candidate to see: etcd well past where it goes back to,
    # and every candidate aware of it (it renews its lease three times a TTL).
    asyncio.run(bump_revision(cluster.endpoint_string, back_to + MIN_LOST_REVISIONS, key=BUMP_KEY))
    _wait_while(lambda: run.unaware(back_to), 3 * ttl + 5)
    unaware = run.unaware(back_to)
    if unaware:
        run.progress(f"  {', '.join(sorted(unaware))} did not see etcd's latest revisions")
    revision = asyncio.run(revision_of(cluster.endpoint_string))
    for member in cluster.members[:1] if backup is None else cluster.members:
        member.kill()
    # The old history is gone, the new one not served yet: the checker's boundary.
    loss = run.note(
        RecordKind.DATA_LOST,
        revision=back_to,
        previous_revision=revision,
        detail=f"{fault}: etcd goes back from revision {revision} or later to {back_to}"
        + ("" if backup is None else f" or earlier ({backup.path.name})"),
    )
    lost = time.monotonic()
    if backup is None:
        cluster.members[0].wipe_and_restart()
    else:
        cluster.restore_snapshot(backup.path)
    serving = time.monotonic()
    _wait_while(lambda: run.unreported(loss), 4 * ttl + 10)
    silent = run.unreported(loss)
    if silent:  # the checker names them; the repair goes on
        run.progress(f"  no history-loss report from {', '.join(sorted(silent))}")
    reported = time.monotonic()
    floor = run.highest_seen()
    for candidate in run.live():
        candidate.each_proxy(lambda p: p.refuse())
        candidate.each_proxy(lambda p: p.drop())
    try:
        bumped = asyncio.run(bump_revision(cluster.endpoint_string, floor, key=BUMP_KEY))
    finally:
        for candidate in run.live():
            candidate.each_proxy(lambda p: p.heal())
    repair = Repair(
        fault,
        restart=serving - lost,
        reports=reported - serving,
        bump=time.monotonic() - reported,
        bumped=bumped,
        floor=floor,
    )
    run.repairs.append(repair)
    what = repair.describe()
    run.progress(f"  {what}")
    return what


def _move(run: _Run, cluster: EtcdCluster, fault: str, target: ChaosProcess) -> str:
    """Ask for a planned move the way an operator does, and wait for it to be carried out
    (bounded: a move that is not is the checker's to judge, not the nemesis's)."""
    ttl = run.settings.ttl
    leader = run.leader()
    endpoints = cluster.endpoint_string
    if fault in ("handoff", "handoff_next"):
        standbys = [
            c.ident for c in run.candidates if c.process.poll() is None and c.ident != leader
        ]
        to = run.rng.choice(standbys) if fault == "handoff" and standbys else None
        asked = asyncio.run(_request_handoff(endpoints, to))
        if asked:
            run.wait_for_leader(4 * ttl + 5, other_than=leader)
        return f"{fault} from {leader} to {to or 'the next in line'}"
    if fault == "priority_join":
        preferred = run.spawn(cluster, priority=PREFERRED)
        run.wait_for_leader(4 * ttl + 5, other_than=leader)
        time.sleep(run.rng.uniform(0, ttl / 2))
        preferred.finish(timeout=10)  # it leaves: normal order resumes
        return f"{fault}: {preferred.ident} joined with priority {PREFERRED} and left"
    # pause: nobody may lead until the resume
    asyncio.run(_pause(endpoints, True))
    run.wait_for_no_leader(4 * ttl + 5)
    time.sleep(run.rng.uniform(0.1, ttl / 2))
    asyncio.run(_pause(endpoints, False))
    return f"{fault} then resume"


async def _request_handoff(endpoints: str, to: str | None) -> bool:
    async with AsyncClient(endpoints) as client:
        view = client.election_view(ELECTION, namespace=NAMESPACE)
        return await view.request_handoff(to=to, by="nemesis") is not None


async def _pause(endpoints: str, pause: bool) -> None:
    async with AsyncClient(endpoints) as client:
        view = client.election_view(ELECTION, namespace=NAMESPACE)
        if pause:
            await view.pause("chaos", by="nemesis")
        else:
            await view.resume()


def _partition(run: _Run, cluster: EtcdCluster, fault: str) -> str:
    """Cut the member that the leader (or a standby) talks to off from its peers, hold,
    heal, and wait until it is healthy again."""
    ttl = run.settings.ttl
    in_use = run.members_in_use(cluster, window=ttl / 2)
    leader = run.leader()
    if fault == "partition_leader_member":
        chosen = [in_use[leader]] if leader in in_use else []
    else:  # a standby's member, one the leader does not use if there is one
        standbys = {member for who, member in in_use.items() if who != leader}
        chosen = sorted(standbys - {in_use.get(leader or "")} or standbys)
    # With nobody to follow (no leader yet, or it went quiet), any member will do.
    name = run.rng.choice(chosen or [m.name for m in cluster.members])
    users = ", ".join(sorted(who for who, member in in_use.items() if member == name))
    what = f"{fault}: {name} cut off from its peers (used by {users or 'nobody'})"
    run.progress(f"  {what}")
    cluster.network.isolate(name)
    time.sleep(run.rng.uniform(ttl / 2, 2 * ttl))
    cluster.network.heal()
    cluster.member(name).wait_healthy(10)
    return what


def _wait_while(condition: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while condition() and time.monotonic() < deadline:
        time.sleep(0.1)


async def _compact(endpoints: str) -> None:
    async with AsyncClient(endpoints) as client:
        revision = (await client.get(NAMESPACE)).revision
        await client.compact(revision)
