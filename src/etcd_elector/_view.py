"""``ElectionView``: read-only access to an election's candidates: leader, list, observe.

Needs no session, so observers, the CLI's ``leader``/``status``/``observe`` and the elector's
leader-change callbacks all share this one implementation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._backoff import Backoff
from ._errors import TransportError, WatchError
from ._names import (
    DEFAULT_NAMESPACE,
    election_prefix,
    is_candidate_key,
    validate_name,
    validate_namespace,
)
from ._types import Event, EventType, KeyValue

if TYPE_CHECKING:
    from ._client import AsyncClient

__all__ = ["ElectionView", "LeaderInfo"]

log = logging.getLogger(__name__)

_PAGE = 8


@dataclass(frozen=True)
class LeaderInfo:
    """A candidate (or the leader) as etcd sees it. ``token`` is its key's create revision."""

    key: str
    value: bytes
    token: int
    lease: int
    mod_revision: int = field(compare=False, default=0)

    @property
    def value_text(self) -> str:
        return self.value.decode(errors="replace")

    @property
    def lease_hex(self) -> str:
        return f"{self.lease:x}"

    @classmethod
    def from_kv(cls, kv: KeyValue) -> LeaderInfo:
        return cls(
            key=kv.key.decode(errors="replace"),
            value=kv.value,
            token=kv.create_revision,
            lease=kv.lease,
            mod_revision=kv.mod_revision,
        )


class ElectionView:
    """Reads of one election: ``client.election_view("scheduler")``.

    :raises ConfigurationError: for a malformed name or namespace.
    """

    def __init__(
        self, client: AsyncClient, name: str, *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        self.client = client
        self.name = validate_name(name)
        self.namespace = validate_namespace(namespace)
        self.prefix = election_prefix(self.namespace, self.name)

    async def leader(self) -> LeaderInfo | None:
        """The current leader, read linearizably, or ``None`` if nobody leads."""
        first = await self.nearest(descending=False)
        return LeaderInfo.from_kv(first[0]) if first is not None else None

    async def candidates(self) -> tuple[LeaderInfo, ...]:
        """Every candidate in election order (the leader first)."""
        result = await self.client.get_prefix(self.prefix, sort_by_create_revision=True)
        return tuple(
            LeaderInfo.from_kv(kv) for kv in result.kvs if is_candidate_key(self.prefix, kv.key)
        )

    async def nearest(
        self, *, descending: bool, max_create_revision: int = 0, revision: int = 0
    ) -> tuple[KeyValue, int] | None:
        """The first candidate by create revision (lowest, or highest at or below a bound),
        with the revision of the read. Keys under the prefix that are not candidates are
        skipped."""
        bound = max_create_revision
        while True:
            result = await self.client.get_prefix(
                self.prefix,
                sort_by_create_revision=True,
                descending=descending,
                limit=_PAGE,
                max_create_revision=bound,
                revision=revision,
            )
            for kv in result.kvs:
                if is_candidate_key(self.prefix, kv.key):
                    return kv, result.revision
            if not result.more or not result.kvs:
                return None
            if descending:
                bound = result.kvs[-1].create_revision - 1
            else:  # rare: a page of foreign keys first; read the rest in one go
                everything = await self.client.get_prefix(
                    self.prefix, sort_by_create_revision=True, revision=result.revision
                )
                for kv in everything.kvs:
                    if is_candidate_key(self.prefix, kv.key):
                        return kv, everything.revision
                return None

    async def observe(self) -> AsyncIterator[LeaderInfo | None]:
        """Yield the current leader (or ``None``) at once, then every change.

        Reads first, then watches from the read's revision + 1, so nothing is missed. Survives
        compaction, broken streams and endpoint changes by reading and watching again; it never
        ends silently. Raises only for errors retrying cannot cure (``retriable`` is false:
        permissions, credentials).
        """
        last: object = _UNSET
        backoff = Backoff(high=2.0)
        while True:
            try:
                first = await self.nearest(descending=False)
                if first is not None:
                    revision = first[1]
                else:
                    # "Nobody" was read without a revision to watch from. Take one from a
                    # second read and look again at exactly that revision: a candidate created
                    # between the two reads is then seen here instead of silently skipped.
                    revision = (await self.client.get(self.prefix)).revision
                    first = await self.nearest(descending=False, revision=revision)
                current = LeaderInfo.from_kv(first[0]) if first else None
                if current != last:
                    last = current
                    yield current
                async with self.client.watch(
                    self.prefix, prefix=True, start_revision=revision + 1
                ) as watch:
                    backoff.reset()
                    async for batch in watch:
                        for event in batch.events:
                            if not self._may_change_leader(last, event):
                                continue
                            found = await self.nearest(
                                descending=False, revision=event.kv.mod_revision
                            )
                            leader = LeaderInfo.from_kv(found[0]) if found else None
                            if leader != last:
                                last = leader
                                yield leader
            except (WatchError, TransportError) as exc:
                if not exc.retriable:
                    raise
                log.info("observe election=%s: %s; reading again", self.name, exc)
                await backoff.sleep()

    def _may_change_leader(self, last: object, event: Event) -> bool:
        if not is_candidate_key(self.prefix, event.kv.key):
            return False
        if not isinstance(last, LeaderInfo):
            return event.type is EventType.PUT
        return event.kv.key.decode(errors="replace") == last.key


_UNSET = object()
