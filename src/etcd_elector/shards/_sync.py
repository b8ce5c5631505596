"""Blocking twins of the shard group and its view, for threaded code.

They carry calls into the client's event loop thread (``Client.portal``), where the async core
runs; nothing here decides anything. ``ShardGroup.run(work)`` calls ``work(shard)`` in a thread
of its own for each owned shard: a thread cannot be cancelled, so work watches
``shard.stopping`` (drain) and ``shard.is_owned()``, and a shard is released only after its
work returned.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

from etcd_elector import Client, Compare, Op, TxnResult
from etcd_elector._portal import SyncIterator

from ._group import AsyncShardGroup, Callback, ShardEvent
from ._owned import OwnedShard
from ._spec import DEFAULT_NAMESPACE
from ._view import AsyncShardView, GroupSnapshot, ShardOwner

__all__ = ["ShardGroup", "ShardView"]


class ShardView:
    """Blocking twin of :class:`AsyncShardView`."""

    def __init__(self, client: Client, group: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._portal = client.portal
        self.aio = AsyncShardView(client.aio, group, namespace=namespace)

    def snapshot(self, *, timeout: float | None = None) -> GroupSnapshot:
        return self._portal.call(self.aio.snapshot(), timeout, what="reading the group")

    def owner(self, shard: str, *, timeout: float | None = None) -> ShardOwner | None:
        return self._portal.call(self.aio.owner(shard), timeout, what="reading the owner")

    def follow(self, timeout: float | None = None) -> SyncIterator[GroupSnapshot]:
        return SyncIterator(self._portal, self.aio.follow(), timeout)


class ShardGroup:
    """Blocking twin of :class:`AsyncShardGroup`; same arguments, with a :class:`Client`.

    ``run(work)`` blocks until ``close()`` (from another thread) and calls ``work(shard)`` in a
    new thread for each shard acquired. Callbacks run on the client's loop thread: keep them
    short.
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
        on_acquired: Callback | None = None,
        on_released: Callback | None = None,
    ) -> None:
        self.client = client
        self._portal = client.portal
        self.aio = AsyncShardGroup(
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

    def __enter__(self) -> ShardGroup:
        self._portal.call(self.aio.start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drain and release every shard, leave, revoke the lease. Idempotent; any thread."""
        if not self._portal.closed:
            self._portal.call(self.aio.close())

    def owned(self) -> dict[str, OwnedShard]:
        """Local, no I/O: the shards owned right now."""
        return self.aio.owned()

    def is_owner(self, shard: str) -> bool:
        return self.aio.is_owner(shard)

    def owner(self, shard: str, *, timeout: float | None = None) -> ShardOwner | None:
        return self._portal.call(self.aio.owner(shard), timeout, what="reading the owner")

    def read(self, *, timeout: float | None = None) -> GroupSnapshot:
        return self._portal.call(self.aio.read(), timeout, what="reading the group")

    def events(self, timeout: float | None = None) -> SyncIterator[ShardEvent]:
        return SyncIterator(self._portal, self.aio.events(), timeout)

    def txn(
        self,
        shard: str,
        compares: Sequence[Compare] = (),
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResult:
        """See :meth:`AsyncShardGroup.txn`."""
        return self._portal.call(
            self.aio.txn(shard, compares, on_success, on_failure), timeout, what="the txn"
        )

    def run(self, work: Callable[[OwnedShard], Any]) -> None:
        """Join and call ``work(shard)`` in its own thread for each owned shard, until closed.

        :raises Exception: whatever a work raised, after every shard was released.
        """

        async def in_a_thread(shard: OwnedShard) -> Any:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[Any] = loop.create_future()

            def target() -> None:
                try:
                    result = work(shard)
                except BaseException as exc:
                    loop.call_soon_threadsafe(_settle, done, None, exc)
                else:
                    loop.call_soon_threadsafe(_settle, done, result, None)

            name = f"shard-{self.aio.group}-{shard.shard}"
            threading.Thread(target=target, name=name, daemon=True).start()
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                # The ownership ended (``lost`` is set): wait until the thread's work returns.
                if not done.done():
                    await asyncio.wait([done])
                raise

        self._portal.call(self.aio.run(in_a_thread))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
