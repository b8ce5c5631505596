"""The shards one replica holds, claims and releases, each ownership's work, and how an
ownership ends.

The plan of each revision (:meth:`Holdings.reconcile`) says which shards to claim and which to
release; a claim is a compare-and-swap (:mod:`._writes`) whose key's create revision is the
ownership's fencing token.

An ownership ends in one of two ways. **Released** (moved away, or the replica leaves): its
work is told to stop and given the drain budget (never past the session's deadline), then
cancelled; the ownership ends locally, and only then is the owner key deleted (guarded by the
token), so nobody can own the shard before this replica stopped believing it does. **Lost**
(the session's deadline passed, or the key was deleted behind our back): it ends at once and
its work is cancelled without a drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence

from .._backoff import Backoff
from .._election._session import AsyncSession
from .._errors import AmbiguousResult, TransportError
from .._log import log_event
from .._reasons import EndReason
from .._tasks import cancel_all, cancel_and_wait, wait_first
from ..etcd import AsyncEtcdClient
from ._events import OnAcquired, OnReleased, ShardEvent, ShardEventKind, ShardWork
from ._owned import OwnedShard, new_owned
from ._spec import GroupKeys
from ._view import GroupSnapshot
from ._writes import BATCH, Releaser, claim

__all__ = ["Holdings", "Rejoin"]

log = logging.getLogger(__name__)

_RELEASED = frozenset({EndReason.MOVED, EndReason.CLOSED})  # ends we chose, after a drain


class Rejoin(Exception):
    """Our member key vanished while the session lives: leave and join again."""


class Holdings:
    """What one replica of ``keys.group`` holds. Every method runs on the group's loop."""

    def __init__(
        self,
        client: AsyncEtcdClient,
        keys: GroupKeys,
        identity: str,
        releaser: Releaser,
        publish: Callable[[ShardEvent], None],
        changed: Callable[[], None],
    ) -> None:
        self.client = client
        self.keys = keys
        self.group = keys.group
        self.identity = identity
        self.drain = 0.0
        self.on_acquired: OnAcquired | None = None
        self.on_released: OnReleased | None = None
        self.session: AsyncSession | None = None  # the session ownerships are bound to now
        self.failure: Exception | None = None  # the first error a work raised
        self.held: dict[str, OwnedShard] = {}
        self.claiming: dict[str, asyncio.Task[None]] = {}
        self.releasing: dict[str, asyncio.Task[None]] = {}
        self.released: dict[str, int] = {}  # shard -> the newest token we gave up
        self._work: dict[str, asyncio.Task[None]] = {}
        self._forgetting: set[asyncio.Task[None]] = set()
        self._releaser = releaser
        self.publish = publish
        self.changed = changed  # the plan needs a look

    def working(self) -> list[str]:
        return sorted(s for s, t in self._work.items() if not t.done())

    # -- beginnings --------------------------------------------------------------------------

    def acquire(self, session: AsyncSession, shard: str, token: int, work: ShardWork) -> None:
        """Our owner key of ``shard`` exists with ``token``: hold it and start its work."""
        owned = new_owned(
            self.group,
            shard,
            self.keys.owner(shard),
            session.lease_id,
            token,
            lambda: session.alive,
            lambda: session.deadline,
        )
        self.held[shard] = owned
        self._log(logging.INFO, "shard acquired", owned)
        self.publish(
            ShardEvent(ShardEventKind.ACQUIRED, shard, token, session.lease_id, None, owned)
        )
        self._work[shard] = asyncio.ensure_future(self._run_work(owned, work))

    async def _run_work(self, owned: OwnedShard, work: ShardWork) -> None:
        await self._call(self.on_acquired, owned)
        if not owned.is_owned():
            return
        try:
            await work(owned)
        except Exception as exc:
            self._log(logging.ERROR, "work failed, leaving the group", owned, detail=repr(exc))
            if self.failure is None:
                self.failure = exc
            self.changed()

    # -- ends ----------------------------------------------------------------------------------

    def release(self, session: AsyncSession, shard: str, reason: EndReason) -> None:
        """Drain, then release ``shard`` (in the background; see :attr:`releasing`)."""
        self.releasing[shard] = asyncio.ensure_future(
            self._drain_and_release(session, shard, reason)
        )

    async def _drain_and_release(
        self, session: AsyncSession, shard: str, reason: EndReason
    ) -> None:
        owned = self.held[shard]
        try:
            owned._state.stop()
            self.publish(
                ShardEvent(ShardEventKind.DRAINING, shard, owned.token, owned.lease_id, None, owned)
            )
            task = self._work.get(shard)
            if task is not None and not task.done():
                # The session's deadline wins over the drain budget.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.drain, session.remaining())):
                        await wait_first(task)
            # Ownership ends here, before the key goes: nobody else can own it before that.
            self._end(shard, reason)
            await self._stop_work(shard)
            await self._releaser.delete(session, owned)
        finally:
            self.releasing.pop(shard, None)
        await self._forget(owned, reason)

    def _end(self, shard: str, reason: EndReason) -> OwnedShard | None:
        """End an ownership locally (idempotent): ``is_owned()`` is false from here on."""
        owned = self.held.get(shard)
        if owned is None or owned._state.reason is not None:
            return None
        owned._state.end(reason)
        released = reason in _RELEASED
        kind = ShardEventKind.RELEASED if released else ShardEventKind.LOST
        level = logging.INFO if released else logging.WARNING
        self._log(level, f"shard {kind.value}", owned, reason=reason)
        self.publish(ShardEvent(kind, shard, owned.token, owned.lease_id, reason, owned))
        return owned

    def lose(self, owned: OwnedShard, reason: EndReason) -> None:
        """This ownership (not a newer one of the same shard) ended without a drain, found
        from a sync context: end it now, stop its work and tell the callback in the
        background."""
        if self.held.get(owned.shard) is not owned or self._end(owned.shard, reason) is None:
            return
        task = asyncio.ensure_future(self._forget(owned, reason, delete=True))
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def _forget(self, owned: OwnedShard, reason: EndReason, *, delete: bool = False) -> None:
        """After an ownership ended: stop its work, drop it, tell the callback. With
        ``delete``, also remove the owner key if it is still this one: ownership has ended
        here, so a key we judged gone but that is not must not block the shard."""
        await self._stop_work(owned.shard)
        session = self.session
        if delete and session is not None and session.alive:
            await self._releaser.delete(session, owned)
        if self.held.get(owned.shard) is owned:
            del self.held[owned.shard]
        self.released[owned.shard] = max(self.released.get(owned.shard, 0), owned.token)
        self.changed()
        await self._call(self.on_released, owned, reason)

    async def _stop_work(self, shard: str) -> None:
        task = self._work.pop(shard, None)
        if task is not None:
            await cancel_and_wait(task)  # a work's own error was recorded by _run_work

    async def lose_all(self, reason: EndReason) -> None:
        """End every ownership at once (the session is gone: no drain, no delete)."""
        await cancel_all(list(self.releasing.values()))
        held = list(self.held.values())
        for owned in held:
            self._end(owned.shard, reason)
        await asyncio.gather(*(self._forget(o, o.end_reason or reason) for o in held))
        if self._forgetting:
            await asyncio.wait(set(self._forgetting))
        await asyncio.gather(*(self._stop_work(shard) for shard in list(self._work)))
        self.held.clear()

    # -- the plan, acted on ------------------------------------------------------------------

    def reconcile(
        self,
        snapshot: GroupSnapshot,
        shards: Sequence[str],
        session: AsyncSession,
        work: ShardWork,
    ) -> None:
        """Act on the plan of ``snapshot``: adopt our keys, end ownerships whose key is
        gone, release what the plan gives to others, claim what it gives us.

        :raises Rejoin: if our member key is not in the group.
        """
        me = session.lease_id
        if me not in snapshot.members:
            raise Rejoin
        owners = snapshot.owners
        for shard, held in list(self.held.items()):
            owner = owners.get(shard)
            gone = owner is None or owner.token != held.token
            if gone and snapshot.revision >= held.token and shard not in self.releasing:
                self.lose(held, EndReason.KEY_DELETED)
        for shard, owner in owners.items():
            # A key of ours we do not hold, newer than any we gave up: a claim whose answer
            # was lost. (An older one is a stale view of a key we already released.)
            if owner.lease != me or owner.token <= self.released.get(shard, 0):
                continue
            if shard in shards and not self._busy(shard):
                self.acquire(session, shard, owner.token, work)
        target = snapshot.target(shards)
        for shard in list(self.held):
            if target.get(shard) != me and shard not in self.releasing:
                self.release(session, shard, EndReason.MOVED)
        wanted = [
            shard
            for shard, who in target.items()
            if who == me and shard not in owners and not self._busy(shard)
        ]
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            task = asyncio.ensure_future(self._claim(session, chunk, work))
            for shard in chunk:
                self.claiming[shard] = task

    def _busy(self, shard: str) -> bool:
        return shard in self.held or shard in self.claiming or shard in self.releasing

    async def _claim(self, session: AsyncSession, shards: list[str], work: ShardWork) -> None:
        """Create the owner keys of free shards the plan gives us. A refused claim waits for
        the watch to show why (someone else's key) instead of asking again at once; one with
        an unknown outcome is settled by the watch too (a key of ours we do not hold is
        adopted)."""
        tokens: dict[str, int] = {}
        try:
            tokens = await claim(self.client, self.keys, session, self.identity, shards)
        except AmbiguousResult as exc:
            log_event(log, logging.INFO, "claim outcome unknown", detail=exc, group=self.group)
        except TransportError as exc:
            log_event(log, logging.INFO, "claim failed", detail=exc, group=self.group)
            await Backoff(0.1, 0.2).sleep()
            self.changed()
        finally:
            for shard in shards:
                self.claiming.pop(shard, None)
        if session.alive and self.session is session:
            for shard, token in tokens.items():
                self.acquire(session, shard, token, work)

    # -- helpers -----------------------------------------------------------------------------

    def _log(
        self,
        level: int,
        message: str,
        owned: OwnedShard,
        *,
        reason: EndReason | None = None,
        detail: object = None,
    ) -> None:
        log_event(
            log,
            level,
            message,
            detail=detail,
            group=self.group,
            shard=owned.shard,
            token=owned.token,
            lease=owned.lease_hex,
            identity=self.identity,
            reason=reason,
        )

    async def _call(self, callback: Callable[..., object] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            outcome = callback(*args)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            log_event(
                log,
                logging.ERROR,
                "shard group callback failed",
                detail=repr(exc),
                exc_info=True,
                group=self.group,
                callback=getattr(callback, "__qualname__", repr(callback)),
            )
