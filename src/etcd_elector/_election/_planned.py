"""When a leader must move on although nothing went wrong: what :class:`~._lead.Lead` waits
for beside its work, its loss and the elector's close.

A move is due when the election is paused, when someone asked this term to hand off (a
request key naming our token, or ``term.hand_off()``), or when a live candidate declared a
higher priority than ours. The first two are local checks of what the moves watch holds; the
priority check reads the candidates, and only when a declared priority above ours exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .._errors import EtcdElectorError
from .._tasks import cancel_all, wait_first
from ._moves import DEFAULT_PRIORITY
from ._movewatch import MovesWatch
from ._term import Term
from ._view import AsyncElectionView

__all__ = ["PlannedMove", "next_move", "outranked"]


@dataclass(frozen=True)
class PlannedMove:
    """A move due now: step down for a pause, or hand off (to the candidate whose value is
    ``to``; ``None``: the highest priority, else the next in line). ``reason`` says what
    asked: ``pause``, ``request``, ``term`` or ``priority``."""

    pause: bool
    reason: str
    to: bytes | None = None
    by: str | None = None


def due_now(moves: MovesWatch, term: Term) -> PlannedMove | None:
    """A pause or a request for this term, from what the watch holds (no I/O)."""
    if moves.pause is not None:
        return PlannedMove(pause=True, reason="pause", by=moves.pause.by)
    pending = moves.request
    if pending is not None and pending.request.token == term.token:
        to = pending.request.to
        return PlannedMove(
            pause=False,
            reason="request",
            to=None if to is None else to.encode(),
            by=pending.request.by,
        )
    return None


async def outranked(view: AsyncElectionView, moves: MovesWatch, term: Term, priority: int) -> bool:
    """Whether a live candidate (other than us) declared a priority above ``priority``."""
    higher = {lease for lease, p in moves.priorities.items() if p > priority}
    higher.discard(term.lease_id)
    if not higher and priority >= DEFAULT_PRIORITY:
        return False
    for candidate in await view.candidates():
        if candidate.lease_id == term.lease_id:
            continue
        declared = moves.priorities.get(candidate.lease_id, DEFAULT_PRIORITY)
        if declared > priority:
            return True
    return False


async def next_move(
    view: AsyncElectionView,
    moves: MovesWatch,
    term: Term,
    priority: int,
    asked: asyncio.Future[bytes | None],
    log: Callable[..., None],
) -> PlannedMove:
    """Wait until a move is due for ``term``; ``asked`` is set by ``term.hand_off(to)``."""
    checked_priorities = -1
    while True:
        if asked.done():
            return PlannedMove(pause=False, reason="term", to=asked.result(), by="term")
        found = due_now(moves, term)
        if found is not None:
            return found
        if moves.priority_changes != checked_priorities:
            checked_priorities = moves.priority_changes
            try:
                if await outranked(view, moves, term, priority):
                    return PlannedMove(pause=False, reason="priority", by="priority")
            except EtcdElectorError as exc:  # read again at the next change
                log(logging.WARNING, "cannot read the candidates' priorities", detail=exc)
        changed = asyncio.ensure_future(moves.changed())
        try:
            await wait_first(changed, asked)
        finally:
            await cancel_all([changed])
