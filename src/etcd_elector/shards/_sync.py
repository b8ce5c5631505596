"""Blocking twins of the shard group and its view, for threaded code.

Each method is its async original carried into the client's loop thread (:func:`blocking`),
where the async core runs; nothing here decides anything. ``ShardGroup.run(work)`` calls
``work(shard)`` in a thread of its own for each owned shard: a thread cannot be cancelled, so
work watches ``shard.stopping`` (drain) and ``shard.is_owned()``, and a shard is released only
after its work returned.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._election._names import DEFAULT_NAMESPACE
from .._portal import Portal, SyncIterator
from .._stop_signals import SignalSlot
from .._sync._bridge import Twin, blocking
from ._events import OnAcquired, OnReleased, ShardEvent
from ._group import AsyncShardGroup
from ._owned import OwnedShard
from ._view import AsyncShardView, GroupSnapshot

if TYPE_CHECKING:
    from .._sync._client import Client

__all__ = ["ShardGroup", "ShardView"]


class ShardView:
    """Blocking twin of :class:`AsyncShardView`: ``ShardView(client, "orders")``.

    :raises ConfigurationError: for a malformed group name or namespace.
    """

    def __init__(self, client: Client, group: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.client = client
        self.aio = AsyncShardView(client.aio, group, namespace=namespace)

    @property
    def portal(self) -> Portal:
        return self.client.portal

    snapshot = blocking(AsyncShardView.snapshot)
    owner = blocking(AsyncShardView.owner)

    def follow(self, timeout: float | None = None) -> SyncIterator[GroupSnapshot]:
        """The group now, then after every change, as a plain iterator; ``timeout`` per item."""
        return SyncIterator(self.portal, self.aio.follow(), timeout)


class ShardGroup(Twin[AsyncShardGroup]):
    """Blocking twin of :class:`AsyncShardGroup`; the same arguments, with a :class:`Client`.

    ``with group:`` then ``group.run(work)`` blocks until ``close()`` (from another thread)
    and calls ``work(shard)`` in a new thread for each shard acquired. Callbacks run on the
    client's loop thread: keep them short.

    :raises ConfigurationError: for a bad name, namespace, shard list, weight or timing.
    """

    def __init__(
        self,
        client: Client,
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
        aio = AsyncShardGroup(
            client.aio,
            group,
            shards=shards,
            weight=weight,
            identity=identity,
            namespace=namespace,
            ttl=ttl,
            margin=margin,
            keepalive_interval=keepalive_interval,
            drain=drain,
            on_acquired=on_acquired,
            on_released=on_released,
        )
        super().__init__(client, aio)
        self.client = client
        self._stop_signals = SignalSlot()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drain and release every shard, leave, revoke the lease. Idempotent; any thread."""
        if not self.client.closed:
            self.portal.call(self.aio.close)
        self._stop_signals.restore()

    def stop_on_signals(self) -> None:
        """Leave cleanly on SIGTERM (docker stop, systemd, Kubernetes) and SIGINT (Ctrl-C)::

            with ShardGroup(client, "orders", shards=64) as group:
                group.stop_on_signals()
                group.run(consume)  # returns once a signal came and every shard is back

        Every shard's ``stopping`` is set, each work is waited for (up to the drain budget)
        and its shard released, the lease revoked, and ``run()`` returns: no
        ``KeyboardInterrupt``, no traceback. A signal that comes again while leaving is
        ignored. Once ``run()`` has returned after a stop (or at ``close()``), the previous
        handlers are back. Call it from the main thread; ``run()`` may then block there.

        :raises RuntimeError: outside the main thread.
        """
        self._stop_signals.install(self.portal.loop, self.aio.on_stop_signal)

    def owned(self) -> dict[str, OwnedShard]:
        """Local, no I/O: the shards owned right now."""
        return self.aio.owned()

    def is_owner(self, shard: str) -> bool:
        """Local, no I/O: whether this replica owns ``shard`` now."""
        return self.aio.is_owner(shard)

    owner = blocking(AsyncShardGroup.owner)
    read = blocking(AsyncShardGroup.read)
    txn = blocking(AsyncShardGroup.txn)

    def events(self, timeout: float | None = None) -> SyncIterator[ShardEvent]:
        """Every event from now on as a plain iterator, ending after ``STOPPED``; ``timeout``
        per item."""
        return SyncIterator(self.portal, self.aio.events(), timeout)

    def run(self, work: Callable[[OwnedShard], object]) -> None:
        """Join and call ``work(shard)`` in its own thread for each owned shard, until closed.

        :raises Exception: whatever a work raised, after every shard was released.
        """
        group = self.aio.group

        async def in_a_thread(shard: OwnedShard) -> object:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[object] = loop.create_future()

            def target() -> None:
                try:
                    result = work(shard)
                except BaseException as exc:
                    loop.call_soon_threadsafe(_settle, done, None, exc)
                else:
                    loop.call_soon_threadsafe(_settle, done, result, None)

            name = f"shard-{group}-{shard.shard}"
            threading.Thread(target=target, name=name, daemon=True).start()
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                # The ownership ended (``lost`` is set): wait until the thread's work returns.
                if not done.done():
                    await asyncio.wait([done])
                raise

        self.portal.call(self.aio.run, in_a_thread)
        if self.aio.stopping:
            self._stop_signals.restore()  # we left: a further signal is not ours


def _settle(future: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
