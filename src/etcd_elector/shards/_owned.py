"""``OwnedShard``: one replica's ownership of one shard, from acquisition to release.

Like a term of leadership it is checked locally and cheaply (``is_owned()``, from the session's
deadline and the clock, no I/O, safe from any thread), and it carries the fencing token: the
owner key's create revision, which strictly increases across the owners of the shard.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import _clock
from .._errors import LeadershipLost
from .._reasons import EndReason

__all__ = ["OwnedShard", "new_owned"]


class _ShardState:
    """Whether the ownership still holds, and the signals work waits on (set on the loop)."""

    def __init__(self, holds: Callable[[], bool], deadline: Callable[[], float]) -> None:
        self.holds = holds
        self.deadline = deadline
        self.ended_at: float | None = None
        self.stopping = threading.Event()
        self.lost = threading.Event()
        self.stopping_async = asyncio.Event()
        self.reason: EndReason | None = None

    def stop(self) -> None:
        self.stopping.set()
        self.stopping_async.set()

    def end(self, reason: EndReason) -> None:
        if self.reason is None:
            self.reason = reason
            # Belief ended now, or at the session's deadline if that came first (a paused
            # process notices late, but is_owned() was false from the deadline on).
            self.ended_at = min(_clock.now(), self.deadline())
        self.stop()
        self.lost.set()


@dataclass(frozen=True)
class OwnedShard:
    """This replica owns ``shard`` with fencing token ``token`` until ``is_owned()`` turns
    false. ``stopping`` is set when the work should wind down (the shard is moving away, the
    replica is leaving, or the ownership ended); ``lost`` when the ownership has ended."""

    group: str
    shard: str
    key: str
    lease_id: int
    token: int
    acquired_at: float  # on etcd_elector's clock (CLOCK_BOOTTIME), like Term.elected_at
    _state: _ShardState = field(compare=False, repr=False)

    @property
    def lease_hex(self) -> str:
        return f"{self.lease_id:x}"

    @property
    def stopping(self) -> threading.Event:
        """Set when the work should stop: drain, then return."""
        return self._state.stopping

    @property
    def lost(self) -> threading.Event:
        """Set once the ownership has ended."""
        return self._state.lost

    @property
    def end_reason(self) -> EndReason | None:
        """Why the ownership ended: ``MOVED`` or ``CLOSED`` (released on purpose, after a
        drain), ``KEY_DELETED``, or the session's reason (``DEADLINE``, ``EXPIRED``...)."""
        return self._state.reason

    @property
    def ended_at(self) -> float | None:
        """When the ownership ended, on the same clock as ``acquired_at`` (``None`` while it
        holds): the moment it was ended, or the session's deadline if that came first."""
        return self._state.ended_at

    async def wait_stopping(self) -> None:
        """Return once the work should stop (for async work: ``await shard.wait_stopping()``)."""
        await self._state.stopping_async.wait()

    def is_owned(self) -> bool:
        """True while this replica owns the shard: computed from the session's deadline now."""
        return not self._state.lost.is_set() and self._state.holds()

    def check(self) -> None:
        """:raises LeadershipLost: if this replica no longer owns the shard."""
        if not self.is_owned():
            reason = self._state.reason or EndReason.DEADLINE
            raise LeadershipLost(
                f"ownership of shard {self.shard!r} of group {self.group!r} (token "
                f"{self.token}) is over ({reason})",
                reason=reason,
            )


def new_owned(
    group: str,
    shard: str,
    key: str,
    lease_id: int,
    token: int,
    holds: Callable[[], bool],
    deadline: Callable[[], float],
) -> OwnedShard:
    state = _ShardState(holds, deadline)
    return OwnedShard(group, shard, key, lease_id, token, _clock.now(), state)
