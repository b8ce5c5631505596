"""The checker: reads a recorded history and says whether the election kept its promises.

It fails, with a readable report, when
- two leadership intervals overlap at all (each candidate's own belief, on the shared clock);
- a fencing token is reused or goes backwards across terms;
- a fenced write committed out of token order (a stale leader wrote after a newer one);
- after a fault healed, no leader was elected within the bound the settings imply
  (:func:`recovery_bound` derives it from the TTL and etcd's own timing);
- the work of a term that ended by a planned move or a stop (handed off, paused, closed,
  resigned) acted after the next term began (its ``work_end`` came after the next
  ``elected``): drain, then release.
Pure logic, no I/O: the chaos runner adds what only etcd can tell (leaked leases and keys).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from etcd_elector._election._timing import check_timing

from ._history import Record, RecordKind

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
#: killed or frozen, a member cut off from its peers), after which leases restart.
FaultKind = Literal["candidate", "etcd"]


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
    """
    timing = check_timing(ttl, election_timeout=election_timeout, heartbeat=heartbeat)
    event = "crash" if kind == "candidate" else "etcd-leader-change"
    (failover,) = [f for f in timing.failovers if f.event == event]
    return RecoveryBound(
        failover.seconds + CAMPAIGN_SLACK,
        f"{failover.why}; plus {CAMPAIGN_SLACK:g} s to reconnect and campaign",
    )


@dataclass(frozen=True)
class Violation:
    kind: str  # overlap | token | stale_write | failover | leak
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
    failovers: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def worst_failover(self) -> float | None:
        return max(self.failovers) if self.failovers else None

    def render(self) -> str:
        lines = [
            f"terms: {len(self.intervals)}, fenced writes committed: {self.writes_committed}, "
            f"refused: {self.writes_refused}, worst failover: "
            + (f"{self.worst_failover:.3f}s" if self.worst_failover is not None else "n/a"),
        ]
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
    report = CheckReport(intervals=intervals, violations=list(extra))
    _check_overlaps(intervals, report)
    _check_tokens(intervals, report)
    _check_writes(records, report)
    _measure_failovers(intervals, report)
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


def _check_tokens(intervals: list[Interval], report: CheckReport) -> None:
    seen: dict[int, Interval] = {}
    previous: Interval | None = None
    for interval in intervals:
        if interval.token in seen:
            first = seen[interval.token]
            report.violations.append(
                Violation(
                    "token",
                    f"token {interval.token} used twice: by {first.candidate} at "
                    f"{first.start:.6f} and by {interval.candidate} at {interval.start:.6f}",
                )
            )
        elif previous is not None and interval.token < previous.token:
            report.violations.append(
                Violation(
                    "token",
                    f"token went backwards: {previous.candidate} led with {previous.token}, then "
                    f"{interval.candidate} with {interval.token} at {interval.start:.6f}",
                )
            )
        seen.setdefault(interval.token, interval)
        previous = interval


def _check_writes(records: list[Record], report: CheckReport) -> None:
    writes = [r for r in records if r.kind == RecordKind.WRITE]
    report.writes_refused = sum(1 for w in writes if not w.ok)
    committed = sorted((w for w in writes if w.ok), key=lambda w: w.revision)
    report.writes_committed = len(committed)
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


def _measure_failovers(intervals: list[Interval], report: CheckReport) -> None:
    for before, after in itertools.pairwise(intervals):
        if before.how_ended != "still leading":
            report.failovers.append(max(0.0, after.start - before.end))


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
