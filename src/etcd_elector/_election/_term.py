"""``Term``: one term of leadership, and whether it still holds.

A term is what a won campaign hands to the leader's work: its fencing token, and checks that
are local and cheap (``is_leader()``, ``check()``, ``lost``), safe from any thread. Its copies
(the one ``proclaim()`` makes with a new value) share one :class:`_TermState`: they end
together. The election and the blocking elector change a term only through the functions at
the end of this module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import _clock
from .._errors import LeadershipLost
from .._reasons import EndReason

__all__ = [
    "FencedWrites",
    "Term",
    "begin_term",
    "end_term",
    "fenced_writes",
    "on_hand_off",
    "record_fenced_write",
    "report_lost_writes",
    "start_draining",
]


@dataclass(frozen=True)
class FencedWrites:
    """Fenced writes etcd said it committed in a term: how many, at which revisions. If etcd
    loses its history, the ones above its new revision are gone, and we must say so."""

    count: int = 0
    first: int = 0
    last: int = 0


class _TermState:
    """What a term and its proclaimed copies share: whether it still holds, and why not."""

    def __init__(self, holds: Callable[[], bool]) -> None:
        self.lost = threading.Event()
        self.reason: EndReason | None = None
        self.ended_at: float | None = None
        self.holds = holds
        self.fenced = FencedWrites()
        self.draining = threading.Event()
        self.drain_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.hand_off: Callable[[bytes | None], None] | None = None


@dataclass(frozen=True)
class Term:
    """One term of leadership. ``token`` (the key's create revision) is the fencing token:
    it strictly increases across the terms of one election.

    ``is_leader()`` and ``check()`` are local and cheap, and safe from any thread: use them
    before each unit of work. ``lost`` is a ``threading.Event`` set when the end is noticed.
    """

    election: str
    key: str
    value: bytes
    lease_id: int
    token: int
    elected_at: float
    _state: _TermState = field(
        default_factory=lambda: _TermState(lambda: False), compare=False, repr=False
    )

    @property
    def lease_hex(self) -> str:
        """The lease id in hex, as etcdctl and our logs show it."""
        return f"{self.lease_id:x}"

    @property
    def lost(self) -> threading.Event:
        """Set once the end of this term is noticed (wait on it, or test it, from any thread)."""
        return self._state.lost

    @property
    def end_reason(self) -> EndReason | None:
        """Why the term ended, once it has."""
        return self._state.reason

    @property
    def ended_at(self) -> float | None:
        """When the end was noticed, on :func:`etcd_elector._clock.now` (``None`` while it
        holds). A resign ends the term before it deletes the key. After a pause the end may be
        noticed late; ``is_leader()`` was false from the session deadline on regardless."""
        return self._state.ended_at

    @property
    def draining(self) -> threading.Event:
        """Set when an elector with a drain budget is to stop leading for a reason of its own
        (a handoff, a pause, a close or stop signal): finish the unit of work at hand and
        return. The term still holds
        meanwhile (fenced writes commit); the work is cancelled when the elector's drain
        budget is spent, and the key goes only after the work has stopped."""
        return self._state.draining

    async def wait_draining(self) -> None:
        """Return once ``draining`` is set: for async work that awaits between units
        (``await term.wait_draining()`` beside its own work, then finish and return)."""
        state = self._state
        if state.draining.is_set():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with _drain_lock:
            state.drain_waiters.append((loop, waiter))
        if state.draining.is_set():  # set between the check and the registration
            _wake(waiter)
        await waiter

    def hand_off(self, to: str | bytes | None = None) -> None:
        """Ask the elector to hand leadership off: the work is told to stop (``draining``),
        given the drain budget, and then the candidate whose value is ``to`` leads next (the
        next in line, or the highest priority, without ``to``; normal order if it is gone).
        Returns at once; safe from any thread.

        :raises RuntimeError: for a term not run by an elector: use ``election.hand_off()``.
        """
        hook = self._state.hand_off
        if hook is None:
            raise RuntimeError(
                f"term {self.token} of election {self.election!r} is not run by an elector: "
                "call hand_off() on the election instead"
            )
        hook(to.encode() if isinstance(to, str) else to)

    def is_leader(self) -> bool:
        """True while this term holds, computed from the session's deadline right now."""
        return not self._state.lost.is_set() and self._state.holds()

    def check(self) -> None:
        """:raises LeadershipLost: if this term no longer holds."""
        if not self.is_leader():
            reason = self._state.reason or EndReason.DEADLINE
            raise LeadershipLost(
                f"term {self.token} of election {self.election!r} is over ({reason})",
                reason=reason,
            )

    def same_term(self, other: Term) -> bool:
        """Whether ``other`` is this term, or a copy of it with another value."""
        return self._state is other._state

    def with_value(self, value: bytes) -> Term:
        """This term (same token, same end) with the value a ``proclaim()`` set."""
        return dataclasses.replace(self, value=value)


def begin_term(
    *, election: str, key: str, value: bytes, lease_id: int, token: int, holds: Callable[[], bool]
) -> Term:
    """A term just won: it holds while ``holds()`` (the election's local check) is true and
    :func:`end_term` has not been called."""
    return Term(
        election=election,
        key=key,
        value=value,
        lease_id=lease_id,
        token=token,
        elected_at=_clock.now(),
        _state=_TermState(holds),
    )


def end_term(term: Term, reason: EndReason) -> None:
    """The term is over for ``reason`` (the first reason given stays): ``lost`` is set."""
    state = term._state
    if state.reason is None:
        state.reason = reason
        state.ended_at = _clock.now()
    state.lost.set()


def start_draining(term: Term) -> None:
    """Tell the work of ``term`` to stop (it sees ``term.draining`` set)."""
    state = term._state
    state.draining.set()
    with _drain_lock:
        waiters, state.drain_waiters = state.drain_waiters, []
    for loop, waiter in waiters:
        if not loop.is_closed():
            loop.call_soon_threadsafe(_wake, waiter)


_drain_lock = threading.Lock()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def on_hand_off(term: Term, hook: Callable[[bytes | None], None] | None) -> None:
    """``term.hand_off(to)`` calls ``hook(to)`` (from any thread) from now on."""
    term._state.hand_off = hook


def record_fenced_write(term: Term, revision: int) -> None:
    """etcd committed a fenced write of ``term`` at ``revision``."""
    state = term._state
    fenced = state.fenced
    state.fenced = FencedWrites(
        count=fenced.count + 1, first=fenced.first or revision, last=max(fenced.last, revision)
    )


def fenced_writes(term: Term) -> FencedWrites:
    """The fenced writes etcd said it committed in ``term`` so far."""
    return term._state.fenced


def report_lost_writes(term: Term, revision_now: int, log: Callable[..., None]) -> None:
    """etcd lost its history during ``term`` and is at ``revision_now``: fenced writes it said
    it committed above that are gone (and those below may be too, in a restore); ``log``
    writes the election's line about it, if there were any."""
    fenced = fenced_writes(term)
    if not fenced.count:
        return
    log(
        logging.ERROR,
        "fenced writes that etcd said were committed were in the history it lost",
        key=term.key,
        value=term.value,
        token=term.token,
        fenced_writes=fenced.count,
        first_revision=fenced.first,
        last_revision=fenced.last,
        revision=revision_now,
        detail="those above the revision etcd is at now are gone for certain, the others "
        "too unless the snapshot etcd restored holds them",
    )
