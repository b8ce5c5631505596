"""The local lease deadline: pure timing logic, no I/O.

etcd renews a lease when it *receives* a keepalive, which is after we sent it, so
``sent_at + granted_ttl`` can only be earlier than etcd's expiry. Subtracting a safety margin
leaves time to stop leader work before etcd could let anyone else win.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._clock import Clock

__all__ = ["LeaseDeadline"]


@dataclass
class LeaseDeadline:
    """When we must stop believing our lease is alive, on ``clock``.

    Checks compute from the clock at call time; nothing relies on a timer having fired.
    """

    clock: Clock
    margin: float
    at: float = float("-inf")

    def renewed(self, sent_at: float, granted_ttl: float) -> None:
        """etcd answered a request sent at ``sent_at`` with ``granted_ttl`` seconds.

        Deadlines only move forward: a late answer to an older request never shortens them.
        """
        self.at = max(self.at, sent_at + granted_ttl - self.margin)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    def passed(self) -> bool:
        return self.clock() >= self.at
