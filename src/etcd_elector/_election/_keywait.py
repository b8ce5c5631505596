"""Waiting until keys are deleted: what a campaign does with its predecessor's key, and what a
term's guard does with its own (etcd's ``concurrency/key.go`` keeps the same in one place).

The watches start at etcd's current revision, never at the revision the keys were read at:
etcd serves a watch that starts in the past from a catch-up loop that runs every 100 ms, so
a predecessor's delete that came while its waiter's watch was catching up reached the waiter
up to 100 ms late (measured: p50 95 ms, against 1 ms for a watch from now). What happened
between the read and the watches' start is read instead: a key that is gone, or was created
again (a handoff's requeued candidate comes back under the same name), counts as deleted.

Reads and watches ride out compaction, broken streams and outages: the caller's own deadline
(a session's, a term's) is what bounds the wait.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._backoff import Backoff
from .._errors import TransportError, WatchError
from .._tasks import all_results, first_result
from ..etcd._client import AsyncEtcdClient
from ..etcd._watch import AsyncWatch

__all__ = ["first_deleted"]


async def first_deleted(
    client: AsyncEtcdClient,
    keys: Sequence[tuple[bytes, int]],
    revision: int,
    *,
    on_retry: Callable[[Exception], None],
) -> bytes:
    """Wait until one of ``keys`` (pairs of key and create revision, all seen existing at
    ``revision``) is deleted; return it.

    A watch that fails in a way that retrying can cure (``on_retry(error)`` is told) is
    replaced after a backoff.

    :raises EtcdElectorError: an error retrying cannot cure (``retriable`` is false).
    """
    backoff = Backoff()
    seen_at: int | None = revision  # None: since a failure, nothing is known
    while True:
        try:
            watches: list[AsyncWatch] = []
            try:
                for key, _ in keys:
                    watch = client.watch(key, no_put=True)
                    watches.append(watch)
                    await watch.__aenter__()
                if seen_at is None or any(w.created_revision != seen_at for w in watches):
                    # etcd moved on between the read and a watch's start: read what it missed.
                    gone = await _first_gone(client, keys)
                    if gone is not None:
                        return gone
                return await first_result(*(_first_event_key(watch) for watch in watches))
            finally:
                # Not awaited: the answer is in, and the cancellations ride the stream's writer
                # (a successor announces itself without waiting for them).
                for watch in watches:
                    watch.cancel_soon()
        except (WatchError, TransportError) as exc:
            if not exc.retriable:
                raise
            on_retry(exc)
            await backoff.sleep()
            seen_at = None


async def _first_gone(client: AsyncEtcdClient, keys: Sequence[tuple[bytes, int]]) -> bytes | None:
    """The first of ``keys`` that is gone now, or another key of its name (created again)."""
    found = await all_results(*(client.get(key) for key, _ in keys))
    for (key, created), result in zip(keys, found, strict=True):
        if result.kv is None or result.kv.create_revision != created:
            return key
    return None


async def _first_event_key(watch: AsyncWatch) -> bytes:
    """The key of the first event ``watch`` delivers."""
    async for batch in watch:
        if batch.events:
            return batch.events[0].kv.key
    raise WatchError("watch ended")
