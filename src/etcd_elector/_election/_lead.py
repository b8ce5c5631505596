"""``Lead``: one term of an elector, from the work's start to the report of its end.

The work runs until whichever comes first: it returns (we resign: a fast handoff), the term is
lost (the work is cancelled at once; the loss fires at the session's local deadline, before
etcd can elect anyone else), or the elector closes. Work that raised because it saw the loss
first (``term.check()`` after a pause, a call to etcd failing in the outage that ended the
term) did not end the term: the loss did. The end (stop the work, resign unless the term was
lost, ``on_lost``, the state change, the log line) runs to its end even if ``run()`` is
cancelled meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import LeadershipError, TransportError
from .._reasons import EndReason
from .._tasks import cancel_and_wait, shielded, wait_first
from ._election import AsyncElection
from ._states import ElectorEvent, ElectorState
from ._term import Term
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
    ) -> None:
        self.election = election
        self.term = term
        self._closing = closing
        self._call = call
        self._publish = publish
        self._log = log

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
        try:
            try:
                await self._call(on_elected, term, propagate=True)
            except Exception as exc:
                error, reason = exc, EndReason.WORK_FAILED
            else:
                work_task = asyncio.ensure_future(start_work(work, term))
                await wait_first(work_task, lost, closing)
                ended = end_seen(term, lost)
                if work_task.done() and work_task.cancelled():
                    finished = True  # the work cancelled itself: it is over, with no result
                elif work_task.done():
                    failure = work_task.exception()
                    if failure is None:
                        finished, result = True, work_task.result()
                        reason = EndReason.WORK_DONE
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
            await shielded(self._end(work_task, (lost, closing), reason, ended, on_lost))
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
        if work_task is not None:
            failure = await cancel_and_wait(work_task)
            if failure is not None and not isinstance(failure, LeadershipError):
                log_stop_error(self._log, failure)  # one about the term ending is expected
        for helper in helpers:
            await cancel_and_wait(helper)
        if ended is None:
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
