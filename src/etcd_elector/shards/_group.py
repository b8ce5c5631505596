"""``AsyncShardGroup``: one replica of a group that shares P shards among its live replicas.

How a replica works (the whole protocol; see docs/shards.md for the argument):

1. **Join.** Grant one lease (a session) and put the member key ``m/<lease hex>`` on it.
2. **Follow.** Read the group's prefix, watch it from the next revision. After every change,
   compute the plan (:mod:`._plan`) from that revision's members and owners: every replica
   computes the same plan from the same revision, with no coordinator.
3. **Claim** each shard the plan gives us that has no owner: a transaction that creates the
   owner key ``o/<shard>`` on our lease only if it does not exist (``create_revision == 0``)
   and our member key still exists. The key's create revision is the fencing token.
4. **Drain, then release** each shard the plan gives to someone else: tell its work to stop,
   wait up to the drain budget (never past the session's deadline), cancel it, end the
   ownership locally, and only then delete the owner key (guarded by the token). The new
   owner's claim can only succeed after that delete.
5. **Lose everything at once** when the session is lost: the local deadline has passed, so the
   work is cancelled without a drain, and etcd deletes our keys when it expires the lease.
6. **Leave** (close): delete the member key first, so the others plan without us, then drain
   and release every shard, then revoke the lease.

Cost: one lease, one keepalive stream and one watch per replica, whatever the shard count.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import os
import random
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from etcd_elector import (
    AmbiguousResult,
    AsyncSession,
    Compare,
    ConfigurationError,
    NotLeader,
    Op,
    RangeResult,
    TransportError,
    TxnResult,
)

from ._owned import OwnedShard, ReleaseReason, new_owned
from ._spec import DEFAULT_NAMESPACE, MemberInfo, shard_names, validate_weight
from ._view import FATAL_ERRORS, AsyncShardView, GroupSnapshot, ShardOwner
from ._writes import BATCH, Releaser, claim

if TYPE_CHECKING:
    from etcd_elector import AsyncClient

__all__ = ["AsyncShardGroup", "ShardEvent", "ShardEventKind", "ShardWork"]

log = logging.getLogger(__name__)

ShardWork = Callable[[OwnedShard], Awaitable[Any]]
Callback = Callable[..., Any]
_RETRY = (0.05, 2.0)


class ShardEventKind(enum.Enum):
    """What a :class:`ShardEvent` reports."""

    JOINED = "joined"  # this replica registered as a member (``lease`` set)
    ACQUIRED = "acquired"  # a shard is ours (``shard``, ``token``)
    DRAINING = "draining"  # its work was told to stop; release follows
    RELEASED = "released"  # we gave it up on purpose (``reason``: moved, closed)
    LOST = "lost"  # it ended without a drain (session lost, key deleted)
    LEFT = "left"  # this replica is no longer a member (``reason``)
    STOPPED = "stopped"  # the group was closed; ``events()`` ends after it


@dataclass(frozen=True)
class ShardEvent:
    """One change seen by a replica (from :meth:`AsyncShardGroup.events`): ``shard``,
    ``token`` and the ownership itself (``owned``) for the shard events, ``lease`` (this
    replica's), ``reason`` for ends. Events are published the moment they happen: a
    ``released`` event comes before the owner key is deleted."""

    kind: ShardEventKind
    shard: str | None = None
    token: int = 0
    lease: int = 0
    reason: str | None = None
    owned: OwnedShard | None = field(default=None, compare=False, repr=False)


class _Rejoin(Exception):
    """Our member key vanished while the session lives: leave and join again."""


class AsyncShardGroup:
    """A replica of shard group ``group``. Use ``async with AsyncShardGroup(...) as group``
    and ``await group.run(work)``: ``work(shard)`` runs for every shard this replica owns.

    :param shards: the shard count (shards ``"0"`` .. ``"P-1"``) or a list of shard names;
        every replica of the group must give the same.
    :param weight: this replica's share relative to the others (1 to 1000, default 1).
    :param identity: what this replica shows others (default ``hostname:pid``).
    :param ttl: session TTL in whole seconds (default 10); ``margin``, ``keepalive_interval``
        as for :class:`AsyncSession`.
    :param drain: seconds a moving shard's work gets to stop before it is cancelled (default
        5; never past the session's deadline).
    :param on_acquired: ``on_acquired(shard)``, sync or async.
    :param on_released: ``on_released(shard, reason)``, sync or async; once per acquisition.
    :raises ConfigurationError: for a bad name, namespace, shard list, weight or timing.
    """

    def __init__(
        self,
        client: AsyncClient,
        group: str,
        *,
        shards: int | Sequence[str],
        weight: int = 1,
        identity: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        ttl: float = 10.0,
        margin: float | None = None,
        keepalive_interval: float | None = None,
        drain: float = 5.0,
        on_acquired: Callback | None = None,
        on_released: Callback | None = None,
    ) -> None:
        self.client = client
        self.view = AsyncShardView(client, group, namespace=namespace)
        self.keys = self.view.keys
        self.group = self.keys.group
        self.shards = shard_names(shards)
        self.weight = validate_weight(weight)
        self.identity = identity if identity is not None else _default_identity()
        if isinstance(drain, bool) or not isinstance(drain, int | float) or not drain >= 0:
            raise ConfigurationError(
                f"drain must be a non-negative number of seconds, got {drain!r}"
            )
        self.drain = float(drain)
        self._session_options: dict[str, Any] = {
            "ttl": ttl,
            "margin": margin,
            "keepalive_interval": keepalive_interval,
        }
        AsyncSession(client, **self._session_options)  # validates the timing, does no I/O
        self.on_acquired = on_acquired
        self.on_released = on_released
        self._session: AsyncSession | None = None
        self._member_revision = 0
        self._snapshot: GroupSnapshot | None = None
        self._held: dict[str, OwnedShard] = {}
        self._work: dict[str, asyncio.Task[Any]] = {}
        self._claiming: dict[str, asyncio.Task[None]] = {}
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self._forgetting: set[asyncio.Task[None]] = set()
        self._releaser = Releaser(client, self.keys.group)
        self._released: dict[str, int] = {}  # shard -> the newest token we gave up
        self._subscribers: list[asyncio.Queue[ShardEvent]] = []
        self._changed = asyncio.Event()
        self._closing: asyncio.Event | None = None
        self._run_finished: asyncio.Event | None = None
        self._running = False
        self._failure: BaseException | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"<AsyncShardGroup {self.group!r} owned={len(self.owned())}/{len(self.shards)}>"

    # -- local state (no I/O) --------------------------------------------------------------

    @property
    def session(self) -> AsyncSession | None:
        return self._session

    def owned(self) -> dict[str, OwnedShard]:
        """The shards this replica owns right now; empty once the session's deadline passed."""
        return {s: o for s, o in self._held.items() if o.is_owned()}

    def is_owner(self, shard: str) -> bool:
        held = self._held.get(shard)
        return held is not None and held.is_owned()

    def debug_state(self) -> dict[str, list[str]]:
        """For diagnosis: the shards in each internal state (held, claiming, releasing)."""
        return {
            "held": sorted(self._held),
            "claiming": sorted(self._claiming),
            "releasing": sorted(self._releasing),
            "working": sorted(s for s, t in self._work.items() if not t.done()),
        }

    @property
    def snapshot(self) -> GroupSnapshot | None:
        """The latest state of the group this replica has seen (not a fresh read)."""
        return self._snapshot

    # -- reads -------------------------------------------------------------------------------

    async def owner(self, shard: str) -> ShardOwner | None:
        """The shard's owner (a linearizable read), or ``None``."""
        return await self.view.owner(shard)

    async def read(self) -> GroupSnapshot:
        """The whole group now (a linearizable read)."""
        return await self.view.snapshot()

    async def events(self) -> AsyncGenerator[ShardEvent, None]:
        """Every event from now on, ending after ``STOPPED``."""
        queue: asyncio.Queue[ShardEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.kind is ShardEventKind.STOPPED:
                    return
        finally:
            self._subscribers.remove(queue)

    # -- fenced writes -----------------------------------------------------------------------

    async def txn(
        self,
        shard: str | OwnedShard,
        compares: Sequence[Compare] = (),
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
    ) -> TxnResult:
        """A transaction that commits only while this replica owns ``shard``.

        Pass the :class:`OwnedShard` your work was given: the write is then fenced by *that*
        ownership's token, so work left over from an earlier ownership of the same shard
        cannot commit under a newer one. (A shard name means the current ownership.) The
        owner key's create revision is added to ``compares``. If only the user's compares
        fail, ``succeeded`` is false; if the ownership is gone, it ends locally and
        ``LeadershipLost`` is raised.

        :raises NotLeader: if that ownership does not hold locally. :raises AmbiguousResult:
            as any transaction.
        """
        name = shard.shard if isinstance(shard, OwnedShard) else shard
        held = self._held.get(name)
        if isinstance(shard, OwnedShard) and held is not shard:
            held = None
        if held is None or not held.is_owned():
            raise NotLeader(
                f"this replica does not own shard {name!r} of group {self.group!r}"
                + (f" with token {shard.token}" if isinstance(shard, OwnedShard) else "")
            )
        key = held.key.encode()
        guard = Compare.create_revision(key) == held.token
        result = await self.client.txn(
            [guard, *compares], list(on_success), [*on_failure, Op.get(key)]
        )
        if result.succeeded:
            return result
        own: RangeResult = result.responses[-1]
        if not own.kvs or own.kvs[0].create_revision != held.token:
            self._lose(held, ReleaseReason.KEY_DELETED)
            held.check()
        return TxnResult(succeeded=False, revision=result.revision, responses=result.responses[:-1])

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> AsyncShardGroup:
        if self._closing is None:
            self._closing = asyncio.Event()
            self._run_finished = asyncio.Event()
            self._run_finished.set()
        return self

    async def __aenter__(self) -> AsyncShardGroup:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Drain and release every shard, leave the group, revoke the lease. Idempotent."""
        await self.start()
        assert self._closing is not None and self._run_finished is not None
        self._closing.set()
        self._changed.set()
        await self._run_finished.wait()
        if not self._stopped:
            self._stopped = True
            self._publish(ShardEvent(ShardEventKind.STOPPED))

    async def run(self, work: ShardWork) -> None:
        """Join the group and run ``work(shard)`` for every shard this replica owns, until
        closed (or cancelled). A work that returns leaves its shard owned and idle until it
        moves; a shard moving away has its work drained, then cancelled.

        :raises Exception: whatever a work raised, after draining and releasing every shard.
        :raises ConfigurationError: if live members of the group declare other shards.
        :raises PermissionDenied: if etcd refuses access to the group's keys.
        """
        await self.start()
        assert self._closing is not None and self._run_finished is not None
        if self._running:
            raise RuntimeError("run() is already active on this shard group")
        self._running = True
        self._run_finished.clear()
        self._failure = None
        retries = 0
        try:
            while not self._closing.is_set():
                try:
                    session = await self._join()
                except FATAL_ERRORS:
                    raise
                except TransportError as exc:
                    retries += 1
                    log.warning(
                        "cannot join shard group=%s, retrying: %s",
                        self.group,
                        exc,
                        extra={"group": self.group},
                    )
                    await self._pause(retries)
                    continue
                if session is None:
                    break
                retries = 0
                await self._serve(session, work)
                if self._failure is not None:
                    raise self._failure
        finally:
            self._running = False
            session, self._session = self._session, None
            if session is not None:
                await session.close()
            self._run_finished.set()

    # -- membership --------------------------------------------------------------------------

    async def _join(self) -> AsyncSession | None:
        """A new session with our member key on it; ``None`` if closing first."""
        assert self._closing is not None
        snapshot = await self.view.snapshot()
        strangers = [m for m in snapshot.members.values() if m.shards != self.shards]
        if strangers:
            raise ConfigurationError(
                f"shard group {self.group!r} has live members with another shard list (e.g. "
                f"{strangers[0].identity!r}, {len(strangers[0].shards)} shards, this replica "
                f"{len(self.shards)}): stop them first or use another group name"
            )
        session = AsyncSession(self.client, **self._session_options)
        await session.start()
        if self._closing.is_set():
            await session.close()
            return None
        info = MemberInfo(session.lease_id, self.identity, self.weight, self.shards, 0)
        key = self.keys.member(session.lease_id)
        while True:
            try:
                put = await self.client.put(key, info.encode(), lease=session.lease_id)
                break
            except AmbiguousResult:
                continue  # our own key: putting it again is harmless
            except BaseException:
                await session.close()
                raise
        self._session = session
        self._member_revision = put.revision
        log.info(
            "joined shard group=%s lease=%x identity=%s weight=%d shards=%d",
            self.group,
            session.lease_id,
            self.identity,
            self.weight,
            len(self.shards),
            extra={
                "group": self.group,
                "lease": f"{session.lease_id:x}",
                "identity": self.identity,
            },
        )
        self._publish(ShardEvent(ShardEventKind.JOINED, lease=session.lease_id))
        return session

    async def _serve(self, session: AsyncSession, work: ShardWork) -> None:
        """Follow the group and act on the plan until the session is lost or we leave."""
        assert self._closing is not None
        follower = asyncio.ensure_future(self._follow())
        lost = asyncio.ensure_future(session.wait_lost())
        reason = ReleaseReason.CLOSED
        try:
            while True:
                self._changed.clear()
                if lost.done() or not session.alive:
                    break
                if self._closing.is_set() or self._failure is not None:
                    break
                if follower.done():
                    follower.result()  # a fatal error: raise it
                try:
                    self._reconcile(session, work)
                except _Rejoin:
                    log.warning(
                        "member key of lease=%x vanished from group=%s: leaving and joining again",
                        session.lease_id,
                        self.group,
                        extra={"group": self.group, "lease": f"{session.lease_id:x}"},
                    )
                    break
                changed = asyncio.ensure_future(self._changed.wait())
                # The deadline wins even if no timer or event fires before it.
                timeout = max(0.0, session.remaining())
                await asyncio.wait(
                    {changed, lost, follower}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                changed.cancel()
            if lost.done() or not session.alive:
                reason = session.loss_reason or "deadline"
                await self._lose_all(reason)
            else:
                await self._leave(session)
        finally:
            for task in (follower, lost, *self._claiming.values()):
                task.cancel()
            await asyncio.gather(follower, lost, *self._claiming.values(), return_exceptions=True)
            self._claiming.clear()
            await self._lose_all(reason)  # nothing left if we left cleanly
            await self._releaser.close()
            self._snapshot = None
            self._session = None
            self._publish(ShardEvent(ShardEventKind.LEFT, lease=session.lease_id, reason=reason))
            await session.close()

    async def _follow(self) -> None:
        async for snapshot in self.view.follow():
            self._snapshot = snapshot
            self._changed.set()

    async def _leave(self, session: AsyncSession) -> None:
        """Graceful: stop being a member, then drain and release every shard."""
        with contextlib.suppress(TransportError):
            await self.client.delete(self.keys.member(session.lease_id))
        for shard in list(self._held):
            if shard not in self._releasing:
                self._release(session, shard, ReleaseReason.CLOSED)
        if self._releasing:
            await asyncio.gather(*self._releasing.values(), return_exceptions=True)

    # -- the plan, acted on ------------------------------------------------------------------

    def _reconcile(self, session: AsyncSession, work: ShardWork) -> None:
        snapshot = self._snapshot
        if snapshot is None or snapshot.revision < self._member_revision:
            return
        me = session.lease_id
        if me not in snapshot.members:
            raise _Rejoin
        owners = snapshot.owners
        for shard, held in list(self._held.items()):
            owner = owners.get(shard)
            gone = owner is None or owner.token != held.token
            if gone and snapshot.revision >= held.token and shard not in self._releasing:
                self._lose(held, ReleaseReason.KEY_DELETED)
        for shard, owner in owners.items():
            # A key of ours we do not hold, newer than any we gave up: a claim whose answer
            # was lost. (An older one is a stale view of a key we already released.)
            if owner.lease != me or owner.token <= self._released.get(shard, 0):
                continue
            if shard in self.shards and not self._busy(shard):
                self._acquire(session, shard, owner.token, work)
        target = snapshot.target(self.shards)
        for shard in list(self._held):
            if target.get(shard) != me and shard not in self._releasing:
                self._release(session, shard, ReleaseReason.MOVED)
        wanted = [
            shard
            for shard, who in target.items()
            if who == me and shard not in owners and not self._busy(shard)
        ]
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            task = asyncio.ensure_future(self._claim(session, chunk, work))
            for shard in chunk:
                self._claiming[shard] = task

    def _busy(self, shard: str) -> bool:
        return shard in self._held or shard in self._claiming or shard in self._releasing

    async def _claim(self, session: AsyncSession, shards: list[str], work: ShardWork) -> None:
        """Create the owner keys of free shards the plan gives us. A refused claim waits for
        the watch to show why (someone else's key) instead of asking again at once; one with
        an unknown outcome is settled by the watch too (a key of ours we do not hold is
        adopted)."""
        tokens: dict[str, int] = {}
        try:
            tokens = await claim(self.client, self.keys, session, self.identity, shards)
        except AmbiguousResult as exc:
            log.info("claim in group=%s has an unknown outcome: %s", self.group, exc)
        except TransportError as exc:
            log.info("claim in group=%s failed: %s", self.group, exc)
            await asyncio.sleep(_RETRY[0] * random.uniform(1, 4))
            self._changed.set()
        finally:
            for shard in shards:
                self._claiming.pop(shard, None)
        if session.alive and self._session is session:
            for shard, token in tokens.items():
                self._acquire(session, shard, token, work)

    def _acquire(self, session: AsyncSession, shard: str, token: int, work: ShardWork) -> None:
        owned = new_owned(
            self.group,
            shard,
            self.keys.owner(shard),
            session.lease_id,
            token,
            lambda: session.alive,
            lambda: session.deadline,
        )
        self._held[shard] = owned
        log.info(
            "shard acquired group=%s shard=%s token=%d lease=%x identity=%s",
            self.group,
            shard,
            token,
            session.lease_id,
            self.identity,
            extra=self._fields(owned),
        )
        self._publish(
            ShardEvent(ShardEventKind.ACQUIRED, shard, token, session.lease_id, None, owned)
        )
        task = asyncio.ensure_future(self._run_work(owned, work))
        self._work[shard] = task

    async def _run_work(self, owned: OwnedShard, work: ShardWork) -> None:
        await self._call(self.on_acquired, owned)
        if not owned.is_owned():
            return
        try:
            await work(owned)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "work failed group=%s shard=%s token=%d: %r; leaving the group",
                self.group,
                owned.shard,
                owned.token,
                exc,
                extra=self._fields(owned),
            )
            if self._failure is None:
                self._failure = exc
            self._changed.set()

    def _release(self, session: AsyncSession, shard: str, reason: str) -> None:
        self._releasing[shard] = asyncio.ensure_future(
            self._drain_and_release(session, shard, reason)
        )

    async def _drain_and_release(self, session: AsyncSession, shard: str, reason: str) -> None:
        owned = self._held[shard]
        try:
            owned._state.stop()
            self._publish(
                ShardEvent(ShardEventKind.DRAINING, shard, owned.token, owned.lease_id, None, owned)
            )
            task = self._work.get(shard)
            if task is not None and not task.done():
                budget = min(self.drain, session.remaining())
                await asyncio.wait({task}, timeout=budget)
            # Ownership ends here, before the key goes: nobody else can own it before that.
            self._end(shard, reason)
            await self._stop_work(shard)
            await self._releaser.delete(session, owned)
        finally:
            self._releasing.pop(shard, None)
        await self._forget(owned, reason)

    def _end(self, shard: str, reason: str) -> OwnedShard | None:
        """End an ownership locally (idempotent): ``is_owned()`` is false from here on."""
        owned = self._held.get(shard)
        if owned is None or owned._state.reason is not None:
            return None
        owned._state.end(reason)
        released = reason in (ReleaseReason.MOVED, ReleaseReason.CLOSED)
        kind = ShardEventKind.RELEASED if released else ShardEventKind.LOST
        log.log(
            logging.INFO if released else logging.WARNING,
            "shard %s group=%s shard=%s token=%d lease=%x reason=%s",
            kind.value,
            self.group,
            shard,
            owned.token,
            owned.lease_id,
            reason,
            extra={**self._fields(owned), "reason": reason},
        )
        self._publish(ShardEvent(kind, shard, owned.token, owned.lease_id, reason, owned))
        return owned

    def _lose(self, owned: OwnedShard, reason: str) -> None:
        """This ownership (not a newer one of the same shard) ended without a drain, found
        from a sync context: end it now, stop its work and tell the callback in the
        background."""
        if self._held.get(owned.shard) is not owned or self._end(owned.shard, reason) is None:
            return
        task = asyncio.ensure_future(self._forget(owned, reason, delete=True))
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def _forget(self, owned: OwnedShard, reason: str, *, delete: bool = False) -> None:
        """After an ownership ended: stop its work, drop it, tell the callback. With
        ``delete``, also remove the owner key if it is still this one: ownership has ended
        here, so a key we judged gone but that is not must not block the shard."""
        await self._stop_work(owned.shard)
        if delete and self._session is not None and self._session.alive:
            await self._releaser.delete(self._session, owned)
        if self._held.get(owned.shard) is owned:
            del self._held[owned.shard]
        self._released[owned.shard] = max(self._released.get(owned.shard, 0), owned.token)
        self._changed.set()
        await self._call(self.on_released, owned, reason)

    async def _stop_work(self, shard: str) -> None:
        task = self._work.pop(shard, None)
        if task is None:
            return
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _lose_all(self, reason: str) -> None:
        """End every ownership at once (the session is gone: no drain, no delete)."""
        for task in list(self._releasing.values()):
            task.cancel()
        await asyncio.gather(*self._releasing.values(), return_exceptions=True)
        held = list(self._held.values())
        for owned in held:
            self._end(owned.shard, reason)
        await asyncio.gather(*(self._forget(o, o.end_reason or reason) for o in held))
        if self._forgetting:
            await asyncio.gather(*self._forgetting, return_exceptions=True)
        await asyncio.gather(*(self._stop_work(s) for s in list(self._work)))
        self._held.clear()

    # -- helpers -----------------------------------------------------------------------------

    async def _pause(self, attempt: int) -> None:
        assert self._closing is not None
        delay = min(_RETRY[1], _RETRY[0] * 2**attempt) * random.uniform(0.5, 1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    def _publish(self, event: ShardEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _fields(self, owned: OwnedShard) -> dict[str, Any]:
        return {
            "group": self.group,
            "shard": owned.shard,
            "token": owned.token,
            "lease": owned.lease_hex,
            "identity": self.identity,
        }

    async def _call(self, callback: Callback | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            outcome = callback(*args)
            if inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "shard group callback %r failed group=%s",
                callback,
                self.group,
                extra={"group": self.group},
            )


def _default_identity() -> str:
    return os.environ.get("ETCD_ELECTOR_IDENTITY") or f"{socket.gethostname()}:{os.getpid()}"
