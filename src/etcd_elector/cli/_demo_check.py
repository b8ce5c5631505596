"""The demo's safety check: every term as its holder reported it, and no two may overlap.

A term runs from the holder's ``elected_at`` to its ``ended_at`` (when it stopped believing it
leads: resigned, lost, or its local deadline passed, even while it was paused), or to the
moment the demo SIGKILLed it. Open terms are not judged: a paused leader reports late, and
output of different processes arrives in no particular order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Interval", "LeaderLog"]


@dataclass
class Interval:
    """One term. ``owner`` identifies the process (a restart is a new owner)."""

    owner: object
    name: str
    token: int
    start: float
    end: float | None = None


class LeaderLog:
    """Terms of every candidate; calls ``alarm(message)`` for each overlap found."""

    def __init__(self, alarm: Callable[[str], None]) -> None:
        self.intervals: list[Interval] = []
        self.overlaps: list[str] = []
        self._alarm = alarm

    def opened(self, owner: object, name: str, token: int, start: float) -> None:
        self.intervals.append(Interval(owner, name, token, start))

    def is_open(self, owner: object) -> bool:
        return any(i.owner is owner and i.end is None for i in self.intervals)

    def closed(self, owner: object, token: int | None, end: float) -> None:
        """The term ``token`` of ``owner`` (every open one if ``None``) ended at ``end``."""
        for interval in self.intervals:
            mine = interval.owner is owner and token in (None, interval.token)
            if mine and interval.end is None:
                interval.end = end
                self._check(interval)

    def _check(self, closed: Interval) -> None:
        assert closed.end is not None
        for other in self.intervals:
            if other.owner is closed.owner or other.end is None:
                continue
            if other.start < closed.end and closed.start < other.end:
                message = (
                    f"TWO LEADERS AT ONCE: {closed.name} led {closed.start:.3f}-{closed.end:.3f} "
                    f"and {other.name} led {other.start:.3f}-{other.end:.3f}"
                )
                if message not in self.overlaps:
                    self.overlaps.append(message)
                    self._alarm(message)
