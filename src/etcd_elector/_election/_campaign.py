"""``Campaign``: becoming leader of an election, step by step.

Write our key with a compare-and-swap (never a plain put), refuse a token etcd had issued
before it lost its history, wait on the nearest predecessor only (one resign wakes one waiter),
then re-check with a linearizable read that our key still exists and leads before anyone is
told. Transport trouble on the way is ridden out: the session's deadline bounds a campaign, and
its end stops it with ``SessionLost``. :class:`~._election.AsyncElection` runs one campaign at
a time and turns its outcome into a term.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from .. import _metrics
from .._backoff import Backoff
from .._bounded import bounded
from .._errors import CampaignFailed, LeadershipLost, SessionLost, TokenRegressed, TransportError
from .._reasons import EndReason
from .._tasks import Stopped, shielded, unless
from ..etcd._history_guard import REMEDY
from ..etcd._txn import Op
from ._candidate import CandidateKey
from ._keywait import first_deleted

if TYPE_CHECKING:
    from ._session import AsyncSession
    from ._view import AsyncElectionView

__all__ = ["Campaign"]

T = TypeVar("T")


class Campaign:
    """One campaign for ``key`` in the election ``view`` reads, on ``session``; ``log`` writes
    the election's log lines (``log(level, message, **fields)``)."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        view: AsyncElectionView,
        key: bytes,
        log: Callable[..., None],
    ) -> None:
        self.session = session
        self.view = view
        self.name = view.name
        self.candidate = CandidateKey(view.client, key, session.lease_id, log)
        self._log = log

    @property
    def key(self) -> bytes:
        return self.candidate.key

    async def create(self, value: bytes, also: Sequence[Op] = ()) -> int:
        """Create our key holding ``value`` (or adopt it: its name carries our lease); return
        its create revision, our token. ``also``: writes made with the create, in one txn.

        :raises SessionLost: if the session ends first.
        :raises CampaignFailed: if the key exists under another lease.
        :raises LeadershipLost: if our key vanished while we set its value.
        """
        return await self.until_session_lost(self._create(value, also))

    async def _create(self, value: bytes, also: Sequence[Op]) -> int:
        token, held = await self.candidate.create(value, self.ride_out, also)
        if held != value and not await self.candidate.put(token, value):
            raise LeadershipLost(
                f"our key {bounded(self.key)} in election {self.name!r} is gone",
                reason=EndReason.KEY_DELETED,
            )
        return token

    async def win(self, token: int) -> int:
        """After :meth:`create`: lead once every earlier candidate is gone; return the revision
        of the read that confirmed it.

        :raises SessionLost: if the session ends first (no phantom leadership).
        :raises CampaignFailed: if our key is deleted by someone else while waiting.
        :raises TokenRegressed: if the token is not above the history guard's floor (our key
            is deleted then).
        """
        history = self.view.client.history
        await self._refuse_if_regressed(token)
        await history.record_token(token)  # kept before anyone can see it
        revision = await self.until_session_lost(self._wait_until_first(token))
        await self._refuse_if_regressed(token)
        return revision

    async def abandon(self) -> None:
        """Delete our key, so that no ghost candidate is left behind (even if cancelled again
        meanwhile)."""
        with contextlib.suppress(Exception):
            await shielded(self.candidate.delete(token=None))

    async def _refuse_if_regressed(self, token: int) -> None:
        """No term with a token at or below the highest revision etcd issued before it lost
        its history: outside systems that keep the highest token would see it go back. Our
        key is deleted (each try moves etcd's revision on) and the caller tries again later.
        """
        history = self.view.client.history
        if history.token_allowed(token):
            return
        floor = history.floor
        _metrics.sink().leadership_refused(self.name)
        self._log(
            logging.ERROR,
            "refusing to lead: the token is not above the floor, the highest revision etcd "
            "issued before it lost its history; leadership resumes once etcd's revisions pass it",
            key=self.key,
            token=token,
            floor=floor,
            detail=f"remedy: {REMEDY}",
        )
        await self.abandon()
        raise TokenRegressed(
            f"token {token} of election {self.name!r} is not above {floor}, the highest "
            "revision etcd issued before it lost its history",
            token=token,
            floor=floor,
        )

    async def _wait_until_first(self, token: int) -> int:
        """Wait until no candidate with a lower create revision is left, then confirm that our
        key leads; return the revision of the read that confirmed it.

        Each read is one linearizable round trip that answers both questions: which candidate
        is nearest before us (we watch only that one, so a resign wakes one waiter), and, when
        there is none, whether our own key is still there and first (the re-check before
        anyone is told). We also watch our own key, so a waiter whose key is deleted fails at
        once instead of waiting in vain.
        """
        key = self.key
        while True:
            standing = await self.ride_out(lambda: self.view.standing(token))
            predecessor = standing.predecessor
            if predecessor is None:
                first = standing.first
                if first is None or first.key != key or first.create_revision != token:
                    raise CampaignFailed(
                        f"our key {bounded(key)} vanished before election {self.name!r} was won"
                    )
                self.session.check()
                return standing.revision
            self._log(
                logging.DEBUG,
                "waiting on predecessor",
                key=key,
                predecessor=predecessor.key,
                predecessor_token=predecessor.create_revision,
            )
            deleted = await first_deleted(
                self.view.client,
                [(predecessor.key, predecessor.create_revision), (key, token)],
                standing.revision,
                on_retry=self.watch_retried,
            )
            if deleted == key:
                raise CampaignFailed(
                    f"our key {bounded(key)} was deleted while waiting to lead {self.name!r}"
                )

    def watch_retried(self, error: Exception) -> None:
        self._log(logging.DEBUG, "watch failed, re-reading", detail=error)

    async def ride_out(self, read: Callable[[], Awaitable[T]]) -> T:
        """Run ``read`` until it succeeds: transport trouble while waiting must not end a
        campaign (the session's deadline bounds it, see :meth:`until_session_lost`)."""
        backoff = Backoff()
        while True:
            try:
                return await read()
            except TransportError as exc:
                if not exc.retriable:
                    raise
                self._log(logging.DEBUG, "read failed, reading again", detail=exc)
                await backoff.sleep()

    async def until_session_lost(self, awaitable: Awaitable[T]) -> T:
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
