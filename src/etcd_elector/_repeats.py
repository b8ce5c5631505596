"""How loudly to log a failure that keeps coming back while we retry it.

An elector rides out etcd being down, or full, for as long as it lasts: a warning on every
attempt (every few seconds, forever) buries everything else in the log. A new kind of failure
is logged at WARNING at once; the same kind again only once per interval (with how often it
failed in between), and at DEBUG in between.
"""

from __future__ import annotations

import logging

from . import _clock

__all__ = ["RepeatThrottle", "quiet_note"]

#: Seconds between two warnings about the same failure.
INTERVAL = 60.0


class RepeatThrottle:
    """``level(kind)`` for each failed attempt; ``reset()`` once an attempt succeeds."""

    def __init__(self, interval: float = INTERVAL, clock: _clock.Clock = _clock.now) -> None:
        self.interval = interval
        self._clock = clock
        self._kind: object = None
        self._warned_at = 0.0
        self._quiet = 0  # failures logged at DEBUG since the last warning

    def level(self, kind: object) -> tuple[int, int]:
        """The level for this failure, and how many of its kind went by quietly before it."""
        now = self._clock()
        if kind != self._kind or now - self._warned_at >= self.interval:
            quiet = self._quiet if kind == self._kind else 0
            self._kind, self._warned_at, self._quiet = kind, now, 0
            return logging.WARNING, quiet
        self._quiet += 1
        return logging.DEBUG, 0

    def reset(self) -> None:
        self._kind = None
        self._quiet = 0


def quiet_note(quiet: int) -> str:
    """What a repeated warning adds: how often it failed since the last one."""
    return f" (failed {quiet} more times since the last warning)" if quiet else ""
