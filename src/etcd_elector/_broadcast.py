"""One stream of events read by any number of followers (the elector's state changes, a shard
group's events): each follower gets every event published from the moment it began following,
in order, and its stream ends after the final event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Generic, TypeVar

__all__ = ["Broadcast"]

T = TypeVar("T")


class Broadcast(Generic[T]):
    """Events to every follower; ``is_final(event)`` says which event ends the streams. A
    follower that begins after the final event was published ends at once (it would otherwise
    wait for an event that never comes)."""

    def __init__(self, is_final: Callable[[T], bool]) -> None:
        self._is_final = is_final
        self._followers: list[asyncio.Queue[T]] = []
        self._ended = False

    def publish(self, event: T) -> None:
        if self._is_final(event):
            self._ended = True
        for queue in self._followers:
            queue.put_nowait(event)

    async def follow(self) -> AsyncGenerator[T, None]:
        if self._ended:
            return
        queue: asyncio.Queue[T] = asyncio.Queue()
        self._followers.append(queue)
        try:
            while True:
                event = await queue.get()
                yield event
                if self._is_final(event):
                    return
        finally:
            self._followers.remove(queue)
