"""What a history says about etcd losing its data: when it happened, and what was reported.

Two sources, kept apart on purpose: the nemesis writes ``data_lost`` when it destroys etcd's
history (the truth), the candidates write ``history_lost`` when the library tells them so (the
claim). The checker judges by the first and excuses by the second: a token or revision that
went back is acceptable only once a candidate had said that etcd went back past it.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ._history import Record, RecordKind

__all__ = ["VISIBLE_LOSS", "LossLedger"]

#: A candidate whose library had seen a revision this far above the one etcd went back to is
#: sure to see the loss, so it must report it. A loss shows only in an answer below the highest
#: revision seen, and the new history grows before the candidate asks again (within a third of
#: the TTL): the chaos candidates' campaigns write two revisions each, one attempt per 50 ms at
#: most, and no term can lead below its floor. A smaller loss may close unseen; the library says
#: so (docs/operations.md: "small gaps close by themselves").
VISIBLE_LOSS = 500


@dataclass(frozen=True)
class LossLedger:
    """The data losses of a history (``data_lost``, by time), the candidates' reports of them
    (``history_lost``, by time), and what each candidate had seen of etcd's revisions."""

    losses: tuple[Record, ...]
    reports: tuple[Record, ...]
    records: tuple[Record, ...]  # every record, by time

    @classmethod
    def of(cls, records: Iterable[Record]) -> LossLedger:
        ordered = tuple(sorted(records, key=lambda r: r.time))
        return cls(
            losses=tuple(r for r in ordered if r.kind == RecordKind.DATA_LOST),
            reports=tuple(r for r in ordered if r.kind == RecordKind.HISTORY_LOST),
            records=ordered,
        )

    def history_at(self, moment: float) -> int:
        """Which of etcd's histories an answer received at ``moment`` came from: 0 before
        the first loss, 1 after it, and so on."""
        return bisect.bisect_right([loss.time for loss in self.losses], moment)

    def lost_between(self, start: float, end: float) -> bool:
        """Whether etcd lost its data after ``start`` and before ``end``."""
        return self.history_at(start) != self.history_at(end)

    def covering(self, revision: int, before: float) -> Record | None:
        """The first report, made before ``before``, of etcd going back past ``revision``:
        from a revision at or above it to one below it, so that etcd issues it again."""
        for report in self.reports:
            if report.time >= before:
                return None
            if report.revision < revision <= report.previous_revision:
                return report
        return None

    def next_report(self, candidate: str, after: float, until: float = math.inf) -> Record | None:
        """``candidate``'s first report after ``after`` and no later than ``until``."""
        for report in self.reports:
            if report.candidate == candidate and after < report.time <= until:
                return report
        return None

    def must_report(self, loss: Record) -> set[str]:
        """The candidates that were running when etcd lost its data, and had seen it at least
        :data:`VISIBLE_LOSS` revisions above the revision it went back to."""
        seen: dict[str, int] = defaultdict(int)
        running: set[str] = set()
        for record in self.records:
            if record.time >= loss.time:
                break
            who = record.candidate
            if not who:
                continue
            running.add(who)
            if record.kind in (RecordKind.KILLED, RecordKind.EXITED):
                running.discard(who)
            elif record.kind == RecordKind.HISTORY_LOST:
                seen[who] = record.revision  # its library now follows the new history
            else:
                seen[who] = max(seen[who], _revision_seen(record))
        return {who for who in running if seen[who] >= loss.revision + VISIBLE_LOSS}


def _revision_seen(record: Record) -> int:
    """A revision the candidate's library must have seen to write ``record``."""
    if record.kind == RecordKind.SEEN or (record.kind == RecordKind.WRITE and record.ok):
        return record.revision
    if record.kind == RecordKind.ELECTED:
        return record.token
    return 0
