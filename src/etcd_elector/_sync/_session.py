"""``Session``, ``Election`` and ``ElectionView``: the blocking twins of a session, of an
election on it, and of an election's read-only view."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Concatenate, ParamSpec

from .._client import as_method_of
from .._election._election import AsyncElection
from .._election._observe import ObservationEvent
from .._election._session import AsyncSession, SessionState
from .._election._term import Term
from .._election._view import AsyncElectionView, LeaderInfo
from .._keys import KeyLike
from .._portal import Portal, SyncIterator
from .._reasons import EndReason
from ..etcd._txn import Compare, Op
from ..etcd._types import TxnResult
from ._bridge import Twin, blocking

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Election", "ElectionView", "Session"]

P = ParamSpec("P")


def _election_on(
    make: Callable[Concatenate[AsyncSession, P], AsyncElection],
) -> Callable[Concatenate[Session, P], Election]:
    def election(self: Session, /, *args: P.args, **kwargs: P.kwargs) -> Election:
        return Election(self, make(self.aio, *args, **kwargs))

    as_method_of(
        election,
        make,
        """An election on this session, ``session.election("name")``: the same arguments as
        :class:`AsyncElection` after the session (the blocking session makes it, being the
        facade above both); a malformed name or namespace, or a second election of that name
        on this session, is a ``ConfigurationError``.""",
    )
    return election


class Session(Twin[AsyncSession]):
    """Blocking twin of :class:`AsyncSession`: ``with client.session(ttl=10) as session:``."""

    def __init__(self, client: Client, session: AsyncSession) -> None:
        super().__init__(client, session)
        self.client = client

    def start(self) -> Session:
        """Grant the lease and start keeping it alive (``with`` does this).

        :raises ConnectionFailed: if etcd cannot be reached.
        """
        self.portal.call(self.aio.start)
        return self

    def close(self) -> None:
        """Stop keepalives and revoke the lease. Idempotent."""
        if not self.client.closed:
            self.portal.call(self.aio.close)

    orphan = blocking(AsyncSession.orphan)

    @property
    def lease_id(self) -> int:
        """The lease's id (0 before ``start()``)."""
        return self.aio.lease_id

    @property
    def lease_hex(self) -> str:
        """The lease id in hex, as etcdctl and our logs show it."""
        return self.aio.lease_hex

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
        return self.portal.call(self.aio.wait_lost, timeout=timeout, what="waiting for loss")

    election = _election_on(AsyncElection)
    """An :class:`Election` on this session: ``session.election("scheduler")``, with the
    arguments of :class:`AsyncElection` after the session."""

    def __repr__(self) -> str:
        return repr(self.aio).replace("AsyncSession", "Session")


class ElectionView:
    """Blocking reads of an election: leader, candidates, observe."""

    def __init__(self, client: Client, view: AsyncElectionView) -> None:
        self.client = client
        self.aio = view

    @property
    def portal(self) -> Portal:
        return self.client.portal

    leader = blocking(AsyncElectionView.leader)
    candidates = blocking(AsyncElectionView.candidates)
    request_handoff = blocking(AsyncElectionView.request_handoff)
    pause = blocking(AsyncElectionView.pause)
    resume = blocking(AsyncElectionView.resume)
    paused = blocking(AsyncElectionView.paused)

    def observe(self, timeout: float | None = None) -> SyncIterator[LeaderInfo | None]:
        """Leader changes as a plain iterator (current leader first); ``timeout`` per item."""
        return SyncIterator(self.portal, self.aio.observe(), timeout)

    def observe_events(self, timeout: float | None = None) -> SyncIterator[ObservationEvent]:
        """Leader changes, outages and history losses as a plain iterator; see
        :meth:`AsyncElectionView.observe_events`. ``timeout`` per item."""
        return SyncIterator(self.portal, self.aio.observe_events(), timeout)


class Election:
    """Blocking twin of :class:`AsyncElection`: ``session.election("scheduler")``.

    :raises ConfigurationError: for a malformed name or namespace.
    """

    def __init__(self, session: Session, election: AsyncElection) -> None:
        self.session = session
        self.aio = election

    @property
    def portal(self) -> Portal:
        return self.session.portal

    def campaign(
        self, value: KeyLike, *, priority: int | None = None, timeout: float | None = None
    ) -> Term:
        """Block until elected. With ``timeout``, give up (deleting our key) and raise
        ``RequestTimeout``."""
        campaign = functools.partial(self.aio.campaign, priority=priority)
        return self.portal.call(campaign, value, timeout=timeout, what="the campaign")

    def hand_off(
        self, to: KeyLike | None = None, *, timeout: float | None = None
    ) -> LeaderInfo | None:
        """Hand leadership to the candidate whose value is ``to`` (see
        :meth:`AsyncElection.hand_off`); the successor, or ``None`` after a plain resign."""
        return self.portal.call(self.aio.hand_off, to, timeout=timeout, what="hand_off")

    def proclaim(self, value: KeyLike, *, timeout: float | None = None) -> None:
        """Change the leader's value without an election.

        :raises NotLeader: if we do not lead. :raises LeadershipLost: if our key is gone.
        """
        self.portal.call(self.aio.proclaim, value, timeout=timeout, what="proclaim")

    def resign(self, *, timeout: float | None = None) -> None:
        """Give up leadership (or candidacy): the next candidate takes over at once."""
        self.portal.call(self.aio.resign, timeout=timeout, what="resign")

    def leader(self, *, timeout: float | None = None) -> LeaderInfo | None:
        """The current leader, read linearizably, or ``None`` if nobody leads."""
        return self.portal.call(self.aio.leader, timeout=timeout)

    def observe(self, timeout: float | None = None) -> SyncIterator[LeaderInfo | None]:
        """Leader changes as a plain iterator (current leader first); ``timeout`` per item."""
        return SyncIterator(self.portal, self.aio.observe(), timeout)

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
        return self.portal.call(self.aio.verify, timeout=timeout)

    def txn(
        self,
        compares: Sequence[Compare] = (),
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResult:
        """An etcd transaction that commits only while our term holds (fenced writes)::

            election.txn(success=[Op.put("/jobs/owner", "host-a")])

        :raises NotLeader: if we do not lead locally.
        :raises LeadershipLost: if etcd shows our term is over (the term ends locally too).
        :raises AmbiguousResult: if the outcome is unknown: re-read, never retry blindly.
        """
        return self.portal.call(self.aio.txn, compares, success, failure, timeout=timeout)

    def wait_lost(self, timeout: float | None = None) -> EndReason:
        """Block until the current term ends; return the reason."""
        return self.portal.call(self.aio.wait_lost, timeout=timeout, what="waiting for loss")
