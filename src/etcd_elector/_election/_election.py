"""``AsyncElection``: etcd's election recipe with its holes closed.

A leader is the candidate whose key has the lowest create revision under the election's prefix.
Campaigning writes our key with a compare-and-swap (never a plain put), waits on the nearest
predecessor only (one resign wakes one waiter), then re-checks with a linearizable read that our
key still exists and leads before reporting a term. A term ends, and is signalled at once, when
the session is lost, our key is deleted, or we resign.

A candidate's key is named after its session's lease, so a session holds one candidacy per
election: a second election object with the same name on the same session, or a second campaign
while one runs or leads, would silently share that key (etcd's Go client allows it, to resume a
campaign with a saved lease, which we do not offer). Both are refused with an error saying what
to use instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _clock, _metrics
from .._backoff import Backoff
from .._bounded import bounded
from .._errors import (
    AmbiguousResult,
    CampaignFailed,
    ConfigurationError,
    LeadershipLost,
    NotLeader,
    SessionLost,
    TokenRegressed,
    TransportError,
    WatchError,
)
from .._keys import KeyLike, as_bytes
from .._log import log_event
from .._reasons import EndReason
from .._tasks import Stopped, cancel_all, first_result, unless
from ..etcd._history_guard import REMEDY
from ..etcd._txn import Compare, Op
from ..etcd._types import KeyValue, RangeResult, TxnResult
from ..etcd._watch import AsyncWatch
from ._names import (
    DEFAULT_NAMESPACE,
    candidate_key,
    validate_name,
    validate_namespace,
)
from ._view import ElectionView, LeaderInfo

if TYPE_CHECKING:
    from ._session import AsyncSession

__all__ = ["AsyncElection", "LeaderInfo", "Term"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Election prefixes in use on each session (weak: a session forgotten frees its entry).
_prefixes_in_use: weakref.WeakKeyDictionary[AsyncSession, set[bytes]] = weakref.WeakKeyDictionary()
_prefixes_lock = threading.Lock()  # the blocking twins make elections from any thread


class _TermState:
    """What a term and its proclaimed copies share: whether it still holds, and why not."""

    def __init__(self) -> None:
        self.lost = threading.Event()
        self.reason: EndReason | None = None
        self.ended_at: float | None = None
        self.holds: Callable[[], bool] = lambda: False
        # Fenced writes etcd said it committed in this term: if etcd loses its history, the
        # ones above its new revision are gone, and we must say so.
        self.fenced_count = 0
        self.fenced_first = 0
        self.fenced_last = 0

    def fenced_committed(self, revision: int) -> None:
        self.fenced_count += 1
        self.fenced_first = self.fenced_first or revision
        self.fenced_last = max(self.fenced_last, revision)

    def end(self, reason: EndReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.ended_at = _clock.now()
        self.lost.set()


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
    _state: _TermState = field(default_factory=_TermState, compare=False, repr=False)

    @property
    def lease_hex(self) -> str:
        return f"{self.lease_id:x}"

    @property
    def lost(self) -> threading.Event:
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


class AsyncElection:
    """An election on one session. Make it with ``session.election("name")``::

        election = session.election("scheduler")
        term = await election.campaign("host-a")  # returns once we lead
        if election.is_leader():  # local, no I/O
            await election.txn(on_success=[Op.put("/jobs/owner", "host-a")])  # fenced

    One election per name on a session: its candidate key is named after the session's lease,
    so a second one would share it. Keep the object and campaign on it again after a term.

    :param namespace: key prefix shared by elections (default ``/etcd-elector``).
    :param identity: a label for logs (default: the campaign value).
    :raises ConfigurationError: for a malformed name or namespace, or if this session already
        has an election with this name and namespace.
    """

    def __init__(
        self,
        session: AsyncSession,
        name: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        identity: str | None = None,
    ) -> None:
        self.session = session
        self.name = validate_name(name)
        self.namespace = validate_namespace(namespace)
        self.view = ElectionView(session.client, self.name, namespace=self.namespace)
        self.prefix = self.view.prefix
        with _prefixes_lock:
            in_use = _prefixes_in_use.setdefault(session, set())
            if self.prefix in in_use:
                raise ConfigurationError(
                    f"this session already has an election {self.name!r} in namespace "
                    f"{self.namespace!r}: a session holds one candidate key per election, so "
                    "keep using that election object, or open another session for a second "
                    "candidate"
                )
            in_use.add(self.prefix)
        self.identity = identity
        self._client = session.client
        self._lock = asyncio.Lock()
        self._key: bytes | None = None  # our candidate key, while we have one
        self._token = 0
        self._term: Term | None = None
        self._term_end: asyncio.Future[EndReason] | None = None
        self._term_callbacks: list[Callable[[Term, EndReason], Any]] = []
        self._on_session_lost: Callable[[EndReason], Any] | None = None  # the current term's
        self._guard: asyncio.Task[None] | None = None
        self._guards: set[asyncio.Task[None]] = set()  # guards not yet finished, old ones too
        self._campaigning = False

    def __repr__(self) -> str:
        return f"<AsyncElection {self.prefix.decode()!r} leader={self.is_leader()}>"

    # -- local state (no I/O) -----------------------------------------------------------------

    @property
    def key(self) -> str | None:
        """Our candidate key, once campaigning has written it."""
        return self._key.decode() if self._key is not None else None

    @property
    def term(self) -> Term | None:
        """The current term, or ``None`` when we do not lead."""
        return self._term if self.is_leader() else None

    def is_leader(self) -> bool:
        """Whether we lead, computed locally with no I/O: cheap enough before every unit of work.

        True only if a campaign was won, the term has not ended (resign, key deleted, loss seen)
        and the session's local deadline has not passed at this very moment.
        """
        return (
            self._term is not None
            and self._term_end is not None
            and not self._term_end.done()
            and self.session.alive
        )

    def check(self) -> Term:
        """Return the current term. :raises NotLeader: if we do not lead right now."""
        term = self._term
        if term is None or not self.is_leader():
            raise NotLeader(f"not the leader of election {self.name!r}")
        return term

    async def wait_lost(self) -> EndReason:
        """Wait until the current term ends; return why. :raises NotLeader: if there is none."""
        if self._term_end is None:
            raise NotLeader(f"no term of election {self.name!r} to wait on")
        return await asyncio.shield(self._term_end)

    def add_term_end_callback(self, callback: Callable[[Term, EndReason], Any]) -> None:
        """Call ``callback(term, reason)`` once for every term that ends (on the event loop)."""
        self._term_callbacks.append(callback)

    # -- campaign --------------------------------------------------------------------------------

    async def campaign(self, value: KeyLike) -> Term:
        """Become leader: write our key, wait for every earlier candidate, then re-check.

        One campaign at a time: campaign again once a term has ended (or a campaign failed or
        was cancelled). If cancelled, the campaign deletes its key before the cancellation
        propagates.

        :raises SessionLost: if the session ends while waiting (no phantom leadership).
        :raises CampaignFailed: if our key is deleted by someone else while waiting.
        :raises RuntimeError: if this election is campaigning already or leads: to change the
            leader's value use :meth:`proclaim`; to campaign again, :meth:`resign` first.
        """
        raw_value = as_bytes(value)
        if self._campaigning:
            raise RuntimeError(
                f"a campaign for {self.name!r} is already running on this election: await it "
                "(a session has one candidate key per election)"
            )
        if self.is_leader():
            assert self._term is not None
            raise RuntimeError(
                f"this election already leads {self.name!r} (token {self._term.token}): use "
                "proclaim() to change the value, or resign() before campaigning again"
            )
        self.session.check()
        self._campaigning = True
        try:
            return await self._campaign(raw_value)
        finally:
            self._campaigning = False

    async def _campaign(self, raw_value: bytes) -> Term:
        key = candidate_key(self.namespace, self.name, self.session.lease_id)
        started = _clock.now()
        self._event(logging.INFO, "campaign started", key=key, value=raw_value)
        _metrics.sink().campaign_started(self.name)
        try:
            async with self._lock:
                token = await self._until_session_lost(self._create_key(key, raw_value))
                self._key, self._token = key, token
            await self._refuse_if_regressed(key, token)
            await self._client.history.record_token(token)  # kept before anyone can see it
            await self._until_session_lost(self._wait_for_predecessors(key, token))
            revision = await self._until_session_lost(self._recheck(key, token))
            await self._refuse_if_regressed(key, token)
        except asyncio.CancelledError:
            await self._abandon(key)
            raise
        except SessionLost:
            self._key = None
            raise
        except CampaignFailed:
            self._key = None
            raise
        except Exception:
            # Any other failure: leave no ghost candidate behind, which would block the
            # election for as long as our session lives once its turn came.
            await self._abandon(key)
            raise
        term = Term(
            election=self.name,
            key=key.decode(),
            value=raw_value,
            lease_id=self.session.lease_id,
            token=token,
            elected_at=_clock.now(),
        )
        self._begin_term(term, revision)
        waited = term.elected_at - started
        _metrics.sink().campaign_waited(self.name, waited)
        self._event(logging.INFO, "elected", key=key, value=raw_value, token=token, waited=waited)
        return term

    async def _create_key(self, key: bytes, value: bytes) -> int:
        """Create our key with a CAS, or adopt it; return its create revision (our token)."""
        lease = self.session.lease_id
        while True:
            try:
                result = await self._client.txn(
                    [Compare.create_revision(key) == 0],
                    [Op.put(key, value, lease=lease)],
                    [Op.get(key)],
                )
            except AmbiguousResult:
                # The key name carries our lease id, so reading it tells us what happened;
                # read until we know (a lost session ends the wait), or a ghost key may stay.
                existing = await self._riding_out(lambda: self._read_own_key(key))
                if existing is None:
                    continue  # not created: the CAS is safe to send again
                if existing.value != value:
                    await self._put_value(key, existing.create_revision, value)
                return existing.create_revision
            if result.succeeded:
                return result.revision
            found: RangeResult = result.responses[0]
            if not found.kvs:
                continue  # deleted between compare and read: try again
            kv = found.kvs[0]
            if kv.lease != lease:
                raise CampaignFailed(
                    f"key {bounded(key)} exists under another lease {kv.lease:x}; "
                    "remove it or use another namespace"
                )
            if kv.value != value:
                await self._put_value(key, kv.create_revision, value)
            return kv.create_revision

    async def _refuse_if_regressed(self, key: bytes, token: int) -> None:
        """No term with a token at or below the highest revision etcd issued before it lost
        its history: outside systems that keep the highest token would see it go back. Our
        key is deleted (each try moves etcd's revision on) and the caller tries again later.

        :raises TokenRegressed: if ``token`` is not above the guard's floor.
        """
        history = self._client.history
        if history.token_allowed(token):
            return
        floor = history.floor
        _metrics.sink().leadership_refused(self.name)
        self._event(
            logging.ERROR,
            "refusing to lead: the token is not above the floor, the highest revision etcd "
            "issued before it lost its history; leadership resumes once etcd's revisions pass it",
            key=key,
            token=token,
            floor=floor,
            detail=f"remedy: {REMEDY}",
        )
        await self._abandon(key)
        raise TokenRegressed(
            f"token {token} of election {self.name!r} is not above {floor}, the highest "
            "revision etcd issued before it lost its history",
            token=token,
            floor=floor,
        )

    async def _read_own_key(self, key: bytes) -> KeyValue | None:
        found = (await self._client.get(key)).kv
        if found is not None and found.lease != self.session.lease_id:
            raise CampaignFailed(f"key {bounded(key)} belongs to lease {found.lease:x}")
        return found

    async def _put_value(self, key: bytes, token: int, value: bytes) -> None:
        """Set our key's value, guarded by its create revision. False-free: raises on loss."""
        while True:
            try:
                result = await self._client.txn(
                    [Compare.create_revision(key) == token],
                    [Op.put(key, value, lease=self.session.lease_id)],
                )
            except AmbiguousResult:
                existing = await self._client.get(key)
                if existing.kv is None or existing.kv.create_revision != token:
                    raise self._key_gone(key) from None
                if existing.kv.value == value:
                    return
                continue  # our guarded put did not apply; sending it again is safe
            if not result.succeeded:
                raise self._key_gone(key)
            return

    def _key_gone(self, key: bytes) -> LeadershipLost:
        self._end_term(EndReason.KEY_DELETED)
        return LeadershipLost(
            f"our key {bounded(key)} in election {self.name!r} is gone",
            reason=EndReason.KEY_DELETED,
        )

    async def _wait_for_predecessors(self, key: bytes, token: int) -> None:
        """Wait until no candidate with a lower create revision is left.

        Watches only the nearest predecessor, so a resign wakes one waiter. Also watches our own
        key, so a waiter whose key is deleted fails at once instead of waiting in vain.
        """
        while True:
            predecessor = await self._riding_out(
                lambda: self.view.nearest(descending=True, max_create_revision=token - 1)
            )
            if predecessor is None:
                return
            kv, revision = predecessor
            self._event(
                logging.DEBUG,
                "waiting on predecessor",
                key=key,
                predecessor=kv.key,
                predecessor_token=kv.create_revision,
            )
            deleted = await self._first_deleted([kv.key, key], revision)
            if deleted == key:
                raise CampaignFailed(
                    f"our key {bounded(key)} was deleted while waiting to lead {self.name!r}"
                )

    async def _first_deleted(self, keys: Sequence[bytes], revision: int) -> bytes:
        """Wait until one of ``keys`` (all seen existing at ``revision``) is deleted."""
        backoff = Backoff()
        reread = False
        while True:
            try:
                if reread:
                    # Compaction or a broken stream: re-read, and resume from what we see now.
                    # Inside the try: while etcd is unreachable the re-read fails too, and we
                    # keep trying (the session's deadline bounds a campaign; the term, a guard).
                    # Watch from the *first* read's revision: a key seen existing there but
                    # deleted before a later read must still show up as deleted.
                    first_read = 0
                    for k in keys:
                        found = await self._client.get(k)
                        if found.kv is None:
                            return k
                        first_read = first_read or found.revision
                    revision = first_read
                async with contextlib.AsyncExitStack() as stack:
                    watches = [
                        await stack.enter_async_context(
                            self._client.watch(k, start_revision=revision + 1, no_put=True)
                        )
                        for k in keys
                    ]
                    return await _first_event_key(watches)
            except (WatchError, TransportError) as exc:
                if not exc.retriable:
                    raise
                self._event(logging.DEBUG, "watch failed, re-reading", detail=exc)
                await backoff.sleep()
                reread = True

    async def _recheck(self, key: bytes, token: int) -> int:
        """One linearizable read: our key still exists and leads. Returns the read revision."""
        first = await self._riding_out(lambda: self.view.nearest(descending=False))
        if first is None or first[0].key != key or first[0].create_revision != token:
            if first is not None and first[0].create_revision < token:
                # A predecessor re-appeared between reads (cannot normally happen): wait again.
                await self._wait_for_predecessors(key, token)
                return await self._recheck(key, token)
            raise CampaignFailed(
                f"our key {bounded(key)} vanished before election {self.name!r} was won"
            )
        self.session.check()
        return first[1]

    async def _riding_out(self, read: Callable[[], Awaitable[T]]) -> T:
        """Run ``read`` until it succeeds: transport trouble while waiting must not end a
        campaign (the session's deadline bounds it, see :meth:`_until_session_lost`)."""
        backoff = Backoff()
        while True:
            try:
                return await read()
            except TransportError as exc:
                if not exc.retriable:
                    raise
                self._event(logging.DEBUG, "read failed, reading again", detail=exc)
                await backoff.sleep()

    async def _until_session_lost(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable``; if the session ends first, cancel it and raise ``SessionLost``."""
        outcome = await unless(awaitable, self.session.wait_lost())
        if not isinstance(outcome, Stopped):
            return outcome
        reason: EndReason = outcome.value
        raise SessionLost(
            f"session lease {self.session.lease_id:x} ended ({reason}) during the campaign "
            f"for {self.name!r}",
            reason=reason,
        )

    async def _abandon(self, key: bytes) -> None:
        """A cancelled campaign removes its key, so no ghost candidate is left behind."""
        self._key = None
        with contextlib.suppress(Exception):
            await asyncio.shield(self._delete_key(key, token=None))

    async def _delete_key(self, key: bytes, token: int | None) -> None:
        compares = [Compare.lease(key) == self.session.lease_id]
        if token:
            compares = [Compare.create_revision(key) == token]
        for _attempt in range(3):
            try:
                await self._client.txn(compares, [Op.delete(key)])
                return
            except AmbiguousResult:
                if (await self._client.get(key)).kv is None:
                    return
            except TransportError as exc:
                self._event(
                    logging.WARNING,
                    "could not delete our key (it vanishes with the lease)",
                    key=key,
                    detail=exc,
                )
                return

    # -- the term --------------------------------------------------------------------------------

    def _begin_term(self, term: Term, revision: int) -> None:
        loop = asyncio.get_running_loop()
        self._term = term
        self._term_end = loop.create_future()
        term._state.holds = self.is_leader
        metrics = _metrics.sink()
        metrics.term_started(self.name)
        metrics.leadership(self.name, True)
        self._on_session_lost = functools.partial(self._end_term, term=term)
        self.session.add_loss_callback(self._on_session_lost)
        self._guard = guard = loop.create_task(
            self._guard_key(term, revision), name=f"etcd-term-guard-{term.key}"
        )
        self._guards.add(guard)
        guard.add_done_callback(self._guards.discard)

    async def _guard_key(self, term: Term, revision: int) -> None:
        """End the term as soon as our key is seen deleted (by anyone, for any reason)."""
        key = term.key.encode()
        try:
            deleted = await self._first_deleted([key], revision)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._event(
                logging.WARNING,
                "cannot watch our key",
                key=term.key,
                value=term.value,
                token=term.token,
                detail=exc,
            )
            return
        if deleted and self._term is not None and self._term._state is term._state:
            self._end_term(EndReason.KEY_DELETED, term)

    def _end_term(self, reason: EndReason, term: Term | None = None) -> None:
        current = self._term
        if current is None or (term is not None and term._state is not current._state):
            return
        if self._term_end is None or self._term_end.done():
            return
        self._term_end.set_result(reason)
        current._state.end(reason)
        if reason != EndReason.RESIGNED:
            self._key = None
        # Nothing of the term may outlive it on a long-lived session.
        if self._on_session_lost is not None:
            self.session.remove_loss_callback(self._on_session_lost)
            self._on_session_lost = None
        guard = self._guard
        if guard is not None and guard is not asyncio.current_task():
            guard.cancel()  # it cancels its watch at etcd as it unwinds: see _stop_guards
        self._guard = None
        duration = _clock.now() - current.elected_at
        metrics = _metrics.sink()
        metrics.leadership(self.name, False)
        metrics.term_ended(self.name, reason, duration)
        if reason == EndReason.HISTORY_LOST:
            self._report_lost_writes(current)
        self._event(
            logging.INFO,
            "leadership ended",
            key=current.key,
            value=current.value,
            token=current.token,
            reason=reason,
            duration=duration,
        )
        for callback in self._term_callbacks:
            try:
                callback(current, reason)
            except Exception:
                self._event(logging.ERROR, "term end callback failed", exc_info=True)

    def _report_lost_writes(self, term: Term) -> None:
        """etcd lost its history during this term: fenced writes it said it committed above
        its new revision are gone (and those below may be too, in a restore)."""
        state = term._state
        if not state.fenced_count:
            return
        loss = self._client.history.last_loss
        now = loss.revision if loss is not None else 0
        self._event(
            logging.ERROR,
            "fenced writes that etcd said were committed were in the history it lost",
            key=term.key,
            value=term.value,
            token=term.token,
            fenced_writes=state.fenced_count,
            first_revision=state.fenced_first,
            last_revision=state.fenced_last,
            revision=now,
            detail="those above the revision etcd is at now are gone for certain, the others "
            "too unless the snapshot etcd restored holds them",
        )

    # -- operations that need the term ----------------------------------------------------------

    async def proclaim(self, value: KeyLike) -> None:
        """Change the leader's value without an election.

        :raises NotLeader: if we do not lead. :raises LeadershipLost: if our key is gone.
        """
        raw = as_bytes(value)
        async with self._lock:
            term = self.check()
            await self._put_value(term.key.encode(), term.token, raw)
            if self._term is term:
                self._term = dataclasses.replace(term, value=raw)

    async def resign(self) -> None:
        """Give up leadership (or candidacy): delete our key so the next candidate takes over.

        Does nothing if we hold no key. The session stays usable for a new campaign.
        """
        async with self._lock:
            key, token = self._key, self._token
            if key is None:
                return
            self._end_term(EndReason.RESIGNED)
            # The guard unwinds first (it only queues its watch's cancel), so that resign()
            # returns as soon as the delete is answered: callers report the term's end then,
            # about a round trip before the successor (woken by the delete) can confirm.
            await self._stop_guards()
            await self._delete_key(key, token)
            self._key = None
            self._event(logging.DEBUG, "resigned", key=key)

    async def leader(self) -> LeaderInfo | None:
        """The current leader, read linearizably, or ``None`` if nobody leads."""
        return await self.view.leader()

    def observe(self) -> AsyncIterator[LeaderInfo | None]:
        """Leader changes, starting with the current leader; see :meth:`ElectionView.observe`."""
        return self.view.observe()

    async def verify(self) -> bool:
        """Prove with a linearizable read that our key still leads; end the term if not."""
        term = self._term
        if term is None or not self.is_leader():
            return False
        first = await self.view.nearest(descending=False)
        if (
            first is not None
            and first[0].key == term.key.encode()
            and first[0].create_revision == term.token
        ):
            return self.is_leader()
        # Someone else leads, or nobody does: which one depends on whether our key survives.
        ours = None if first is None else (await self._client.get(term.key)).kv
        reason = EndReason.NOT_LEADER if ours is not None else EndReason.KEY_DELETED
        self._end_term(reason, term)
        return False

    async def txn(
        self,
        compares: Sequence[Compare] = (),
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
    ) -> TxnResult:
        """An etcd transaction that commits only while our term holds (fenced writes).

        Our key's create revision is added to ``compares``. If the user's compares fail the
        result has ``succeeded=False``; if our term has ended instead, the term ends locally
        and ``LeadershipLost`` is raised.

        :raises NotLeader: if we do not lead locally. :raises AmbiguousResult: as any txn.
        """
        metrics = _metrics.sink()
        try:
            term = self.check()
        except NotLeader:
            metrics.fenced_txn(self.name, _metrics.FencedResult.REFUSED)
            raise
        key = term.key.encode()
        guard = Compare.create_revision(key) == term.token
        try:
            result = await self._client.txn(
                [guard, *compares], list(on_success), [*on_failure, Op.get(key)]
            )
        except BaseException:
            metrics.fenced_txn(self.name, _metrics.FencedResult.UNKNOWN)
            raise
        if result.succeeded:
            term._state.fenced_committed(result.revision)
            metrics.fenced_txn(self.name, _metrics.FencedResult.COMMITTED)
            return result
        own: RangeResult = result.responses[-1]
        if not own.kvs or own.kvs[0].create_revision != term.token:
            metrics.fenced_txn(self.name, _metrics.FencedResult.REFUSED)
            raise self._key_gone(key)
        metrics.fenced_txn(self.name, _metrics.FencedResult.COMPARE_FAILED)
        return TxnResult(succeeded=False, revision=result.revision, responses=result.responses[:-1])

    # -- helpers --------------------------------------------------------------------------------

    def _event(
        self,
        level: int,
        message: str,
        /,
        *,
        key: KeyLike | None = None,
        value: bytes | None = None,
        detail: object = None,
        exc_info: bool = False,
        **more: object,
    ) -> None:
        """A log line about this election: its name, our key and lease, who we are (from the
        campaign's ``value``, or the ``identity`` given) and ``more``."""
        identity = None if value is None else (self.identity or value)
        log_event(
            log,
            level,
            message,
            election=self.name,
            key=key,
            lease=self.session.lease_hex,
            identity=identity,
            **more,
            detail=detail,
            exc_info=exc_info,
        )

    async def close(self) -> None:
        """Stop guarding the term (does not resign; close the session to end everything)."""
        self._guard = None
        await self._stop_guards()

    async def _stop_guards(self) -> None:
        """Cancel every guard and wait until each has unwound: a guard's watch is cancelled
        at etcd on its way out, so a campaign cycle leaves no watch behind."""
        await cancel_all(g for g in self._guards if g is not asyncio.current_task())


async def _first_event_key(watches: Sequence[AsyncWatch]) -> bytes:
    """Wait for the first event on any of ``watches``; return its key."""

    async def first(watch: AsyncWatch) -> bytes:
        async for batch in watch:
            if batch.events:
                return batch.events[0].kv.key
        raise WatchError("watch ended")

    return await first_result(*(first(watch) for watch in watches))
