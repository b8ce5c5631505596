"""``AsyncElector``: run a piece of work only while leader, stop it on loss, and try again.

Each term is a :class:`~._lead.Lead`; between terms the elector keeps a live session,
campaigns with backoff, and rides out what retrying can cure. ``on_lost`` is called exactly
once for every term that was elected.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._backoff import Backoff
from .._errors import (
    CampaignFailed,
    EtcdElectorError,
    LeadershipError,
    LeadershipLost,
    SessionLost,
    TransportError,
)
from .._identity import default_identity
from .._keys import KeyLike, as_bytes
from .._log import log_event
from .._reasons import EndReason
from .._repeats import RepeatThrottle, quiet_note
from .._stop_signals import SignalSlot
from .._tasks import Stopped, cancel_and_wait, unless
from ._election import AsyncElection
from ._following_moves import FollowingMoves
from ._lead import Lead, log_stop_error
from ._moves import DEFAULT_PRIORITY, MoveKeys, validate_drain, validate_priority
from ._movewatch import MovesWatch
from ._names import DEFAULT_NAMESPACE, validate_name, validate_namespace
from ._session import AsyncSession
from ._states import ElectorEvent, ElectorState, StateStream
from ._stopping import Stopping
from ._term import Term
from ._timing import Timing
from ._view import AsyncElectionView, LeaderInfo
from ._work import Work, refuse_plain_function

if TYPE_CHECKING:
    from ..etcd._client import AsyncEtcdClient

__all__ = ["AsyncElector", "ElectorEvent", "ElectorState", "Work"]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: ``on_elected(term)``, ``on_lost(term, reason)``, ``on_leader_change(leader)``: plain or
#: async functions (what they return is awaited if it can be).
OnElected = Callable[[Term], object]
OnLost = Callable[[Term, EndReason], object]
OnLeaderChange = Callable[[LeaderInfo | None], object]


class AsyncElector(FollowingMoves, Stopping):
    """Leader election as most services want it. Use ``client.elector("name")``.

    ::

        async with client.elector("scheduler") as elector:
            await elector.run(schedule_jobs)   # schedule_jobs(term) runs only while leader

    :param value: what the leader publishes (default: ``hostname:pid`` or the pod name).
    :param ttl: session TTL in whole seconds (default 10).
    :param margin: safety margin in seconds (default 15% of the TTL, at least 0.5 s).
    :param requeue: campaign again after each term (default) or return after one.
    :param on_elected: ``on_elected(term)``, sync or async, before the work starts. If it
        raises, the term ends as if the work had raised: we resign and ``run()`` raises it.
    :param on_lost: ``on_lost(term, reason)``, sync or async; exactly once per elected term.
        An error in it is logged, and the elector goes on.
    :param on_leader_change: ``on_leader_change(leader_or_None)`` for every change seen. An
        error in it is logged, and the elector goes on.
    :param drain: the drain budget in seconds (default 0): when the elector stops leading
        for a reason of its own (closed, a stop signal, a handoff, a pause), ``term.draining``
        is set and the work gets this long to return before it is cancelled; the key is
        released only after that. A loss of the term cancels it at once: the lease deadline
        always wins over the budget.
    :param priority: 0 (never lead: a standby that only observes) to 1,000,000 (default 1).
        The highest-priority live candidate leads: a leader hands off (drained) to a
        candidate of higher priority as soon as it queues. Ties keep queue order.
    :param stop_on: error classes that end ``run()`` instead of being ridden out. Errors that
        retrying cannot cure (``retriable`` is false: credentials, permissions, a request etcd
        refuses, such as a value over its size limit) always end it; the others (etcd down,
        or full: ``DatabaseSpaceExceeded``) are retried with backoff, and logged at WARNING
        when they start and once a minute while they last.
    :raises ConfigurationError: for a bad name, namespace or timing, at construction.
    """

    def __init__(
        self,
        client: AsyncEtcdClient,
        name: str,
        *,
        value: KeyLike | None = None,
        ttl: float = 10.0,
        margin: float | None = None,
        keepalive_interval: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        requeue: bool = True,
        on_elected: OnElected | None = None,
        on_lost: OnLost | None = None,
        on_leader_change: OnLeaderChange | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
        stop_on: tuple[type[Exception], ...] = (),
        drain: float = 0.0,
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        self.client = client
        self.name = validate_name(name)
        self.namespace = validate_namespace(namespace)
        self.timing = Timing(ttl, margin, keepalive_interval)  # checked once, here
        self.value = as_bytes(value if value is not None else default_identity())
        self.requeue = requeue
        self.on_elected = on_elected
        self.on_lost = on_lost
        self.on_leader_change = on_leader_change
        self.backoff = backoff
        self.view = AsyncElectionView(client, self.name, namespace=self.namespace)
        self.drain = validate_drain(drain)
        self.priority = validate_priority(priority)
        self.moves = MovesWatch(client, MoveKeys(self.namespace, self.name), self._event)
        self._moves_task: asyncio.Task[None] | None = None
        self._session: AsyncSession | None = None
        self._retired: list[AsyncSession] = []
        self._election: AsyncElection | None = None
        self._states = StateStream()
        self._started = False
        self._closing = asyncio.Event()  # set: stop the work, resign, return from run()
        self._closed = False
        self._running = False
        self._run_finished = asyncio.Event()
        self._run_finished.set()
        self._observer: asyncio.Task[None] | None = None
        self._stop_signals = SignalSlot()
        self._backoff = Backoff(*backoff)
        self.stop_on = stop_on
        self._failures = RepeatThrottle()

    def __repr__(self) -> str:
        return f"<AsyncElector {self.name!r} state={self.state.value}>"

    def _event(
        self,
        level: int,
        message: str,
        /,
        *,
        detail: object = None,
        exc_info: bool = False,
        **more: object,
    ) -> None:
        """A log line about this elector: the election, ``more``, and who we are."""
        log_event(
            log,
            level,
            message,
            election=self.name,
            **more,
            identity=self.value,
            detail=detail,
            exc_info=exc_info,
        )

    # -- local state ---------------------------------------------------------------------------

    @property
    def state(self) -> ElectorState:
        return self._states.current

    def is_leader(self) -> bool:
        """Local, no I/O: true only while a term holds and the session deadline has not passed."""
        return self._election is not None and self._election.is_leader()

    @property
    def term(self) -> Term | None:
        """The current term, or ``None``."""
        return self._election.term if self._election is not None else None

    @property
    def session(self) -> AsyncSession | None:
        return self._session

    @property
    def election(self) -> AsyncElection | None:
        return self._election

    async def leader(self) -> LeaderInfo | None:
        """The current leader of the election (a linearizable read)."""
        return await self.view.leader()

    def states(self) -> AsyncGenerator[ElectorEvent, None]:
        """Every state change from now on, ending after ``STOPPED``."""
        return self._states.follow()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> AsyncElector:
        if not self._started and not self._closed:
            self._started = True
            if self.on_leader_change is not None:
                self._observer = asyncio.get_running_loop().create_task(
                    self._watch_leader(), name=f"etcd-elector-observe-{self.name}"
                )
        return self

    async def __aenter__(self) -> AsyncElector:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the work, resign (the next candidate takes over at once), close the session.
        Idempotent; a closed elector cannot run again."""
        self._closing.set()
        await self._run_finished.wait()
        observer, self._observer = self._observer, None
        if observer is not None and (error := await cancel_and_wait(observer)) is not None:
            raise error
        moves, self._moves_task = self._moves_task, None
        if moves is not None:
            await cancel_and_wait(moves)
        await self._close_sessions()
        self._closed = True
        self._stop_signals.restore()
        if self.state is not ElectorState.STOPPED:
            self._publish(ElectorEvent(ElectorState.STOPPED))

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, work: Work) -> Any:
        """Campaign, run ``work(term)`` while leader, and repeat (with ``requeue``).

        ``work`` is an async function (``async def work(term): ...``): it runs on the event
        loop, which also keeps the session alive, and is cancelled the moment the term ends. A
        loss that the work notices first (``term.check()`` raising ``LeadershipLost``, or a call
        to etcd failing in the outage that ended the term) ends the term like any loss, and the
        elector campaigns again.

        Returns ``None`` when the elector is closed or stopped by a signal (see
        :meth:`stop_on_signals`), or after one term with ``requeue=False`` (the work's
        result). Cancelling ``run`` stops the work and resigns.

        :raises LeadershipLost: with ``requeue=False``, if the term ended before work returned.
        :raises TypeError: if ``work`` is a plain function: make it ``async def``, or use the
            blocking :class:`Elector`, which calls plain functions in your thread.
        :raises RuntimeError: if the elector is closed, or ``run()`` is already active on it.
        :raises Exception: whatever ``work`` or ``on_elected`` raised (after resigning).
        """
        refuse_plain_function(work)
        if self._closed:
            raise RuntimeError(
                f"the elector for {self.name!r} is closed: make a new one with client.elector()"
            )
        await self.start()
        if self._running:
            raise RuntimeError("run() is already active on this elector")
        self._running = True
        self._run_finished.clear()
        if self._moves_task is None:  # planned moves are followed while the elector runs
            self._moves_task = asyncio.get_running_loop().create_task(
                self._follow_moves(), name=f"etcd-elector-moves-{self.name}"
            )
        try:
            while not self._closing.is_set():
                if self.priority == 0:
                    await self._stand_by()
                    continue
                if await self._held_off():
                    continue
                term = await self._campaign()
                if term is None:
                    continue
                done, result = await self._lead(term, work)
                if not self.requeue:
                    if done:
                        return result
                    if self._closing.is_set():
                        return None
                    reason = term.end_reason or EndReason.DEADLINE
                    raise LeadershipLost(
                        f"leadership of {self.name!r} ended ({reason}) before the work finished",
                        reason=reason,
                    )
            return None
        finally:
            self._running = False
            await self._close_sessions()
            if self._closing.is_set():
                self._stop_signals.restore()  # stopped and resigned: a further signal is not ours
            self._run_finished.set()
            self._publish(ElectorEvent(ElectorState.IDLE))

    async def _campaign(self) -> Term | None:
        """One campaign attempt; ``None`` means try again (after a backoff) or closing."""
        session = await self._live_session()
        if session is None or not await self._moves_known(session):
            return None
        election = self._election
        if election is None or election.session is not session:
            election = AsyncElection(session, self.name, namespace=self.namespace)
            self._election = election
        self._publish(ElectorEvent(ElectorState.CAMPAIGNING))
        # Declared (we follow planned moves) unless the moves keys are out of our reach.
        priority = self.priority if self.moves.available else None
        try:
            term = await self._unless_closing(
                election.campaign(self.value, priority=priority), or_paused=True
            )
        except (SessionLost, CampaignFailed, TransportError) as exc:
            if self._gives_up_on(exc):
                raise
            level, quiet = self._failures.level(("campaign", type(exc)))
            self._event(
                level,
                "campaign failed, trying again",
                lease=session.lease_hex,
                detail=f"{exc}{quiet_note(quiet)}",
            )
            await self._pause()
            return None
        if not isinstance(term, Term):  # closing
            return None
        self._backoff.reset()
        self._failures.reset()
        return term

    def _gives_up_on(self, exc: EtcdElectorError) -> bool:
        """Whether ``run()`` ends with ``exc`` instead of trying again."""
        return not exc.retriable or isinstance(exc, self.stop_on)

    async def _lead(self, term: Term, work: Work) -> tuple[bool, Any]:
        """Run ``work`` for one term. Returns (work finished, its result)."""
        assert self._election is not None
        lead = Lead(
            self._election,
            term,
            closing=self._closing,
            call=self._call,
            publish=self._publish,
            log=self._event,
            moves=self.moves,
            drain=self.drain,
            priority=self.priority,
        )
        return await lead.run(work, self.on_elected, self.on_lost)

    async def _live_session(self) -> AsyncSession | None:
        """The current session if alive, else a new one (``None`` if etcd is unreachable)."""
        if self._session is not None and self._session.alive:
            return self._session
        if self._session is not None:
            self._retired.append(self._session)
            self._session = None
            if self._election is not None:
                await self._election.close()  # its guard (and the guard's watch) goes too
            self._election = None
        try:
            session = await self._unless_closing(AsyncSession(self.client, self.timing).start())
        except TransportError as exc:
            if self._gives_up_on(exc):
                raise
            level, quiet = self._failures.level(("session", type(exc)))
            self._event(
                level, "cannot start a session, retrying", detail=f"{exc}{quiet_note(quiet)}"
            )
            await self._pause()
            return None
        if not isinstance(session, AsyncSession):  # closing
            return None
        self._session = session
        return session

    async def _unless_closing(
        self, awaitable: Awaitable[T], *, or_paused: bool = False
    ) -> T | None:
        """Await ``awaitable`` unless the elector starts closing (or, ``or_paused``, the
        election is paused) first: then ``None``."""
        stop = self._closing_or_paused() if or_paused else self._closing.wait()
        outcome = await unless(awaitable, stop)
        if isinstance(outcome, Stopped):
            if outcome.error is not None and not isinstance(outcome.error, LeadershipError):
                log_stop_error(self._event, outcome.error)
            return None
        if self._closing.is_set() and isinstance(outcome, AsyncSession):
            await outcome.close()
            return None
        return outcome

    async def _pause(self) -> None:
        """Jittered exponential backoff, cut short by closing."""
        delay = self._backoff.next()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    async def _close_sessions(self) -> None:
        if self._election is not None:
            await self._election.close()  # its guard (and the guard's watch) goes too
        sessions = [*self._retired, *([self._session] if self._session else [])]
        self._retired.clear()
        self._session = None
        if sessions:
            await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

    async def _watch_leader(self) -> None:
        try:
            async for leader in self.view.observe():
                await self._call(self.on_leader_change, leader)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._event(logging.ERROR, "observing the leader stopped", exc_info=True)

    def _publish(self, event: ElectorEvent) -> None:
        self._states.publish(event)

    async def _call(
        self, callback: Callable[..., object] | None, *args: object, propagate: bool = False
    ) -> None:
        if callback is None:
            return
        try:
            outcome = callback(*args)
            if inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            if propagate:
                raise
            self._event(logging.ERROR, f"elector callback {callback!r} failed", exc_info=True)
