"""A read of a key range that a watch carries on from, with no gap and no catch-up delay.

The watch comes first, from etcd's current revision; the read is then made at the revision
the watch starts after (its created answer's header). Reading first and watching from the
read's revision + 1 loses nothing either, but whenever etcd moved on in between, etcd serves
that watch from its catch-up loop, which runs once every 100 ms: a change in the watch's
first 100 ms then arrived up to 100 ms late.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from .._keys import KeyLike

if TYPE_CHECKING:
    from ._client import AsyncEtcdClient
    from ._watch import AsyncWatch

__all__ = ["watched_read"]

T = TypeVar("T")


@asynccontextmanager
async def watched_read(
    client: AsyncEtcdClient, prefix: KeyLike, read: Callable[[int], Awaitable[T]]
) -> AsyncIterator[tuple[T, AsyncWatch]]:
    """Watch every key under ``prefix``, then ``read(revision)``: the caller reads what it
    needs *at* ``revision`` (a linearizable read at a past revision; it is also the watch's
    ``created_revision``), and the watch delivers every change after it. Yields the read's
    result and the watch."""
    async with client.watch(prefix, prefix=True) as watch:
        revision = watch.created_revision
        assert revision is not None  # set from the created answer before entering returns
        yield await read(revision), watch
