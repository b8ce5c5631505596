"""``AsyncShardGroup``: one replica of a group that shares P shards among its live replicas.

How a replica works (the whole protocol; see docs/shards.md for the argument):

1. **Join.** Grant one lease (a session) and put the member key ``m/<lease hex>`` on it.
2. **Follow.** Read the group's prefix, watch it from the next revision. After every change,
   compute the plan (:mod:`._plan`) from that revision's members and owners: every replica
   computes the same plan from the same revision, with no coordinator.
3. **Claim** each shard the plan gives us that has no owner: a transaction that creates the
   owner key ``o/<shard>`` on our lease only if it does not exist (``create_revision == 0``)
   and our member key still exists. The key's create revision is the fencing token.
4. **Drain, then release** each shard the plan gives to someone else (:mod:`._holdings`):
   tell its work to stop, wait up to the drain budget (never past the session's deadline),
   cancel it, end the ownership locally, and only then delete the owner key (guarded by the
   token). The new owner's claim can only succeed after that delete.
5. **Lose everything at once** when the session is lost: the local deadline has passed, so the
   work is cancelled without a drain, and etcd deletes our keys when it expires the lease.
6. **Leave** (close): delete the member key first, so the others plan without us, then drain
   and release every shard, then revoke the lease.

Cost: one lease, one keepalive stream and one watch per replica, whatever the shard count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import Any

from .._backoff import Backoff
from .._election._names import DEFAULT_NAMESPACE
from .._election._session import AsyncSession
from .._election._timing import Timing
from .._errors import AmbiguousResult, ConfigurationError, NotLeader, TransportError
from .._identity import default_identity
from .._log import log_event
from .._reasons import EndReason
from .._stop_signals import SignalSlot
from .._tasks import cancel_all, wait_first
from ..etcd import AsyncEtcdClient, Compare, Op, RangeResult, TxnResult
from ._events import OnAcquired, OnReleased, ShardEvent, ShardEventKind, ShardWork, event_stream
from ._holdings import Holdings, Rejoin
from ._owned import OwnedShard
from ._spec import MemberInfo, shard_names, validate_weight
from ._view import FATAL_ERRORS, AsyncShardView, GroupSnapshot, ShardOwner
from ._writes import Releaser

__all__ = ["AsyncShardGroup"]

log = logging.getLogger(__name__)


class AsyncShardGroup:
    """A replica of shard group ``group``. Use ``async with AsyncShardGroup(...) as group``
    and ``await group.run(work)``: ``work(shard)`` runs for every shard this replica owns.

    :param shards: the shard count (shards ``"0"`` .. ``"P-1"``) or a list of shard names;
        every replica of the group must give the same.
    :param weight: this replica's share relative to the others (1 to 1000, default 1).
    :param identity: what this replica shows others (default: ``ETCD_ELECTOR_IDENTITY``, a
        pod name, else ``hostname:pid``).
    :param ttl: session TTL in whole seconds (default 10); ``margin``, ``keepalive_interval``
        as for :class:`AsyncSession` (they make its :class:`Timing`).
    :param drain: seconds a moving shard's work gets to stop before it is cancelled (default
        5; never past the session's deadline).
    :param on_acquired: ``on_acquired(shard)``, sync or async.
    :param on_released: ``on_released(shard, reason)``, sync or async; once per acquisition.
    :raises ConfigurationError: for a bad name, namespace, shard list, weight or timing.
    """

    def __init__(
        self,
        client: AsyncEtcdClient,
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
        on_acquired: OnAcquired | None = None,
        on_released: OnReleased | None = None,
    ) -> None:
        self.client = client
        self.view = AsyncShardView(client, group, namespace=namespace)
        self.keys = self.view.keys
        self.group = self.keys.group
        self.shards = shard_names(shards)
        self.weight = validate_weight(weight)
        self.identity = identity if identity is not None else default_identity()
        if isinstance(drain, bool) or not isinstance(drain, int | float) or not drain >= 0:
            raise ConfigurationError(
                f"drain must be a non-negative number of seconds, got {drain!r}"
            )
        self.timing = Timing(ttl, margin, keepalive_interval)  # checked once, here
        self._releaser = Releaser(client, self.group)
        self._changed = asyncio.Event()  # set: the plan needs a look
        self._events = event_stream()
        self._holdings = Holdings(
            client,
            self.keys,
            self.identity,
            self._releaser,
            self._events.publish,
            self._changed.set,
        )
        self._holdings.drain = float(drain)
        self._holdings.on_acquired = on_acquired
        self._holdings.on_released = on_released
        self._member_revision = 0
        self._snapshot: GroupSnapshot | None = None
        self._closing = asyncio.Event()  # set: leave, and return from run()
        self._run_finished = asyncio.Event()
        self._run_finished.set()
        self._stop_signals = SignalSlot()
        self._running = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"<AsyncShardGroup {self.group!r} owned={len(self.owned())}/{len(self.shards)}>"

    # -- local state (no I/O) --------------------------------------------------------------

    @property
    def session(self) -> AsyncSession | None:
        """The session (lease) of the current membership, if joined."""
        return self._holdings.session

    def owned(self) -> dict[str, OwnedShard]:
        """The shards this replica owns right now; empty once the session's deadline passed."""
        return {s: o for s, o in self._holdings.held.items() if o.is_owned()}

    def is_owner(self, shard: str) -> bool:
        """Whether this replica owns ``shard`` now: local, no I/O."""
        held = self._holdings.held.get(shard)
        return held is not None and held.is_owned()

    def debug_state(self) -> dict[str, list[str]]:
        """For diagnosis: the shards in each internal state (held, claiming, releasing)."""
        return {
            "held": sorted(self._holdings.held),
            "claiming": sorted(self._holdings.claiming),
            "releasing": sorted(self._holdings.releasing),
            "working": self._holdings.working(),
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

    def events(self) -> AsyncGenerator[ShardEvent, None]:
        """Every event from now on (from the first ``anext``), ending after ``STOPPED``."""
        return self._events.follow()

    # -- fenced writes -----------------------------------------------------------------------

    async def txn(
        self,
        shard: str | OwnedShard,
        compares: Sequence[Compare] = (),
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """A transaction that commits only while this replica owns ``shard`` (as
        ``client.txn(compares, success, failure)``).

        Pass the :class:`OwnedShard` your work was given: the write is then fenced by *that*
        ownership's token, so work left over from an earlier ownership of the same shard
        cannot commit under a newer one. (A shard name means the current ownership.) The
        owner key's create revision is added to ``compares``. If only the user's compares
        fail, ``succeeded`` is false; if the ownership is gone, it ends locally and
        ``LeadershipLost`` is raised.

        :raises NotLeader: if that ownership does not hold locally.
        :raises LeadershipLost: if etcd shows the ownership is over.
        :raises AmbiguousResult: as any transaction: re-read, never retry blindly.
        """
        name = shard.shard if isinstance(shard, OwnedShard) else shard
        held = self._holdings.held.get(name)
        if isinstance(shard, OwnedShard) and held is not shard:
            held = None
        if held is None or not held.is_owned():
            raise NotLeader(
                f"this replica does not own shard {name!r} of group {self.group!r}"
                + (f" with token {shard.token}" if isinstance(shard, OwnedShard) else "")
            )
        key = held.key.encode()
        guard = Compare.create_revision(key) == held.token
        result = await self.client.txn([guard, *compares], list(success), [*failure, Op.get(key)])
        if result.succeeded:
            return result
        own: RangeResult = result.responses[-1]
        if not own.kvs or own.kvs[0].create_revision != held.token:
            self._holdings.lose(held, EndReason.KEY_DELETED)
            held.check()
        return TxnResult(succeeded=False, revision=result.revision, responses=result.responses[:-1])

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> AsyncShardGroup:
        """Nothing to do before :meth:`run` (``async with`` calls it); no I/O."""
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
        self._closing.set()
        self._changed.set()
        await self._run_finished.wait()
        self._stop_signals.restore()
        if not self._stopped:
            self._stopped = True
            self._events.publish(ShardEvent(ShardEventKind.STOPPED))

    def stop_on_signals(self) -> None:
        """Leave cleanly on SIGTERM (docker stop, systemd, Kubernetes) and SIGINT (Ctrl-C)::

            async with AsyncShardGroup(client, "orders", shards=64) as group:
                group.stop_on_signals()
                await group.run(consume)  # returns once a signal came and every shard is back

        The member key goes first, every shard's work is drained and its shard released, the
        lease is revoked, and ``run()`` returns: no ``KeyboardInterrupt``, no traceback. A
        signal that comes again while leaving is ignored, so the shards are still handed
        back. Once ``run()`` has returned after a stop (or at ``close()``), the previous
        handlers are back. Call it from the main thread, inside the running event loop.

        :raises RuntimeError: outside the main thread or outside a running event loop.
        """
        self._stop_signals.install(asyncio.get_running_loop(), self.on_stop_signal)

    @property
    def stopping(self) -> bool:
        """Whether the group was told to leave (``close()``, a stop signal)."""
        return self._closing.is_set()

    def on_stop_signal(self, signum: int) -> None:
        """What a stop signal does (either twin's :meth:`stop_on_signals` handler calls it, on
        the event loop): leave the group, then ``run()`` returns. Again while leaving,
        nothing."""
        name = signal.Signals(signum).name
        if self._closing.is_set():
            log_event(log, logging.INFO, f"{name} again: already leaving", group=self.group)
            return
        log_event(log, logging.INFO, f"{name}: leaving the group", group=self.group)
        self._closing.set()
        self._changed.set()

    async def run(self, work: ShardWork) -> None:
        """Join the group and run ``work(shard)`` for every shard this replica owns, until
        closed (or cancelled). A work that returns leaves its shard owned and idle until it
        moves; a shard moving away has its work drained, then cancelled.

        :raises Exception: whatever a work raised, after draining and releasing every shard.
        :raises ConfigurationError: if live members of the group declare other shards.
        :raises PermissionDenied: if etcd refuses access to the group's keys.
        """
        if self._running:
            raise RuntimeError("run() is already active on this shard group")
        self._running = True
        self._run_finished.clear()
        self._holdings.failure = None
        backoff = Backoff(0.05, 2.0)
        try:
            while not self._closing.is_set():
                try:
                    session = await self._join()
                except FATAL_ERRORS:
                    raise
                except TransportError as exc:
                    log_event(
                        log, logging.WARNING, "cannot join, retrying", detail=exc, group=self.group
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), backoff.next())
                    continue
                if session is None:
                    break
                backoff.reset()
                await self._serve(session, work)
                if self._holdings.failure is not None:
                    raise self._holdings.failure
        finally:
            self._running = False
            session, self._holdings.session = self._holdings.session, None
            if session is not None:
                await session.close()
            self._run_finished.set()
            if self._closing.is_set():
                self._stop_signals.restore()  # we left: a further signal is not ours

    # -- membership --------------------------------------------------------------------------

    async def _join(self) -> AsyncSession | None:
        """A new session with our member key on it; ``None`` if closing first."""
        snapshot = await self.view.snapshot()
        strangers = [m for m in snapshot.members.values() if m.shards != self.shards]
        if strangers:
            raise ConfigurationError(
                f"shard group {self.group!r} has live members with another shard list (e.g. "
                f"{strangers[0].identity!r}, {len(strangers[0].shards)} shards, this replica "
                f"{len(self.shards)}): stop them first or use another group name"
            )
        session = AsyncSession(self.client, self.timing)
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
        self._holdings.session = session
        self._member_revision = put.revision
        log_event(
            log,
            logging.INFO,
            "joined shard group",
            group=self.group,
            lease=session.lease_hex,
            identity=self.identity,
            weight=self.weight,
            shards=len(self.shards),
        )
        self._events.publish(ShardEvent(ShardEventKind.JOINED, lease=session.lease_id))
        return session

    async def _serve(self, session: AsyncSession, work: ShardWork) -> None:
        """Follow the group and act on the plan until the session is lost or we leave."""
        follower = asyncio.ensure_future(self._follow())
        lost = asyncio.ensure_future(session.wait_lost())
        reason = EndReason.CLOSED
        try:
            while True:
                self._changed.clear()
                if lost.done() or not session.alive:
                    break
                if self._closing.is_set() or self._holdings.failure is not None:
                    break
                if follower.done():
                    follower.result()  # a fatal error: raise it
                try:
                    self._reconcile(session, work)
                except Rejoin:
                    log_event(
                        log,
                        logging.WARNING,
                        "member key vanished: leaving and joining again",
                        group=self.group,
                        lease=session.lease_hex,
                    )
                    break
                await self._until_changed(session, lost, follower)
            if lost.done() or not session.alive:
                reason = session.loss_reason or EndReason.DEADLINE
                await self._holdings.lose_all(reason)
            else:
                await self._leave(session)
        finally:
            await cancel_all([follower, lost, *self._holdings.claiming.values()])
            self._holdings.claiming.clear()
            await self._holdings.lose_all(reason)  # nothing left if we left cleanly
            await self._releaser.close()
            self._snapshot = None
            self._holdings.session = None
            left = ShardEvent(ShardEventKind.LEFT, lease=session.lease_id, reason=reason)
            self._events.publish(left)
            await session.close()

    async def _until_changed(self, session: AsyncSession, *tasks: asyncio.Future[Any]) -> None:
        """Until the group changed, one of ``tasks`` ended, or the session's deadline: the
        deadline wins even if no timer or event fires before it."""
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, session.remaining())):
                    await wait_first(changed, *tasks)
        finally:
            changed.cancel()

    async def _follow(self) -> None:
        async for snapshot in self.view.follow():
            self._snapshot = snapshot
            self._changed.set()

    async def _leave(self, session: AsyncSession) -> None:
        """Graceful: stop being a member, then drain and release every shard."""
        with contextlib.suppress(TransportError):
            await self.client.delete(self.keys.member(session.lease_id))
        holdings = self._holdings
        for shard in list(holdings.held):
            if shard not in holdings.releasing:
                holdings.release(session, shard, EndReason.CLOSED)
        if holdings.releasing:
            await asyncio.wait(set(holdings.releasing.values()))

    def _reconcile(self, session: AsyncSession, work: ShardWork) -> None:
        snapshot = self._snapshot
        if snapshot is not None and snapshot.revision >= self._member_revision:
            self._holdings.reconcile(snapshot, self.shards, session, work)
