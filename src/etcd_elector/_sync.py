"""The blocking twins of the async API, for threaded code (Django, Flask, Celery, threads).

Each ``Client`` runs the async core on one event loop in a background thread (see
:mod:`._portal`); these classes only carry calls into that loop, so keepalives and watches keep
running while your thread blocks. Objects may be shared between threads. Local checks
(``is_leader()``, ``alive``, ``remaining()``) read state directly and cost no loop round trip.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Unpack

from ._client import AsyncClient
from ._config import ClientConfig, ClientSettings
from ._election._election import AsyncElection
from ._election._elector import AsyncElector, ElectorState
from ._election._observe import ObservationEvent
from ._election._session import AsyncSession, SessionState
from ._election._term import Term, end_term
from ._election._view import ElectionView as AsyncElectionView
from ._election._view import LeaderInfo
from ._election._work import refuse_async_function
from ._keys import KeyLike
from ._portal import Portal, SyncIterator
from ._reasons import EndReason
from ._stop_signals import StopSignals
from ._tasks import shielded
from .etcd._history_guard import HistoryGuard
from .etcd._txn import Compare, Op
from .etcd._types import (
    DeleteResult,
    GetResult,
    KeepAliveAnswer,
    Lease,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TxnResult,
    WatchBatch,
)
from .etcd._watch import AsyncWatch

__all__ = ["Client", "Election", "ElectionView", "Elector", "Session", "Watch"]

log = logging.getLogger(__name__)


class Client:
    """Blocking etcd client, for threaded code::

        with Client("127.0.0.1:2379") as client, client.session(ttl=10) as session:
            election = session.election("scheduler")
            term = election.campaign("host-a")  # blocks until elected
            while term.is_leader():
                ...

    Same arguments as :class:`AsyncClient`. Starts one background thread, stopped by ``close()``.

    :raises ConfigurationError: for malformed endpoints or timeouts, or unusable TLS files.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        *,
        config: ClientConfig | None = None,
        token_file: str | os.PathLike[str] | None = None,
        **settings: Unpack[ClientSettings],
    ) -> None:
        self.aio = AsyncClient(endpoints, config=config, token_file=token_file, **settings)
        self.portal = Portal()
        self.portal.call(self.aio.open)

    @property
    def config(self) -> ClientConfig:
        return self.aio.config

    @property
    def history(self) -> HistoryGuard:
        """The guard that checks etcd's history never goes back (safe from any thread)."""
        return self.aio.history

    def close(self) -> None:
        """Close connections and stop the background thread. Idempotent."""
        if self.portal.closed:
            return
        try:
            self.portal.call(self.aio.close)
        finally:
            self.portal.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self.aio).replace("AsyncClient", "Client")

    # KV
    def get(self, key: KeyLike, **options: Any) -> GetResult:
        return self.portal.call(partial(self.aio.get, key, **options))

    def get_prefix(self, prefix: KeyLike, **options: Any) -> RangeResult:
        return self.portal.call(partial(self.aio.get_prefix, prefix, **options))

    def put(self, key: KeyLike, value: KeyLike, **options: Any) -> PutResult:
        return self.portal.call(partial(self.aio.put, key, value, **options))

    def delete(self, key: KeyLike, **options: Any) -> DeleteResult:
        return self.portal.call(partial(self.aio.delete, key, **options))

    def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResult:
        return self.portal.call(partial(self.aio.txn, compares, success, failure, timeout=timeout))

    def compact(self, revision: int, **options: Any) -> None:
        self.portal.call(partial(self.aio.compact, revision, **options))

    def watch(self, key: KeyLike, **options: Any) -> Watch:
        """``with client.watch(key) as w: for batch in w: ...``; see :meth:`AsyncClient.watch`."""
        return Watch(self.portal, self.aio.watch(key, **options))

    # leases
    def lease_grant(self, ttl: float, **options: Any) -> Lease:
        return self.portal.call(partial(self.aio.lease_grant, ttl, **options))

    def lease_revoke(self, lease_id: int, **options: Any) -> None:
        self.portal.call(partial(self.aio.lease_revoke, lease_id, **options))

    def lease_time_to_live(self, lease_id: int, **options: Any) -> LeaseInfo:
        return self.portal.call(partial(self.aio.lease_time_to_live, lease_id, **options))

    def lease_list(self, **options: Any) -> tuple[int, ...]:
        return self.portal.call(partial(self.aio.lease_list, **options))

    def lease_keepalive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> KeepAliveAnswer:
        """One keepalive on a fresh stream (sessions keep leases alive for you)."""

        async def once() -> KeepAliveAnswer:
            async with self.aio.lease_keepalive(lease_id) as stream:
                return await stream.ping(timeout)

        return self.portal.call(once)

    # cluster
    def status(self, endpoint: str | None = None, **options: Any) -> Status:
        return self.portal.call(partial(self.aio.status, endpoint, **options))

    def member_list(self, **options: Any) -> tuple[Member, ...]:
        return self.portal.call(partial(self.aio.member_list, **options))

    # election entry points
    def session(self, ttl: float = 10.0, **options: Any) -> Session:
        """A lease kept alive on the background loop; ``with client.session(ttl=10) as s:``."""
        return Session(self, self.aio.session(ttl, **options))

    def election_view(self, name: str, **options: Any) -> ElectionView:
        return ElectionView(self.portal, self.aio.election_view(name, **options))

    def elector(self, name: str, **options: Any) -> Elector:
        """Run work only while leader; see :class:`Elector`."""
        return Elector(self, self.aio.elector(name, **options))


class Watch:
    """Blocking watch: a context manager and a plain iterator of :class:`WatchBatch`."""

    def __init__(self, portal: Portal, watch: AsyncWatch) -> None:
        self._portal = portal
        self.aio = watch
        self._iterator = SyncIterator(portal, watch)

    def __enter__(self) -> Watch:
        self._portal.call(self.aio.__aenter__)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._portal.call(self.aio.cancel)

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchBatch:
        return next(self._iterator)


class Session:
    """Blocking twin of :class:`AsyncSession`: ``with client.session(ttl=10) as session:``."""

    def __init__(self, client: Client, session: AsyncSession) -> None:
        self.client = client
        self.aio = session

    def start(self) -> Session:
        """Grant the lease and start keeping it alive (``with`` does this).

        :raises ConnectionFailed: if etcd cannot be reached.
        """
        self.client.portal.call(self.aio.start)
        return self

    def __enter__(self) -> Session:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop keepalives and revoke the lease. Idempotent."""
        if not self.client.portal.closed:
            self.client.portal.call(self.aio.close)

    def orphan(self) -> None:
        """Stop keepalives, leave the lease to expire."""
        self.client.portal.call(self.aio.orphan)

    @property
    def lease_id(self) -> int:
        """The lease's id (0 before ``start()``)."""
        return self.aio.lease_id

    @property
    def ttl(self) -> int:
        """The TTL etcd granted, in seconds."""
        return self.aio.ttl

    @property
    def margin(self) -> float:
        """Seconds of the TTL held back: the deadline is ``send time + TTL - margin``."""
        return self.aio.margin

    @property
    def alive(self) -> bool:
        """True while the lease is certainly held: computed from the clock, no I/O."""
        return self.aio.alive

    @property
    def state(self) -> SessionState:
        """The session's state, computed from the clock now."""
        return self.aio.state

    def remaining(self) -> float:
        """Seconds until the local deadline (0 once lost or closed)."""
        return self.aio.remaining()

    def wait_lost(self, timeout: float | None = None) -> EndReason:
        """Block until the session ends; return the reason."""
        return self.client.portal.call(self.aio.wait_lost, timeout=timeout, what="waiting for loss")

    def election(self, name: str, **options: Any) -> Election:
        """An election on this session; see :class:`AsyncElection` for the options.

        :raises ConfigurationError: for a malformed name or namespace.
        """
        return Election(self, AsyncElection(self.aio, name, **options))

    def __repr__(self) -> str:
        return repr(self.aio).replace("AsyncSession", "Session")


class ElectionView:
    """Blocking reads of an election: leader, candidates, observe."""

    def __init__(self, portal: Portal, view: AsyncElectionView) -> None:
        self._portal = portal
        self.aio = view

    def leader(self) -> LeaderInfo | None:
        """The current leader, read linearizably, or ``None`` if nobody leads."""
        return self._portal.call(self.aio.leader)

    def candidates(self) -> tuple[LeaderInfo, ...]:
        """Every candidate in election order (the leader first)."""
        return self._portal.call(self.aio.candidates)

    def observe(self, timeout: float | None = None) -> SyncIterator[LeaderInfo | None]:
        """Leader changes as a plain iterator (current leader first); ``timeout`` per item."""
        return SyncIterator(self._portal, self.aio.observe(), timeout)

    def observe_events(self, timeout: float | None = None) -> SyncIterator[ObservationEvent]:
        """Leader changes, outages and history losses as a plain iterator; see
        :meth:`AsyncElectionView.observe_events`. ``timeout`` per item."""
        return SyncIterator(self._portal, self.aio.observe_events(), timeout)


class Election:
    """Blocking twin of :class:`AsyncElection`: ``session.election("scheduler")`` (the blocking
    session makes it, being the facade above both).

    :raises ConfigurationError: for a malformed name or namespace.
    """

    def __init__(self, session: Session, election: AsyncElection) -> None:
        self.session = session
        self.aio = election
        self._portal = session.client.portal

    def campaign(self, value: KeyLike, *, timeout: float | None = None) -> Term:
        """Block until elected. With ``timeout``, give up (deleting our key) and raise
        ``RequestTimeout``."""
        return self._portal.call(self.aio.campaign, value, timeout=timeout, what="the campaign")

    def proclaim(self, value: KeyLike, *, timeout: float | None = None) -> None:
        """Change the leader's value without an election.

        :raises NotLeader: if we do not lead. :raises LeadershipLost: if our key is gone.
        """
        self._portal.call(self.aio.proclaim, value, timeout=timeout, what="proclaim")

    def resign(self, *, timeout: float | None = None) -> None:
        """Give up leadership (or candidacy): the next candidate takes over at once."""
        self._portal.call(self.aio.resign, timeout=timeout, what="resign")

    def leader(self, *, timeout: float | None = None) -> LeaderInfo | None:
        """The current leader, read linearizably, or ``None`` if nobody leads."""
        return self._portal.call(self.aio.leader, timeout=timeout)

    def observe(self, timeout: float | None = None) -> SyncIterator[LeaderInfo | None]:
        """Leader changes as a plain iterator (current leader first); ``timeout`` per item."""
        return SyncIterator(self._portal, self.aio.observe(), timeout)

    def is_leader(self) -> bool:
        """Whether we lead, computed locally with no I/O: call it before every action."""
        return self.aio.is_leader()

    @property
    def term(self) -> Term | None:
        """The current term, or ``None`` when we do not lead."""
        return self.aio.term

    @property
    def key(self) -> str | None:
        """Our candidate key, once campaigning has written it."""
        return self.aio.key

    def verify(self, *, timeout: float | None = None) -> bool:
        """Prove with a linearizable read that our key still leads; end the term if not."""
        return self._portal.call(self.aio.verify, timeout=timeout)

    def txn(
        self,
        compares: Sequence[Compare] = (),
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResult:
        """An etcd transaction that commits only while our term holds (fenced writes)::

            election.txn(on_success=[Op.put("/jobs/owner", "host-a")])

        :raises NotLeader: if we do not lead locally.
        :raises LeadershipLost: if etcd shows our term is over (the term ends locally too).
        :raises AmbiguousResult: if the outcome is unknown: re-read, never retry blindly.
        """
        return self._portal.call(self.aio.txn, compares, on_success, on_failure, timeout=timeout)

    def wait_lost(self, timeout: float | None = None) -> EndReason:
        """Block until the current term ends; return the reason."""
        return self._portal.call(self.aio.wait_lost, timeout=timeout, what="waiting for loss")


class Elector:
    """Blocking twin of :class:`AsyncElector`.

    ``run(work)`` calls ``work(term)`` in *your* thread. A thread cannot be cancelled, so when
    leadership is lost ``term.lost`` (a ``threading.Event``) is set and ``term.is_leader()``
    turns false: check one of them (or call ``term.check()``, which raises ``LeadershipLost``)
    before each unit of work. The elector waits for ``work`` to return before campaigning
    again. For work that must be killed on loss, run it as a process under
    ``etcd-elector run``.

    Callbacks run on the client's event loop thread: keep them short, and use the async API
    there (``client.aio``); the blocking API refuses to run on that thread, and the error
    ends the term (from ``on_elected``, ``run()`` raises it) or is logged (the others).
    """

    def __init__(self, client: Client, elector: AsyncElector) -> None:
        self.client = client
        self.aio = elector
        self._portal = client.portal
        self._stop_signals: StopSignals | None = None

    def __enter__(self) -> Elector:
        self._portal.call(self.aio.start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop, resign and close the session. Idempotent."""
        if not self._portal.closed:
            self._portal.call(self.aio.close)
        self._restore_signals()

    def _restore_signals(self) -> None:
        signals, self._stop_signals = self._stop_signals, None
        if signals is not None:
            signals.restore()

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
        if self._stop_signals is None:
            signals = StopSignals(self._portal.loop, self.aio.on_stop_signal)
            signals.install()
            self._stop_signals = signals

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
        return self._portal.call(self.aio.leader)

    def run(self, work: Callable[[Term], Any]) -> Any:
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
        loop = self._portal.loop

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

        runner = self._portal.submit(run_and_signal)
        try:
            while True:
                item = handoff.get()
                if item is None:
                    return runner.result()
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
                self._restore_signals()  # stopped and resigned: a further signal is not ours


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
    else:
        future.set_result(result)
