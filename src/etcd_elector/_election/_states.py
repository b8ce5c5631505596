"""Where an elector is, as a value (:class:`ElectorState`) and as a stream of changes that any
number of followers read (:class:`StateStream`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .._broadcast import Broadcast
from .._reasons import EndReason
from ._term import Term

__all__ = ["ElectorEvent", "ElectorState", "Move", "MoveKind", "StateStream"]


class ElectorState(enum.Enum):
    """Where an elector is: ``IDLE`` (between terms), ``CAMPAIGNING``, ``LEADING``,
    ``DRAINING`` (still leading, the work told to stop for a planned move), ``PAUSED`` (the
    election is paused: holding off until it is resumed), ``STANDBY`` (priority 0: never
    leads) or ``STOPPED`` (closed; ``states()`` ends after it)."""

    IDLE = "idle"
    CAMPAIGNING = "campaigning"
    LEADING = "leading"
    DRAINING = "draining"
    PAUSED = "paused"
    STANDBY = "standby"
    STOPPED = "stopped"


class MoveKind(enum.StrEnum):
    """A planned move, as events, ``--json`` output and metrics name it."""

    HANDOFF_REQUESTED = "handoff-requested"
    DRAINING = "draining"
    HANDED_OFF = "handed-off"
    PAUSED = "paused"
    RESUMED = "resumed"


@dataclass(frozen=True)
class Move:
    """What a planned-move event says: its kind and, where they apply, the successor asked
    for (``to``) or chosen (``successor``, the key), who asked (``by``), why (``reason``:
    ``request``, ``term``, ``priority``, ``pause``, ``close``...) and the drain budget."""

    kind: MoveKind
    to: bytes | None = None
    by: str | None = None
    reason: str | None = None
    successor: str | None = None
    budget: float | None = None


@dataclass(frozen=True)
class ElectorEvent:
    """A change of the elector's state; ``reason`` is set when a term ends, ``move`` for a
    planned move (the state is then the one the elector is in)."""

    state: ElectorState
    term: Term | None = None
    reason: EndReason | None = None
    move: Move | None = None


class StateStream(Broadcast[ElectorEvent]):
    """The current state, and every change published to each follower (none is missed); a
    follow ends after ``STOPPED``."""

    def __init__(self) -> None:
        super().__init__(lambda event: event.state is ElectorState.STOPPED)
        self.current = ElectorState.IDLE

    def publish(self, event: ElectorEvent) -> None:
        self.current = event.state
        super().publish(event)
