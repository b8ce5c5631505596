"""How an elector follows its election's planned moves between terms: the moves watch, a
pause that holds campaigns off, priority 0 standing by. Part of :class:`AsyncElector`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _metrics
from .._tasks import cancel_all, first_result, wait_first
from ._states import ElectorEvent, ElectorState, Move, MoveKind

if TYPE_CHECKING:
    from ._movewatch import MovesWatch
    from ._session import AsyncSession

__all__ = ["FollowingMoves"]

T = TypeVar("T")


class FollowingMoves:
    """The planned-moves side of :class:`AsyncElector`, which provides what is declared here."""

    if TYPE_CHECKING:
        name: str
        moves: MovesWatch
        _closing: asyncio.Event

        @property
        def state(self) -> ElectorState: ...
        def _event(self, level: int, message: str, /, **fields: Any) -> None: ...
        def _publish(self, event: ElectorEvent) -> None: ...
        async def _unless_closing(
            self, awaitable: Awaitable[T], *, or_paused: bool = False
        ) -> T | None: ...

    async def _follow_moves(self) -> None:
        try:
            await self.moves.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            self._event(logging.ERROR, "following planned moves stopped", exc_info=True)

    async def _moves_known(self, session: AsyncSession) -> bool:
        """Wait for the first read of the moves keys (a campaign must know of a pause): etcd
        just granted a lease, so it comes at once unless the session is lost first."""
        if self.moves.ready.is_set():
            return True
        await self._unless_closing(first_result(self.moves.ready.wait(), session.wait_lost()))
        return self.moves.ready.is_set() and not self.moves.paused

    async def _stand_by(self) -> None:
        """Priority 0: never campaign; wait until closed."""
        if self.state is not ElectorState.STANDBY:
            self._publish(ElectorEvent(ElectorState.STANDBY))
            self._event(logging.INFO, "standing by: priority 0 never leads")
        await self._closing.wait()

    async def _held_off(self) -> bool:
        """While the election is paused, say so and wait for the resume (or closing);
        ``True`` if it was paused."""
        pause = self.moves.pause
        if pause is None:
            return False
        move = Move(MoveKind.PAUSED, by=pause.by, reason=pause.reason or None)
        self._publish(ElectorEvent(ElectorState.PAUSED, move=move))
        _metrics.sink().planned_move(self.name, "paused")
        self._event(logging.INFO, "paused: holding off", by=pause.by, why=pause.reason or None)
        await self._unless_closing(self.moves.wait_unpaused())
        if not self._closing.is_set():
            self._publish(ElectorEvent(ElectorState.IDLE, move=Move(MoveKind.RESUMED)))
            _metrics.sink().planned_move(self.name, "resumed")
            self._event(logging.INFO, "resumed")
        return True

    async def _closing_or_paused(self) -> None:
        closing = asyncio.ensure_future(self._closing.wait())
        paused = asyncio.ensure_future(self.moves.wait_paused())
        try:
            await wait_first(closing, paused)
        finally:
            await cancel_all([closing, paused])
