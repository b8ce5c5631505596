"""What a replica of a shard group reports: :class:`ShardEvent` (one change, from
``AsyncShardGroup.events()``), and the shapes of the work and callbacks it runs."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._broadcast import Broadcast
from .._reasons import EndReason
from ._owned import OwnedShard

__all__ = [
    "OnAcquired",
    "OnReleased",
    "ShardEvent",
    "ShardEventKind",
    "ShardWork",
    "event_stream",
]

#: ``work(shard)``: runs while this replica owns ``shard``.
ShardWork = Callable[[OwnedShard], Awaitable[Any]]
#: ``on_acquired(shard)`` and ``on_released(shard, reason)``: plain or async functions (what
#: they return is awaited if it can be); they run on the event loop.
OnAcquired = Callable[[OwnedShard], object]
OnReleased = Callable[[OwnedShard, EndReason], object]


class ShardEventKind(enum.Enum):
    """What a :class:`ShardEvent` reports."""

    JOINED = "joined"  # this replica registered as a member (``lease`` set)
    ACQUIRED = "acquired"  # a shard is ours (``shard``, ``token``)
    DRAINING = "draining"  # its work was told to stop; release follows
    RELEASED = "released"  # we gave it up on purpose (``reason``: moved, closed)
    LOST = "lost"  # it ended without a drain (session lost, key deleted)
    LEFT = "left"  # this replica is no longer a member (``reason``)
    STOPPED = "stopped"  # the group was closed; ``events()`` ends after it


@dataclass(frozen=True)
class ShardEvent:
    """One change seen by a replica (from :meth:`AsyncShardGroup.events`): ``shard``,
    ``token`` and the ownership itself (``owned``) for the shard events, ``lease`` (this
    replica's), ``reason`` for ends. Events are published the moment they happen: a
    ``released`` event comes before the owner key is deleted."""

    kind: ShardEventKind
    shard: str | None = None
    token: int = 0
    lease: int = 0
    reason: EndReason | None = None
    owned: OwnedShard | None = field(default=None, compare=False, repr=False)


def event_stream() -> Broadcast[ShardEvent]:
    """A replica's events to every follower, each follow ending after ``STOPPED``."""
    return Broadcast(lambda event: event.kind is ShardEventKind.STOPPED)
