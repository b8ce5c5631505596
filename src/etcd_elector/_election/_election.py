"""``AsyncElection``: a candidate's place in one election, and the terms it wins.

It runs one campaign at a time (:mod:`._campaign`) and turns a won one into a :class:`Term`,
which ends, signalled at once, when the session is lost, a guard sees our key deleted, or we
resign. What needs the term is here too: proclaim, resign, verify and fenced transactions.

A session holds one candidacy per election (its key is named after the session's lease): a
second election object with the same name on the same session, or a second campaign while one
runs or leads, is refused with an error saying what to use instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import _clock, _metrics
from .._bounded import bounded
from .._errors import CampaignFailed, LeadershipLost, NotLeader, SessionLost, TokenRegressed
from .._keys import KeyLike, as_bytes
from .._log import log_event
from .._reasons import EndReason
from .._tasks import cancel_all
from ..etcd._txn import Compare, Op
from ..etcd._types import RangeResult, TxnResult
from ._campaign import Campaign
from ._candidate import CandidateKey, claim_candidacy
from ._handing_off import HandingOff
from ._keywait import first_deleted
from ._moves import MoveKeys
from ._names import DEFAULT_NAMESPACE, candidate_key, validate_name, validate_namespace
from ._term import Term, begin_term, end_term, record_fenced_write, report_lost_writes
from ._view import AsyncElectionView, LeaderInfo

if TYPE_CHECKING:
    from ._session import AsyncSession

__all__ = ["AsyncElection"]

log = logging.getLogger(__name__)


class AsyncElection(HandingOff):
    """An election on one session: ``AsyncElection(session, "name")``::

        election = AsyncElection(session, "scheduler")
        term = await election.campaign("host-a")  # returns once we lead
        if election.is_leader():  # local, no I/O
            await election.txn(success=[Op.put("/jobs/owner", "host-a")])  # fenced

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
        self.view = AsyncElectionView(session.client, self.name, namespace=self.namespace)
        self.prefix = self.view.prefix
        self.moves = MoveKeys(self.namespace, self.name)
        claim_candidacy(session, self.prefix, self.name, self.namespace)
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

    async def campaign(self, value: KeyLike, *, priority: int | None = None) -> Term:
        """Become leader: write our key, wait for every earlier candidate, then re-check.

        One campaign at a time: campaign again once a term has ended (or a campaign failed or
        was cancelled). If cancelled, the campaign deletes its key before the cancellation
        propagates. A leader's handoff to a candidate queued behind us takes our key out of
        the queue: we then queue again at once (behind the successor), as its record asks.

        :param priority: declared in the transaction that creates our key (the elector's
            ``priority``), which also says that we follow planned moves: a handoff may then
            take our key out of the queue, and we queue again. ``None`` declares nothing: a
            handoff never passes us (as it never passes Go's recipe).

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
            return await self._campaign(raw_value, priority)
        finally:
            self._campaigning = False

    async def _campaign(self, raw_value: bytes, priority: int | None) -> Term:
        lease = self.session.lease_id
        key = candidate_key(self.namespace, self.name, lease)
        campaign = Campaign(session=self.session, view=self.view, key=key, log=self._event)
        started = _clock.now()
        self._event(logging.INFO, "campaign started", key=key, value=raw_value)
        _metrics.sink().campaign_started(self.name)
        also = []
        if priority is not None:
            also.append(Op.put(self.moves.priority(lease), str(priority), lease=lease))
        try:
            while True:
                async with self._lock:
                    token = await campaign.create(raw_value, also)
                    self._key, self._token = key, token
                try:
                    revision = await campaign.win(token)
                    break
                except CampaignFailed as exc:
                    if isinstance(exc, TokenRegressed) or not await self._requeue_asked(token):
                        raise
                    self._event(
                        logging.INFO, "queueing again after a handoff", key=key, token=token
                    )
        except (SessionLost, CampaignFailed):
            self._key = None  # gone with the session, or deleted (TokenRegressed: by us)
            raise
        except BaseException:
            # Cancelled, or any other failure: leave no ghost candidate behind, which would
            # block the election for as long as our session lives once its turn came.
            self._key = None
            await campaign.abandon()
            raise
        term = begin_term(
            election=self.name,
            key=key.decode(),
            value=raw_value,
            lease_id=self.session.lease_id,
            token=token,
            holds=self.is_leader,
        )
        self._begin_term(term, revision)
        waited = term.elected_at - started
        _metrics.sink().campaign_waited(self.name, waited)
        self._event(logging.INFO, "elected", key=key, value=raw_value, token=token, waited=waited)
        return term

    def _candidate(self, key: bytes) -> CandidateKey:
        return CandidateKey(self._client, key, self.session.lease_id, self._event)

    async def _put_value(self, key: bytes, token: int, value: bytes) -> None:
        """Set our key's value, guarded by its create revision. :raises LeadershipLost: if
        the key is gone."""
        if not await self._candidate(key).put(token, value):
            raise self._key_gone(key)

    def _key_gone(self, key: bytes) -> LeadershipLost:
        self._end_term(EndReason.KEY_DELETED)
        return LeadershipLost(
            f"our key {bounded(key)} in election {self.name!r} is gone",
            reason=EndReason.KEY_DELETED,
        )

    async def _delete_key(self, key: bytes, token: int | None) -> None:
        await self._candidate(key).delete(token)

    # -- the term --------------------------------------------------------------------------------

    def _begin_term(self, term: Term, revision: int) -> None:
        loop = asyncio.get_running_loop()
        self._term = term
        self._term_end = loop.create_future()
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
            deleted = await first_deleted(
                self._client, [(key, term.token)], revision, on_retry=self._watch_retried
            )
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
        if deleted and self._term is not None and self._term.same_term(term):
            self._end_term(EndReason.KEY_DELETED, term)

    def _end_term(self, reason: EndReason, term: Term | None = None) -> None:
        current = self._term
        if current is None or (term is not None and not term.same_term(current)):
            return
        if self._term_end is None or self._term_end.done():
            return
        self._term_end.set_result(reason)
        end_term(current, reason)
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
            loss = self._client.history.last_loss
            report_lost_writes(current, loss.revision if loss is not None else 0, self._event)
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
                self._term = term.with_value(raw)

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
        """Leader changes, starting with the current leader; see
        :meth:`AsyncElectionView.observe`."""
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
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
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
                [guard, *compares], list(success), [*failure, Op.get(key)]
            )
        except BaseException:
            metrics.fenced_txn(self.name, _metrics.FencedResult.UNKNOWN)
            raise
        if result.succeeded:
            record_fenced_write(term, result.revision)
            metrics.fenced_txn(self.name, _metrics.FencedResult.COMMITTED)
            return result
        own: RangeResult = result.responses[-1]
        if not own.kvs or own.kvs[0].create_revision != term.token:
            metrics.fenced_txn(self.name, _metrics.FencedResult.REFUSED)
            raise self._key_gone(key)
        metrics.fenced_txn(self.name, _metrics.FencedResult.COMPARE_FAILED)
        return TxnResult(succeeded=False, revision=result.revision, responses=result.responses[:-1])

    # -- helpers --------------------------------------------------------------------------------

    def _watch_retried(self, error: Exception) -> None:
        self._event(logging.DEBUG, "watch failed, re-reading", detail=error)

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
