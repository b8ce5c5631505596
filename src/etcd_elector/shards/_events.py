"""What a replica of a shard group reports: :class:`ShardEvent` (one change, from
``AsyncShardGroup.events()``), and the shapes of the work and callbacks it runs."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._reasons import EndReason
from ._owned import OwnedShard

__all__ = [
    "EventStream",
    "OnAcquired",
    "OnReleased",
    "ShardEvent",
    "ShardEventKind",
    "ShardWork",
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


class EventStream:
    """Every event published, to each follower from the moment it started following."""

    def __init__(self) -> None:
        self._followers: list[asyncio.Queue[ShardEvent]] = []

    def publish(self, event: ShardEvent) -> None:
        for queue in self._followers:
            queue.put_nowait(event)

    async def follow(self) -> AsyncGenerator[ShardEvent, None]:
        """Events from now on, ending after ``STOPPED``."""
        queue: asyncio.Queue[ShardEvent] = asyncio.Queue()
        self._followers.append(queue)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.kind is ShardEventKind.STOPPED:
                    return
        finally:
            self._followers.remove(queue)
