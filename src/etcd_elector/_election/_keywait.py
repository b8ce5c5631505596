"""Waiting until keys are deleted: what a campaign does with its predecessor's key, and what a
term's guard does with its own (etcd's ``concurrency/key.go`` keeps the same in one place).

Reads and watches ride out compaction, broken streams and outages: the caller's own deadline
(a session's, a term's) is what bounds the wait.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._backoff import Backoff
from .._errors import TransportError, WatchError
from .._tasks import first_result
from ..etcd._client import AsyncEtcdClient
from ..etcd._watch import AsyncWatch

__all__ = ["first_deleted"]


async def first_deleted(
    client: AsyncEtcdClient,
    keys: Sequence[bytes],
    revision: int,
    *,
    on_retry: Callable[[Exception], None],
) -> bytes:
    """Wait until one of ``keys`` (all seen existing at ``revision``) is deleted; return it.

    A watch that fails in a way that retrying can cure (``on_retry(error)`` is told) is
    replaced after a backoff, from a fresh read.

    :raises EtcdElectorError: an error retrying cannot cure (``retriable`` is false).
    """
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
                for key in keys:
                    found = await client.get(key)
                    if found.kv is None:
                        return key
                    first_read = first_read or found.revision
                revision = first_read
            watches: list[AsyncWatch] = []
            try:
                for key in keys:
                    watch = client.watch(key, start_revision=revision + 1, no_put=True)
                    watches.append(watch)
                    await watch.__aenter__()
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
            reread = True


async def _first_event_key(watch: AsyncWatch) -> bytes:
    """The key of the first event ``watch`` delivers."""
    async for batch in watch:
        if batch.events:
            return batch.events[0].kv.key
    raise WatchError("watch ended")
