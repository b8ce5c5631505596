"""What ``etcd-elector run`` does when its command exits by itself while leader: exit, start
it again after a backoff, or give the term up so that another candidate can lead
(``--restart``, ``--max-failures``, ``--failure-window``). Pure timing logic, no I/O.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Literal

from .. import _clock

__all__ = ["RESTART_MODES", "Decision", "RestartPolicy"]

RESTART_MODES = ("never", "on-failure", "always")
RESTART_BACKOFF = (0.2, 5.0)
STABLE_RUN = 10.0  # a command that ran this long restarts after the shortest backoff


@dataclass(frozen=True)
class Decision:
    """``exit`` (with the command's code), ``restart`` after ``delay`` seconds, or
    ``resign``: ``failures`` failures came within the window."""

    action: Literal["exit", "restart", "resign"]
    delay: float = 0.0
    failures: int = 0


class RestartPolicy:
    """The restart rules for one term.

    :param mode: ``never``, ``on-failure`` (a non-zero exit restarts) or ``always``.
    :param max_failures: give the term up at this many failures within ``window`` seconds
        (0: never give up).
    """

    def __init__(
        self,
        mode: str,
        *,
        max_failures: int,
        window: float,
        clock: _clock.Clock = _clock.now,
    ) -> None:
        self.mode = mode
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: collections.deque[float] = collections.deque()
        self._delay = RESTART_BACKOFF[0]

    def after_exit(self, code: int, ran_for: float) -> Decision:
        """The command exited by itself with ``code`` after running ``ran_for`` seconds."""
        failed = code != 0
        if self.mode == "never" or (self.mode == "on-failure" and not failed):
            return Decision("exit")
        if failed and self.max_failures:
            now = self._clock()
            self._failures.append(now)
            while self._failures and self._failures[0] <= now - self.window:
                self._failures.popleft()
            if len(self._failures) >= self.max_failures:
                return Decision("resign", failures=len(self._failures))
        if ran_for >= STABLE_RUN:
            self._delay = RESTART_BACKOFF[0]
        delay, self._delay = self._delay, min(self._delay * 2, RESTART_BACKOFF[1])
        return Decision("restart", delay=delay)
