"""``MovesWatch``: what an elector knows of its election's planned moves, kept current.

One watch on ``<namespace>/<name>#moves/`` and a read where it starts (``watched_read``):
whether the election is paused (and by whom), the pending handoff request, and the declared
priorities (with a counter that moves whenever one changes). A broken watch or compaction is
re-read after a backoff; while nothing is known yet (before the first read), nothing counts
as paused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .._backoff import Backoff
from .._errors import TransportError, WatchError
from ..etcd._client import AsyncEtcdClient
from ..etcd._types import EventType, KeyValue, RangeResult
from ..etcd._watched_read import watched_read
from ._moves import HandoffRequest, MoveKeys, Pause, decode_priority

__all__ = ["MovesWatch", "PendingRequest"]


class PendingRequest:
    """A handoff request as etcd holds it (``revision``: its key's mod revision)."""

    def __init__(self, request: HandoffRequest, revision: int) -> None:
        self.request = request
        self.revision = revision


class MovesWatch:
    """Follows the moves keys of one election on ``client``; ``log`` writes the elector's log
    lines (``log(level, message, **fields)``)."""

    def __init__(self, client: AsyncEtcdClient, keys: MoveKeys, log: Callable[..., None]) -> None:
        self.client = client
        self.keys = keys
        self.pause: Pause | None = None
        self.request: PendingRequest | None = None
        self.priorities: dict[int, int] = {}  # declared priorities, by lease id
        self.priority_changes = 0
        self.ready = asyncio.Event()  # set once the first read is in
        self.available = True  # false once etcd refused us the moves keys
        self._changed = asyncio.Event()
        self._log = log

    @property
    def paused(self) -> bool:
        return self.pause is not None

    def changed(self) -> Coroutine[Any, Any, bool]:
        """Return at the next change (of anything this watch follows) after this call: the
        event is taken now, not when the coroutine first runs, so a change in between (a
        task made of it starts a loop iteration later) is not missed."""
        return self._changed.wait()

    def _announce(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_unpaused(self) -> None:
        while self.pause is not None:
            await self.changed()

    async def wait_paused(self) -> Pause:
        while self.pause is None:
            await self.changed()
        return self.pause

    def _apply(self, kv: KeyValue, deleted: bool) -> None:
        key = self.keys
        if kv.key == key.pause:
            self.pause = None if deleted else Pause.decode(kv.value)
        elif kv.key == key.request:
            request = None if deleted else HandoffRequest.decode(kv.value)
            self.request = None if request is None else PendingRequest(request, kv.mod_revision)
        elif (lease := key.lease_of_priority(kv.key)) is not None:
            priority = None if deleted else decode_priority(kv.value)
            if priority is None:
                self.priorities.pop(lease, None)
            else:
                self.priorities[lease] = priority
            self.priority_changes += 1

    def _read_at(self, revision: int) -> Coroutine[Any, Any, RangeResult]:
        return self.client.get_prefix(self.keys.prefix, revision=revision)

    async def run(self) -> None:
        """Follow the keys until cancelled."""
        backoff = Backoff()
        while True:
            try:
                async with watched_read(self.client, self.keys.prefix, self._read_at) as (
                    found,
                    watch,
                ):
                    self.pause, self.request = None, None
                    self.priorities.clear()
                    for kv in found.kvs:
                        self._apply(kv, deleted=False)
                    self.priority_changes += 1  # what we knew may be stale: look again
                    self.ready.set()
                    self._announce()
                    async for batch in watch:
                        for event in batch.events:
                            self._apply(event.kv, event.type is EventType.DELETE)
                        if batch.events:
                            backoff.reset()
                            self._announce()
            except (WatchError, TransportError) as exc:
                if not exc.retriable:
                    # Without access to the moves keys (a role on the election's prefix
                    # only), the election works as before, with no planned moves.
                    self._log(
                        logging.WARNING,
                        "cannot follow planned moves (pause, handoff requests, priorities): "
                        f"grant read access to {self.keys.prefix.decode(errors='replace')}",
                        detail=exc,
                    )
                    self.pause, self.request = None, None
                    self.available = False
                    self.ready.set()
                    self._announce()
                    return
                self._log(logging.DEBUG, "moves watch failed, re-reading", detail=exc)
                await backoff.sleep()
