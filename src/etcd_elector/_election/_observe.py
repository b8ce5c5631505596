"""What an observer of an election learns: typed events from ``AsyncElectionView.observe_events``.

An observer that goes quiet while etcd is down looks exactly like one watching a stable
leader. These events say when it is blind (and since when), when it sees again, and when
etcd's history went back (:class:`HistoryLoss`); the leader is re-stated after each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..etcd._history_guard import HistoryLoss

if TYPE_CHECKING:
    from ._leader import LeaderInfo

__all__ = ["EtcdReachable", "EtcdUnreachable", "LeaderObserved", "ObservationEvent"]


@dataclass(frozen=True)
class LeaderObserved:
    """The leader (``None``: nobody leads), read from etcd: at the start, after each change,
    and again after an outage or a history loss. ``restated`` is true when it did not change
    since it was last reported (said again because it may have been stale meanwhile)."""

    leader: LeaderInfo | None
    restated: bool = False


@dataclass(frozen=True)
class EtcdUnreachable:
    """etcd cannot be reached (every endpoint failed): from now on the observer is blind.

    ``since`` is when the trouble was first noticed (on :func:`etcd_elector._clock.now`),
    ``error`` the last failure, and ``last_leader`` the leader reported before, which may be
    stale by now. Sent once per outage; :class:`EtcdReachable` ends it.
    """

    since: float
    error: str
    last_leader: LeaderInfo | None


@dataclass(frozen=True)
class EtcdReachable:
    """etcd answers again after an outage that began at ``since`` and lasted ``outage``
    seconds; a :class:`LeaderObserved` follows."""

    since: float
    outage: float


ObservationEvent = LeaderObserved | EtcdUnreachable | EtcdReachable | HistoryLoss
"""Everything :meth:`AsyncElectionView.observe_events` yields."""
