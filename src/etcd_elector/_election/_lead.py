"""``Lead``: one term of an elector, from the work's start to the report of its end.

The work runs until whichever comes first: it returns (we resign: a fast handoff), the term is
lost (the work is cancelled at once; the loss fires at the session's local deadline, before
etcd can elect anyone else), the elector closes, or a planned move is due (a pause, a handoff
asked for, a candidate of higher priority: :mod:`._planned`). On a close or a move the work is
drained first: told to stop (``term.draining``) and given the drain budget, cancelled only
when that is spent, and the key goes (resign, or hand off) only once the work has stopped; a
loss during the drain cancels it at once (the deadline always wins).

Work that raised because it saw the loss first (``term.check()`` after a pause, a call to etcd
failing in the outage that ended the term) did not end the term: the loss did. The end (stop
the work, resign unless the term was lost, ``on_lost``, the state change, the log line) runs
to its end even if ``run()`` is cancelled meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import _metrics
from .._errors import LeadershipError, NotLeader, TransportError
from .._reasons import EndReason
from .._tasks import cancel_and_wait, shielded, wait_first
from ._election import AsyncElection
from ._movewatch import MovesWatch
from ._planned import PlannedMove, due_now, next_move
from ._states import ElectorEvent, ElectorState, Move, MoveKind
from ._term import Term, on_hand_off, start_draining
from ._work import Work, end_seen, part_of_the_loss, start_work

__all__ = ["Lead", "log_stop_error"]

#: Calls an elector callback (plain or async), logging what it raises unless ``propagate``.
Call = Callable[..., Awaitable[None]]


def log_stop_error(log: Callable[..., None], error: BaseException) -> None:
    """An error from work whose term was over, or that was being stopped: one line."""
    log(logging.WARNING, f"the work raised {type(error).__name__} as its term ended", detail=error)


class Lead:
    """One term of ``term`` in ``election``; ``closing`` is set when the elector stops, ``call``
    runs its callbacks, ``publish`` reports its states and ``log`` writes its log lines."""

    def __init__(
        self,
        election: AsyncElection,
        term: Term,
        *,
        closing: asyncio.Event,
        call: Call,
        publish: Callable[[ElectorEvent], None],
        log: Callable[..., None],
        moves: MovesWatch,
        drain: float = 0.0,
        priority: int = 1,
    ) -> None:
        self.election = election
        self.term = term
        self._closing = closing
        self._call = call
        self._publish = publish
        self._log = log
        self._moves = moves
        self._drain = drain
        self._priority = priority
        self._move: PlannedMove | None = None
        self._state = ElectorState.LEADING

    async def run(
        self,
        work: Work,
        on_elected: Callable[[Term], object] | None,
        on_lost: Callable[[Term, EndReason], object] | None,
    ) -> tuple[bool, Any]:
        """Run ``work`` for the term. Returns (the work finished, its result).

        :raises Exception: what ``work`` or ``on_elected`` raised (after resigning).
        """
        term = self.term
        self._publish(ElectorEvent(ElectorState.LEADING, term))
        reason = EndReason.CLOSED
        error: BaseException | None = None
        result: Any = None
        finished = False
        ended: EndReason | None = None
        work_task: asyncio.Future[Any] | None = None
        lost = asyncio.ensure_future(self.election.wait_lost())
        closing = asyncio.ensure_future(self._closing.wait())
        loop = asyncio.get_running_loop()
        asked: asyncio.Future[bytes | None] = loop.create_future()

        def hand_off_asked(to: bytes | None) -> None:
            loop.call_soon_threadsafe(_settle, asked, to)

        on_hand_off(term, hand_off_asked)
        moving = asyncio.ensure_future(
            next_move(self.election.view, self._moves, term, self._priority, asked, self._log)
        )
        helpers = (lost, closing, moving)
        try:
            try:
                await self._call(on_elected, term, propagate=True)
            except Exception as exc:
                error, reason = exc, EndReason.WORK_FAILED
            else:
                # Paused, or asked to hand off, already: the work never starts.
                self._move = due_now(self._moves, term)
                if self._move is not None:
                    self._announce_move(self._move)
            if self._move is None and error is None:
                work_task = asyncio.ensure_future(start_work(work, term))
                await wait_first(work_task, lost, closing, moving)
                if moving.done() and not moving.cancelled() and not work_task.done():
                    self._move = moving.result()
                drained_for_close = self._move is None and closing.done()
                if self._move is not None or (closing.done() and not work_task.done()):
                    await self._drain_work(work_task, lost)
                ended = end_seen(term, lost)
                if work_task.done() and work_task.cancelled():
                    finished = True  # the work cancelled itself: it is over, with no result
                elif work_task.done():
                    failure = work_task.exception()
                    if failure is None:
                        finished, result = True, work_task.result()
                        # Work that returned because it was told to stop did not end the term.
                        reason = EndReason.CLOSED if drained_for_close else EndReason.WORK_DONE
                    elif ended is None or not part_of_the_loss(failure):
                        error, reason = failure, EndReason.WORK_FAILED
                    elif not isinstance(failure, LeadershipError):
                        log_stop_error(self._log, failure)
                if ended is not None:
                    # The loss wins: work that returned together with it (threaded work returns
                    # when it sees term.lost), or raised because it saw it first, did not end
                    # the term, the loss did.
                    finished, reason = False, ended
        finally:
            # Runs to its end even if run() is cancelled meanwhile: the work stops, we resign
            # and on_lost is called, then the cancellation goes on.
            if self._move is not None and ended is None and error is None:
                reason = EndReason.PAUSED if self._move.pause else EndReason.HANDED_OFF
            await shielded(self._end(work_task, helpers, reason, ended, on_lost))
        if error is not None:
            raise error
        return finished, result

    async def _end(
        self,
        work_task: asyncio.Future[Any] | None,
        helpers: tuple[asyncio.Future[Any], ...],
        reason: EndReason,
        ended: EndReason | None,
        on_lost: Callable[[Term, EndReason], object] | None,
    ) -> None:
        """Stop the work (leadership may already be gone), resign unless the term was lost,
        and report the end."""
        term = self.term
        on_hand_off(term, _over)  # a late term.hand_off() finds the term over: nothing to do
        if work_task is not None:
            if not work_task.done() and self._state is ElectorState.DRAINING and self._drain:
                _metrics.sink().planned_move(self.election.name, "drain_cancelled")
            failure = await cancel_and_wait(work_task)
            if failure is not None and not isinstance(failure, LeadershipError):
                log_stop_error(self._log, failure)  # one about the term ending is expected
        for helper in helpers:
            await cancel_and_wait(helper)
        if ended is None and self._move is not None and not self._move.pause:
            await self._hand_off(self._move)
        elif ended is None:
            await self._resign()
        await self._call(on_lost, term, reason)
        self._publish(ElectorEvent(ElectorState.IDLE, term, reason))
        self._log(
            logging.INFO,
            "term over",
            key=term.key,
            lease=term.lease_hex,
            token=term.token,
            reason=reason,
        )

    async def _drain_work(self, work_task: asyncio.Future[Any], lost: asyncio.Future[Any]) -> None:
        """Tell the work to stop and wait up to the drain budget for it; the loss of the term
        ends the wait at once (the deadline always wins)."""
        move, term = self._move, self.term
        if move is not None:
            self._announce_move(move)
        if move is not None or self._drain > 0:  # a plain close without a budget: as before
            self._state = ElectorState.DRAINING
            self._announce(
                MoveKind.DRAINING, reason=move.reason if move else "close", budget=self._drain
            )
        if self._drain > 0:  # with no budget the work is cancelled at once, as it always was
            start_draining(term)
            if not work_task.done():
                await asyncio.wait([work_task, lost], timeout=self._drain)

    def _announce_move(self, move: PlannedMove) -> None:
        kind = MoveKind.PAUSED if move.pause else MoveKind.HANDOFF_REQUESTED
        self._announce(kind, to=move.to, by=move.by, reason=move.reason)

    def _announce(self, kind: MoveKind, **fields: Any) -> None:
        move = Move(kind, **fields)
        self._publish(ElectorEvent(self._state, self.term, move=move))
        _metrics.sink().planned_move(self.election.name, kind.value.replace("-", "_"))
        self._log(
            logging.INFO,
            kind.value,
            key=self.term.key,
            lease=self.term.lease_hex,
            token=self.term.token,
            **{k: v for k, v in fields.items() if v is not None},
        )

    async def _hand_off(self, move: PlannedMove) -> None:
        try:
            successor = await self.election.hand_off(move.to)
        except NotLeader:
            return  # the term ended meanwhile: nothing of ours to hand over
        except TransportError as exc:
            self._log(
                logging.WARNING,
                "handoff failed (the key expires with its lease)",
                lease=self.election.session.lease_hex,
                detail=exc,
            )
            return
        if successor is None:
            _metrics.sink().planned_move(self.election.name, "handoff_fallback")
            return
        self._announce(MoveKind.HANDED_OFF, successor=successor.key, to=move.to)

    async def _resign(self) -> None:
        try:
            await self.election.resign()
        except TransportError as exc:
            self._log(
                logging.WARNING,
                "resign failed (the key expires with its lease)",
                lease=self.election.session.lease_hex,
                detail=exc,
            )


def _settle(future: asyncio.Future[bytes | None], to: bytes | None) -> None:
    if not future.done():
        future.set_result(to)


def _over(to: bytes | None) -> None:
    """``term.hand_off()`` once the term is over."""
