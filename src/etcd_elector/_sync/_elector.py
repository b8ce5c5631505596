"""``Elector``: the blocking twin of :class:`AsyncElector`, whose work runs in the caller's
thread."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._election._elector import AsyncElector, ElectorState
from .._election._leader import LeaderInfo
from .._election._term import Term, end_term
from .._election._work import refuse_async_function
from .._reasons import EndReason
from .._stop_signals import SignalSlot
from .._tasks import shielded
from ._bridge import Twin

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Elector"]

T = TypeVar("T")


class Elector(Twin[AsyncElector]):
    """Blocking twin of :class:`AsyncElector`.

    ``run(work)`` calls ``work(term)`` in *your* thread. A thread cannot be cancelled, so when
    leadership is lost ``term.lost`` (a ``threading.Event``) is set and ``term.is_leader()``
    turns false: check one of them (or call ``term.check()``, which raises ``LeadershipLost``)
    before each unit of work. The elector waits for ``work`` to return before campaigning
    again. For a planned stop (``close()``, a stop signal, a handoff, a pause) with a
    ``drain`` budget, ``term.draining`` is set first: finish the unit at hand and return.
    For work that must be killed on loss, run it as a process under ``etcd-elector run``.

    Callbacks run on the client's event loop thread: keep them short, and use the async API
    there (``client.aio``); the blocking API refuses to run on that thread, and the error
    ends the term (from ``on_elected``, ``run()`` raises it) or is logged (the others).
    """

    def __init__(self, client: Client, elector: AsyncElector) -> None:
        super().__init__(client, elector)
        self.client = client
        self._stop_signals = SignalSlot()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop, resign and close the session. Idempotent."""
        if not self.client.closed:
            self.portal.call(self.aio.close)
        self._stop_signals.restore()

    def stop_on_signals(self) -> None:
        """Stop cleanly on SIGTERM (docker stop, systemd, Kubernetes) and SIGINT (Ctrl-C)::

            with client.elector("scheduler") as elector:
                elector.stop_on_signals()
                elector.run(schedule_jobs)  # returns None once a signal came

        ``term.lost`` is set, the elector waits for the work to return, resigns (the next
        candidate takes over within a round trip) and ``run()`` returns ``None``: no
        ``KeyboardInterrupt``, no traceback. A signal that comes again while stopping is
        ignored, so the resign still happens. Once ``run()`` has returned after a stop (or at
        ``close()``), the previous handlers are back. Call it from the main thread; ``run()``
        may then block there.

        :raises RuntimeError: outside the main thread.
        """
        self._stop_signals.install(self.portal.loop, self.aio.on_stop_signal)

    def is_leader(self) -> bool:
        """Local, no I/O: true only while a term holds and the session deadline has not passed."""
        return self.aio.is_leader()

    @property
    def term(self) -> Term | None:
        """The current term, or ``None``."""
        return self.aio.term

    @property
    def state(self) -> ElectorState:
        """Idle, campaigning, leading or stopped."""
        return self.aio.state

    def leader(self) -> LeaderInfo | None:
        """The current leader of the election (a linearizable read)."""
        return self.portal.call(self.aio.leader)

    def run(self, work: Callable[[Term], T]) -> T | None:
        """Campaign and call ``work(term)`` in this thread while leader; see the class docs.

        Work that raises ``LeadershipLost`` (``term.check()``) because its term is over ends
        the term like any loss, and the elector campaigns again. Returns ``None`` when the
        elector is closed or stopped by a signal, or the work's result with ``requeue=False``.

        :raises LeadershipLost: with ``requeue=False``, if the term ended before work returned.
        :raises TypeError: if ``work`` is an async function: use :class:`AsyncElector`.
        :raises RuntimeError: if the elector is closed, or ``run()`` is already active on it.
        :raises Exception: whatever ``work`` or ``on_elected`` raised (after resigning).
        """
        refuse_async_function(work)
        handoff: queue.Queue[tuple[Term, asyncio.Future[Any]] | None] = queue.Queue()
        loop = self.portal.loop

        async def in_this_thread(term: Term) -> Any:
            done: asyncio.Future[Any] = loop.create_future()
            handoff.put((term, done))
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                # Leadership ended or the elector is closing: tell the thread through
                # term.lost (a loss has set it already), then wait until its work returns.
                end_term(term, EndReason.CLOSED)
                await shielded(asyncio.wait([done]))
                failure = None if done.cancelled() else done.exception()
                if failure is not None:
                    raise failure from None  # what the work raised while stopping, not lost
                raise

        finished = threading.Event()

        async def run_and_signal() -> Any:
            try:
                return await self.aio.run(in_this_thread)
            finally:
                finished.set()
                handoff.put(None)

        runner = self.portal.submit(run_and_signal)
        try:
            while True:
                item = handoff.get()
                if item is None:
                    finished_with: T | None = runner.result()
                    return finished_with
                term, done = item
                try:
                    result = work(term)
                except BaseException as exc:
                    loop.call_soon_threadsafe(_settle, done, None, exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    loop.call_soon_threadsafe(_settle, done, result, None)
        finally:
            if not finished.is_set():
                runner.cancel()
                finished.wait(30)  # the run loop stops the term, resigns, closes its session
            if self.aio.stopping:
                self._stop_signals.restore()  # stopped and resigned: a further signal is not ours


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
    else:
        future.set_result(result)
