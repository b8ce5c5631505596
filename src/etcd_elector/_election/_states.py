"""Where an elector is, as a value (:class:`ElectorState`) and as a stream of changes that any
number of followers read (:class:`StateStream`)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from .._reasons import EndReason
from ._term import Term

__all__ = ["ElectorEvent", "ElectorState", "StateStream"]


class ElectorState(enum.Enum):
    """Where an elector is: ``IDLE`` (between terms), ``CAMPAIGNING``, ``LEADING`` or
    ``STOPPED`` (closed; ``states()`` ends after it)."""

    IDLE = "idle"
    CAMPAIGNING = "campaigning"
    LEADING = "leading"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ElectorEvent:
    """A change of the elector's state; ``reason`` is set when a term ends."""

    state: ElectorState
    term: Term | None = None
    reason: EndReason | None = None


class StateStream:
    """The current state, and every change published to each follower (none is missed)."""

    def __init__(self) -> None:
        self.current = ElectorState.IDLE
        self._followers: list[asyncio.Queue[ElectorEvent]] = []

    def publish(self, event: ElectorEvent) -> None:
        self.current = event.state
        for queue in self._followers:
            queue.put_nowait(event)

    async def follow(self) -> AsyncGenerator[ElectorEvent, None]:
        """Every change from now on, ending after ``STOPPED``."""
        queue: asyncio.Queue[ElectorEvent] = asyncio.Queue()
        self._followers.append(queue)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.state is ElectorState.STOPPED:
                    return
        finally:
            self._followers.remove(queue)
