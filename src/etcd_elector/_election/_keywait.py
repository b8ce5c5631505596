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

from collections.abc import AsyncIterator, Callable, Sequence

from .._backoff import Backoff
from .._errors import TransportError, WatchError
from .._tasks import all_results, first_result
from ..etcd._client import AsyncEtcdClient
from ..etcd._types import WatchBatch
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
    # The revision up to which each key's fate is known; None: since a failure, nothing is.
    known: list[int] | None = [revision] * len(keys)
    while True:
        try:
            watches: list[AsyncWatch] = []
            try:
                for key, _ in keys:
                    watch = client.watch(key, no_put=True)
                    watches.append(watch)
                    await watch.__aenter__()
                started = [w.created_revision for w in watches]
                if known is None or started != known:
                    # etcd moved on between the read and a watch's start (or the watch's
                    # member lags behind the read's): read what the watches cannot tell.
                    gone, known = await _read_now(client, keys)
                    if gone is not None:
                        return gone
                pairs = zip(watches, known, strict=True)
                return await first_result(*(_first_delete_after(w, seen) for w, seen in pairs))
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
            known = None


async def _read_now(
    client: AsyncEtcdClient, keys: Sequence[tuple[bytes, int]]
) -> tuple[bytes | None, list[int]]:
    """The first of ``keys`` that is gone now, or is another key of its name (created
    again), if any; and the revisions each was read at."""
    found = await all_results(*(client.get(key) for key, _ in keys))
    for (key, created), result in zip(keys, found, strict=True):
        if result.kv is None or result.kv.create_revision != created:
            return key, []
    return None, [result.revision for result in found]


async def _first_delete_after(watch: AsyncIterator[WatchBatch], revision: int) -> bytes:
    """The key of the first delete ``watch`` delivers from after ``revision`` (a watch on a
    member that lags behind the read may first replay what the read already covered)."""
    async for batch in watch:
        for event in batch.events:
            if event.kv.mod_revision > revision:
                return event.kv.key
    raise WatchError("watch ended")
