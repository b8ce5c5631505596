"""Writes to owner keys, batched: claiming or releasing many shards costs a few transactions.

A claim creates owner keys only if none of them exists and only while the claimant's member
key exists; a release deletes an owner key only if it is still the one of that ownership
(its create revision is the token). A batch is all or nothing; when it fails because one of
its shards was taken (or already gone), each shard is tried alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .._backoff import Backoff
from .._election._session import AsyncSession
from .._errors import TransportError
from .._log import log_event
from .._tasks import cancel_and_wait
from ..etcd import AsyncEtcdClient, Compare, Op
from ._owned import OwnedShard
from ._spec import GroupKeys

__all__ = ["BATCH", "Releaser", "claim"]

log = logging.getLogger(__name__)

# Shards per transaction: one compare and one operation each, under etcd's default limit of
# 128 operations per transaction (--max-txn-ops).
BATCH = 64


async def claim(
    client: AsyncEtcdClient,
    keys: GroupKeys,
    session: AsyncSession,
    identity: str,
    shards: Sequence[str],
) -> dict[str, int]:
    """Create the owner keys of ``shards`` on our lease; returns shard -> token for those
    created (a batch's keys share its revision).

    :raises AmbiguousResult: if the outcome is unknown (the caller's view will show it).
    :raises TransportError: if etcd could not be asked.
    """
    member = keys.member(session.lease_id)
    owner_keys = [keys.owner(shard) for shard in shards]
    result = await client.txn(
        [Compare.version(member) > 0, *(Compare.create_revision(k) == 0 for k in owner_keys)],
        [Op.put(k, identity, lease=session.lease_id) for k in owner_keys],
    )
    if result.succeeded:
        return dict.fromkeys(shards, result.revision)
    if len(shards) == 1:
        return {}
    claimed: dict[str, int] = {}
    alone = await asyncio.gather(
        *(claim(client, keys, session, identity, [shard]) for shard in shards),
        return_exceptions=True,
    )
    for outcome in alone:
        if isinstance(outcome, dict):
            claimed.update(outcome)
        elif not isinstance(outcome, TransportError):
            raise outcome
    return claimed


class Releaser:
    """Deletes owner keys, each only if it is still that ownership's, coalescing the deletes
    asked for at the same moment into batches. Retried while the session lives: nobody else
    can take a shard before its key goes (and when the session dies, the lease takes it)."""

    def __init__(self, client: AsyncEtcdClient, group: str) -> None:
        self._client = client
        self._group = group
        self._queue: list[tuple[AsyncSession, OwnedShard, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def delete(self, session: AsyncSession, owned: OwnedShard) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((session, owned, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        await asyncio.shield(done)

    async def close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            await cancel_and_wait(flusher)
        for _, _, done in self._queue:
            if not done.done():
                done.set_result(None)
        self._queue.clear()

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let every release of this moment join the batch
        while self._queue:
            session = self._queue[0][0]
            batch = [entry for entry in self._queue if entry[0] is session][:BATCH]
            for entry in batch:
                self._queue.remove(entry)
            try:
                await self._delete(session, [owned for _, owned, _ in batch])
            finally:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _delete(self, session: AsyncSession, batch: list[OwnedShard]) -> None:
        backoff = Backoff(0.05, 2.0)
        while session.alive:
            try:
                result = await self._client.txn(
                    [Compare.create_revision(o.key) == o.token for o in batch],
                    [Op.delete(o.key) for o in batch],
                )
                if not result.succeeded and len(batch) > 1:
                    await asyncio.gather(*(self._delete(session, [o]) for o in batch))
                return
            except TransportError as exc:
                log_event(
                    log,
                    logging.WARNING,
                    "release failed, retrying",
                    detail=exc,
                    group=self._group,
                    shards=len(batch),
                )
                await backoff.sleep()
