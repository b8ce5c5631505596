"""The checker: reads a recorded history and says whether the election kept its promises.

It fails, with a readable report, when
- two leadership intervals overlap at all (each candidate's own belief, on the shared clock);
- a fencing token is reused or goes backwards across terms;
- a fenced write committed out of token order (a stale leader wrote after a newer one), in
  one of etcd's histories;
- a fenced write committed at a revision at or below one that an earlier term's write had
  committed at (etcd issued that revision again: it lost its data);
- after a fault healed, no leader was elected within the bound the settings imply
  (:func:`recovery_bound` derives it from the TTL and etcd's own timing);
- the work of a term that ended by a planned move or a stop (handed off, paused, closed,
  resigned) acted after the next term began (its ``work_end`` came after the next
  ``elected``): drain, then release.

When etcd loses its data (a ``data_lost`` record from the nemesis), tokens and revisions go
back. A token or revision that went back is then excused only if a candidate had reported the
loss (a ``history_lost`` record: etcd went back from at or above it to below it) before the
term that holds it began. And the checker fails when a term running at the loss ended with
another reason after its candidate saw the new history, when a candidate that knew the old
history did not report the loss before the fault healed, or when a candidate reported a loss
that never happened.
Pure logic, no I/O: the chaos runner adds what only etcd can tell (leaked leases and keys).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from etcd_elector._election._timing import check_timing
from etcd_elector._reasons import EndReason

from ._history import Record, RecordKind
from ._losses import LossLedger

__all__ = [
    "CAMPAIGN_SLACK",
    "CheckReport",
    "Interval",
    "RecoveryBound",
    "Violation",
    "check_history",
    "leadership_intervals",
    "recovery_bound",
]

#: What a campaign needs on top of etcd's timing once the old key is gone: reconnecting (the
#: chaos candidates back off at most 1 s between attempts) and a few round trips.
CAMPAIGN_SLACK = 1.5

#: ``candidate``: a fault on the candidates' side only (a kill, a pause, their network), so
#: etcd keeps its raft leader. ``etcd``: a fault that can cost etcd its raft leader (a member
#: killed or frozen, a member cut off from its peers), after which leases restart. ``history``:
#: etcd lost its data and came back, repaired (its revision moved past every token seen),
#: with the leases it restored restarted.
FaultKind = Literal["candidate", "etcd", "history"]


@dataclass(frozen=True)
class RecoveryBound:
    """How long after a fault heals a new leader may take to be elected, and why."""

    seconds: float
    why: str


def recovery_bound(
    kind: FaultKind, *, ttl: int, election_timeout: float = 1.0, heartbeat: float = 0.1
) -> RecoveryBound:
    """The honest bound for a ``kind`` of fault, from :func:`etcd_elector.check_timing`'s
    worst-case failovers (``election_timeout`` and ``heartbeat`` are etcd's, in seconds),
    plus :data:`CAMPAIGN_SLACK`.

    After a candidate fault the old leader's key lives at most one TTL after its last
    renewal, then etcd's expiry sweep removes it (``crash``). After an etcd fault, etcd may
    also need two election timeouts to elect a raft leader, which restarts every lease at
    TTL + election timeout (``etcd-leader-change``): about two TTLs.

    A ``history`` fault heals once etcd serves again, repaired: it has a raft leader, and its
    revision is past every token seen. Its restart and the repair (the candidates report the
    loss, then the revision is bumped) come before, and are timed apart. What is left is
    the ``crash`` failover counted from etcd's restart, which restarted the leases it
    restored (keys that came back with a snapshot) at TTL + election timeout: a key a
    candidate left behind lives at most a TTL after its last renewal, a restored one at most
    TTL + election timeout after the restart, then the sweep.
    """
    timing = check_timing(ttl, election_timeout=election_timeout, heartbeat=heartbeat)
    event = "crash" if kind in ("candidate", "history") else "etcd-leader-change"
    (failover,) = [f for f in timing.failovers if f.event == event]
    if kind == "history":
        return RecoveryBound(
            failover.seconds + election_timeout + CAMPAIGN_SLACK,
            f"{failover.why}; keys restored from a snapshot live up to {election_timeout:g} s "
            f"longer (etcd restarts restored leases at TTL + election timeout); plus "
            f"{CAMPAIGN_SLACK:g} s to reconnect and campaign",
        )
    return RecoveryBound(
        failover.seconds + CAMPAIGN_SLACK,
        f"{failover.why}; plus {CAMPAIGN_SLACK:g} s to reconnect and campaign",
    )


@dataclass(frozen=True)
class Violation:
    kind: str  # overlap | token | stale_write | reused_revision | history_lost | failover | leak
    message: str


@dataclass(frozen=True)
class Interval:
    """When ``candidate`` believed it led with ``token``: ``[start, end)``."""

    candidate: str
    token: int
    start: float
    end: float
    how_ended: str


@dataclass
class CheckReport:
    intervals: list[Interval]
    violations: list[Violation] = field(default_factory=list)
    writes_committed: int = 0
    writes_refused: int = 0
    #: Gaps between terms, except those across a data loss (in ``repair_failovers``): those
    #: include etcd's restart and its repair.
    failovers: list[float] = field(default_factory=list)
    repair_failovers: list[float] = field(default_factory=list)
    data_losses: int = 0
    loss_reports: int = 0
    #: Tokens and fenced writes that went back, each after a report that covers it.
    regressions_reported: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def worst_failover(self) -> float | None:
        return max(self.failovers) if self.failovers else None

    @property
    def worst_repair_failover(self) -> float | None:
        return max(self.repair_failovers) if self.repair_failovers else None

    def render(self) -> str:
        lines = [
            f"terms: {len(self.intervals)}, fenced writes committed: {self.writes_committed}, "
            f"refused: {self.writes_refused}, worst failover: "
            + (f"{self.worst_failover:.3f}s" if self.worst_failover is not None else "n/a"),
        ]
        if self.data_losses or self.loss_reports:
            lines.append(
                f"etcd data losses: {self.data_losses}, reported by candidates: "
                f"{self.loss_reports}, regressions after a report: {self.regressions_reported}"
            )
        if self.ok:
            lines.append("no violations")
        for violation in self.violations:
            lines.append(f"VIOLATION [{violation.kind}] {violation.message}")
        return "\n".join(lines)


def leadership_intervals(records: Iterable[Record]) -> list[Interval]:
    """Pair each ``elected`` with what ended it: ``lost`` (its ``until``), a kill, an exit,
    or the end of the history."""
    ordered = sorted(records, key=lambda r: r.time)
    open_terms: dict[str, Record] = {}
    intervals: list[Interval] = []

    def close(candidate: str, end: float, how: str) -> None:
        start = open_terms.pop(candidate)
        intervals.append(Interval(candidate, start.token, start.time, end, how))

    for record in ordered:
        if record.kind == RecordKind.ELECTED:
            if record.candidate in open_terms:  # a new term without a recorded end
                close(record.candidate, record.time, "next term")
            open_terms[record.candidate] = record
        elif record.candidate in open_terms:
            if record.kind == RecordKind.LOST:
                close(record.candidate, record.until or record.time, record.reason or "lost")
            elif record.kind in (RecordKind.KILLED, RecordKind.EXITED):
                close(record.candidate, record.time, record.kind)
    for candidate in list(open_terms):
        close(candidate, math.inf, "still leading")  # as far as the history knows
    return sorted(intervals, key=lambda i: i.start)


def check_history(
    records: Iterable[Record],
    *,
    failover_bound: float | None = None,
    extra: Iterable[Violation] = (),
) -> CheckReport:
    """Check a history. After each ``healed`` record a leader must be elected within its
    ``until`` seconds, or ``failover_bound`` when the record carries none."""
    records = list(records)
    intervals = leadership_intervals(records)
    ledger = LossLedger.of(records)
    report = CheckReport(
        intervals=intervals,
        violations=list(extra),
        data_losses=len(ledger.losses),
        loss_reports=len(ledger.reports),
    )
    _check_overlaps(intervals, report)
    _check_tokens(intervals, ledger, report)
    _check_writes(records, intervals, ledger, report)
    _check_terms_at_losses(intervals, ledger, report)
    _check_loss_reports(records, ledger, report)
    _measure_failovers(intervals, ledger, report)
    _check_recovery(records, intervals, failover_bound, report)
    _check_work_ends(records, intervals, report)
    return report


#: Term ends a candidate chose: its work must have stopped before the key went.
PLANNED_ENDS = frozenset(
    {"handed_off", "paused", "closed", "resigned", "work_done", "work_failed", "exited"}
)


def _check_work_ends(records: list[Record], intervals: list[Interval], report: CheckReport) -> None:
    """No work of a term ended by a move or a stop still acts once a later term began (a
    term lost to its deadline is cancelled by then too, but a frozen process stamps its end
    late: the overlap and write checks judge those)."""
    ended = {(i.candidate, i.token): i for i in intervals}
    for work_end in (r for r in records if r.kind == RecordKind.WORK_END):
        term = ended.get((work_end.candidate, work_end.token))
        if term is None or term.how_ended not in PLANNED_ENDS:
            continue
        later = [i for i in intervals if i.token > work_end.token and i.start < work_end.time]
        if later:
            first = min(later, key=lambda i: i.start)
            report.violations.append(
                Violation(
                    "work_overlap",
                    f"the work of {work_end.candidate} (token {work_end.token}, "
                    f"{term.how_ended}) acted until {work_end.time:.6f}, after "
                    f"{first.candidate} (token {first.token}) began at {first.start:.6f}",
                )
            )


def _check_overlaps(intervals: list[Interval], report: CheckReport) -> None:
    latest: Interval | None = None  # the interval reaching furthest so far
    for interval in intervals:
        if latest is not None and interval.start < latest.end:
            report.violations.append(
                Violation(
                    "overlap",
                    f"{interval.candidate} (token {interval.token}) became leader at "
                    f"{interval.start:.6f} while {latest.candidate} (token {latest.token}) "
                    f"led until {latest.end:.6f} ({latest.how_ended})",
                )
            )
        if latest is None or interval.end > latest.end:
            latest = interval


def _check_tokens(intervals: list[Interval], ledger: LossLedger, report: CheckReport) -> None:
    """Each term's token is above every earlier term's, unless a reported loss covers it."""
    seen: dict[int, Interval] = {}
    highest: Interval | None = None
    for interval in intervals:
        if highest is not None and interval.token <= highest.token:
            if ledger.covering(interval.token, before=interval.start) is not None:
                report.regressions_reported += 1
            else:
                report.violations.append(Violation("token", _regression(interval, highest, seen)))
        seen.setdefault(interval.token, interval)
        if highest is None or interval.token > highest.token:
            highest = interval


def _regression(interval: Interval, highest: Interval, seen: dict[int, Interval]) -> str:
    first = seen.get(interval.token)
    if first is not None:
        what = (
            f"token {interval.token} used twice: by {first.candidate} at {first.start:.6f} "
            f"and by {interval.candidate} at {interval.start:.6f}"
        )
    else:
        what = (
            f"token went backwards: {highest.candidate} led with {highest.token}, then "
            f"{interval.candidate} with {interval.token} at {interval.start:.6f}"
        )
    return f"{what}, and no candidate had reported etcd going back past {interval.token}"


def _check_writes(
    records: list[Record], intervals: list[Interval], ledger: LossLedger, report: CheckReport
) -> None:
    writes = [r for r in records if r.kind == RecordKind.WRITE]
    report.writes_refused = sum(1 for w in writes if not w.ok)
    committed = [w for w in writes if w.ok]
    report.writes_committed = len(committed)
    # Revisions order writes within one of etcd's histories only.
    histories: dict[int, list[Record]] = defaultdict(list)
    for write in committed:
        histories[ledger.history_at(write.time)].append(write)
    for history in histories.values():
        _check_write_order(sorted(history, key=lambda w: w.revision), report)
    _check_reused_revisions(committed, intervals, ledger, report)


def _check_write_order(committed: list[Record], report: CheckReport) -> None:
    highest: Record | None = None
    for write in committed:
        if highest is not None and write.token < highest.token:
            report.violations.append(
                Violation(
                    "stale_write",
                    f"{write.candidate} committed a write with token {write.token} at revision "
                    f"{write.revision}, after {highest.candidate} had written with token "
                    f"{highest.token} at revision {highest.revision}",
                )
            )
        if highest is None or write.token > highest.token:
            highest = write


def _check_reused_revisions(
    committed: list[Record], intervals: list[Interval], ledger: LossLedger, report: CheckReport
) -> None:
    """A term's fenced writes commit above every revision that a write recorded before the
    term began had committed at (it committed first, so etcd's revision was past it), unless
    a reported loss covers the revision."""
    by_time = sorted(committed, key=lambda w: w.time)
    times = [w.time for w in by_time]
    highest_so_far: list[Record] = list(itertools.accumulate(by_time, _higher_revision))
    for interval, own in _writes_by_term(committed, intervals).items():
        before = bisect.bisect_left(times, interval.start)
        if before == 0:
            continue
        earlier = highest_so_far[before - 1]
        reused = [w for w in own if w.revision <= earlier.revision]
        unexcused = [
            w for w in reused if ledger.covering(w.revision, before=interval.start) is None
        ]
        report.regressions_reported += len(reused) - len(unexcused)
        if unexcused:
            first = min(unexcused, key=lambda w: w.time)
            report.violations.append(
                Violation(
                    "reused_revision",
                    f"{first.candidate} (token {first.token}) committed a fenced write at "
                    f"revision {first.revision}, at or below revision {earlier.revision} "
                    f"where {earlier.candidate} (token {earlier.token}) had committed before "
                    f"the term began at {interval.start:.6f} ({len(unexcused)} such write(s)), "
                    f"and no candidate had reported etcd going back past {first.revision}",
                )
            )


def _higher_revision(a: Record, b: Record) -> Record:
    return b if b.revision > a.revision else a


def _writes_by_term(
    committed: list[Record], intervals: list[Interval]
) -> dict[Interval, list[Record]]:
    """Each committed write under the term of its candidate and token that began last before
    it; writes of no known term are left out."""
    terms: dict[str, list[Interval]] = defaultdict(list)
    for interval in intervals:  # sorted by start
        terms[interval.candidate].append(interval)
    starts = {candidate: [i.start for i in mine] for candidate, mine in terms.items()}
    owned: dict[Interval, list[Record]] = defaultdict(list)
    for write in committed:
        mine = terms.get(write.candidate, [])
        index = bisect.bisect_right(starts.get(write.candidate, []), write.time) - 1
        if index >= 0 and mine[index].token == write.token:
            owned[mine[index]].append(write)
    return owned


def _check_terms_at_losses(
    intervals: list[Interval], ledger: LossLedger, report: CheckReport
) -> None:
    """A term running when etcd lost its data ends with ``etcd_history_lost``, or before its
    candidate saw the new history (its deadline passed while etcd was down, a kill)."""
    for loss in ledger.losses:
        for interval in intervals:
            if not interval.start < loss.time < interval.end:
                continue
            if interval.how_ended == EndReason.HISTORY_LOST:
                continue
            told = ledger.next_report(interval.candidate, after=loss.time)
            if told is not None and interval.end <= told.time:
                continue  # over before the new history reached it
            if told is None and interval.how_ended in (RecordKind.KILLED, RecordKind.EXITED):
                continue
            ended = f"ended with {interval.how_ended!r} at {interval.end:.6f}"
            if math.isinf(interval.end):
                ended = "never ended"
            report.violations.append(
                Violation(
                    "history_lost",
                    f"{interval.candidate} (token {interval.token}) was leading when etcd lost "
                    f"its data at {loss.time:.6f} ({loss.detail or 'data lost'}) and its term "
                    f"{ended}, not with {str(EndReason.HISTORY_LOST)!r}",
                )
            )


def _check_loss_reports(records: list[Record], ledger: LossLedger, report: CheckReport) -> None:
    """Every candidate that had seen etcd well past where it went back (see
    :meth:`LossLedger.must_report`) and kept running reports the loss before the fault
    healed; nobody reports a loss that did not happen, or one loss twice."""
    gone: dict[str, float] = {}
    for record in records:
        if record.kind in (RecordKind.KILLED, RecordKind.EXITED):
            gone.setdefault(record.candidate, record.time)
    heals = sorted(r.time for r in records if r.kind == RecordKind.HEALED)
    for loss in ledger.losses:
        healed = next((t for t in heals if t > loss.time), math.inf)
        for candidate in sorted(ledger.must_report(loss)):
            if ledger.next_report(candidate, after=loss.time, until=healed) is not None:
                continue
            left = gone.get(candidate)
            if left is not None and left <= healed:
                continue  # it left before it had to tell
            by = "" if math.isinf(healed) else f" before the fault healed at {healed:.6f}"
            report.violations.append(
                Violation(
                    "history_lost",
                    f"{candidate} was running when etcd lost its data at {loss.time:.6f} "
                    f"({loss.detail or 'data lost'}), had seen revisions well past "
                    f"{loss.revision}, and did not report it{by}",
                )
            )
    claimed: set[tuple[str, int]] = set()
    for told in ledger.reports:
        history = ledger.history_at(told.time)
        what = (
            f"{told.candidate} reported at {told.time:.6f} that etcd lost history ({told.detail})"
        )
        if history == 0:
            report.violations.append(
                Violation("history_lost", f"{what}, but etcd had lost no data")
            )
        elif (told.candidate, history) in claimed:
            loss = ledger.losses[history - 1]
            report.violations.append(
                Violation(
                    "history_lost",
                    f"{what}, a second time for the loss at {loss.time:.6f}",
                )
            )
        claimed.add((told.candidate, history))


def _measure_failovers(intervals: list[Interval], ledger: LossLedger, report: CheckReport) -> None:
    for before, after in itertools.pairwise(intervals):
        if before.how_ended != "still leading":
            gap = max(0.0, after.start - before.end)
            if ledger.lost_between(before.start, after.start):  # the term or gap saw it
                report.repair_failovers.append(gap)
            else:
                report.failovers.append(gap)


def _check_recovery(
    records: list[Record], intervals: list[Interval], bound: float | None, report: CheckReport
) -> None:
    """After every heal, someone leads at once or within the bound (the record's ``until``,
    else ``bound``)."""
    for heal in (r for r in records if r.kind == RecordKind.HEALED):
        limit = heal.until or bound
        if limit is None or any(i.start <= heal.time < i.end for i in intervals):
            continue
        next_start = min((i.start for i in intervals if i.start >= heal.time), default=math.inf)
        if next_start - heal.time > limit:
            waited = "never" if math.isinf(next_start) else f"after {next_start - heal.time:.3f}s"
            fault = f" ({heal.detail})" if heal.detail else ""
            report.violations.append(
                Violation(
                    "failover",
                    f"no leader within {limit:.3f}s after the fault{fault} healed at "
                    f"{heal.time:.6f} (a leader was elected {waited})",
                )
            )
