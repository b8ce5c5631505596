"""What a history says about etcd losing its data: when it happened, and what was reported.

Two sources, kept apart on purpose: the nemesis writes ``data_lost`` when it destroys etcd's
history (the truth), the candidates write ``history_lost`` when the library tells them so (the
claim). The checker judges by the first and excuses by the second: a token or revision that
went back is acceptable only once a candidate had said that etcd went back past it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass

from ._history import Record, RecordKind

__all__ = ["LossLedger"]


@dataclass(frozen=True)
class LossLedger:
    """The data losses of a history (``data_lost``, by time) and the candidates' reports of
    them (``history_lost``, by time)."""

    losses: tuple[Record, ...]
    reports: tuple[Record, ...]

    @classmethod
    def of(cls, records: Iterable[Record]) -> LossLedger:
        ordered = sorted(records, key=lambda r: r.time)
        return cls(
            losses=tuple(r for r in ordered if r.kind == RecordKind.DATA_LOST),
            reports=tuple(r for r in ordered if r.kind == RecordKind.HISTORY_LOST),
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
