"""A shard group as etcd shows it: members, owners, the plan, and its changes.

One watch on the group's prefix from etcd's current revision, and one read at the revision it
starts after (``watched_read``), so every replica (and ``etcd-elector shards observe``) sees
every change in revision order, whatever the number of shards. A broken or compacted watch is
followed by a fresh read; the follower never ends silently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field

from .._backoff import Backoff
from .._election._names import DEFAULT_NAMESPACE
from .._errors import (
    AuthenticationFailed,
    ConfigurationError,
    PermissionDenied,
    TransportError,
    WatchError,
)
from .._log import log_event
from ..etcd import AsyncEtcdClient, Event, EventType, KeyValue
from ..etcd._watched_read import watched_read
from ._plan import moves, plan
from ._spec import GroupKeys, MemberInfo

__all__ = ["FATAL_ERRORS", "AsyncShardView", "GroupSnapshot", "ShardOwner"]

log = logging.getLogger(__name__)

# Errors that retrying cannot cure; everything else a follower rides out.
FATAL_ERRORS = (PermissionDenied, AuthenticationFailed, ConfigurationError)


@dataclass(frozen=True)
class ShardOwner:
    """Who owns a shard, as etcd says. ``token`` is the owner key's create revision: it
    strictly increases across the owners of one shard."""

    shard: str
    key: str
    identity: str
    lease: int
    token: int

    @property
    def lease_hex(self) -> str:
        return f"{self.lease:x}"

    @classmethod
    def from_kv(cls, shard: str, kv: KeyValue) -> ShardOwner:
        return cls(
            shard=shard,
            key=kv.key.decode(errors="replace"),
            identity=kv.value.decode(errors="replace")[:200],
            lease=kv.lease,
            token=kv.create_revision,
        )


@dataclass(frozen=True)
class GroupSnapshot:
    """The group as of etcd revision ``revision``: every change up to it is included."""

    revision: int
    members: Mapping[int, MemberInfo] = field(default_factory=dict)
    owners: Mapping[str, ShardOwner] = field(default_factory=dict)

    def shards(self) -> tuple[str, ...]:
        """The group's shards as its oldest member declares them (empty with no members)."""
        if not self.members:
            return ()
        return min(self.members.values(), key=lambda m: m.token).shards

    def peers(self, shards: Sequence[str]) -> dict[int, int]:
        """Members that declare ``shards`` (others are ignored): lease -> weight."""
        return {m.lease: m.weight for m in self.members.values() if m.shards == tuple(shards)}

    def target(self, shards: Sequence[str] | None = None) -> dict[str, int | None]:
        """Every shard's target owner (a lease) by the plan."""
        shards = self.shards() if shards is None else shards
        owners = {s: o.lease for s, o in self.owners.items()}
        return plan(shards, self.peers(shards), owners)

    def pending(self, shards: Sequence[str] | None = None) -> dict[str, int | None]:
        """Shards whose owner is not yet their target: shard -> target lease."""
        return moves(self.target(shards), {s: o.lease for s, o in self.owners.items()})

    def owned_by(self, lease: int) -> list[str]:
        return [s for s, o in self.owners.items() if o.lease == lease]


class AsyncShardView:
    """Read-only access to a shard group; needs no session.

    :raises ConfigurationError: for a malformed group name or namespace.
    """

    def __init__(
        self, client: AsyncEtcdClient, group: str, *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        self.client = client
        self.keys = GroupKeys(namespace, group)
        self.group = self.keys.group

    async def snapshot(self) -> GroupSnapshot:
        """The group now (a linearizable read)."""
        return await self._snapshot_at(0)

    async def _snapshot_at(self, revision: int) -> GroupSnapshot:
        """The group as of ``revision`` (0: now)."""
        result = await self.client.get_prefix(self.keys.base, revision=revision)
        members: dict[int, MemberInfo] = {}
        owners: dict[str, ShardOwner] = {}
        for kv in result.kvs:
            self._apply_put(kv, members, owners)
        # The header's revision is etcd's now, past ``revision`` if etcd moved on.
        return GroupSnapshot(revision or result.revision, members, owners)

    async def owner(self, shard: str) -> ShardOwner | None:
        """The shard's owner now (a linearizable read), or ``None``."""
        kv = (await self.client.get(self.keys.owner(shard))).kv
        return ShardOwner.from_kv(shard, kv) if kv is not None else None

    async def follow(self) -> AsyncGenerator[GroupSnapshot, None]:
        """Yield the group now, then again after every change, in revision order.

        Raises only for errors retrying cannot cure (permissions, credentials).
        """
        backoff = Backoff(0.05, 2.0)
        last_revision = 0
        while True:
            try:
                async with watched_read(self.client, self.keys.base, self._snapshot_at) as (
                    snapshot,
                    watch,
                ):
                    if snapshot.revision < last_revision:
                        log_event(
                            log,
                            logging.ERROR,
                            "etcd's revision went back (restored from a snapshot?): fencing "
                            "tokens are only as monotonic as etcd",
                            group=self.group,
                            revision=snapshot.revision,
                            before=last_revision,
                        )
                    last_revision = snapshot.revision
                    yield snapshot
                    members, owners = dict(snapshot.members), dict(snapshot.owners)
                    backoff.reset()
                    known = snapshot.revision
                    async for batch in watch:
                        if not batch.events:
                            continue
                        for event in batch.events:
                            self._apply(event, members, owners)
                        # A batch's header revision is etcd's revision when it was sent, which
                        # runs ahead of its events while a watcher catches up: what we know
                        # is the state as of the newest event, not as of the header.
                        known = max(known, *(e.kv.mod_revision for e in batch.events))
                        last_revision = max(last_revision, known)
                        yield GroupSnapshot(known, dict(members), dict(owners))
            except FATAL_ERRORS:
                raise
            except (WatchError, TransportError) as exc:
                log_event(
                    log,
                    logging.INFO,
                    "group watch broken, reading again",
                    detail=exc,
                    group=self.group,
                )
                await backoff.sleep()

    def _apply(
        self, event: Event, members: dict[int, MemberInfo], owners: dict[str, ShardOwner]
    ) -> None:
        if event.type is EventType.PUT:
            self._apply_put(event.kv, members, owners)
            return
        lease = self.keys.member_lease(event.kv.key)
        if lease is not None:
            members.pop(lease, None)
        shard = self.keys.owner_shard(event.kv.key)
        if shard is not None:
            owners.pop(shard, None)

    def _apply_put(
        self, kv: KeyValue, members: dict[int, MemberInfo], owners: dict[str, ShardOwner]
    ) -> None:
        lease = self.keys.member_lease(kv.key)
        if lease is not None:
            member = MemberInfo.decode(lease, kv.create_revision, kv.value)
            if member is not None and kv.lease == lease:
                members[lease] = member
            return
        shard = self.keys.owner_shard(kv.key)
        if shard is not None:  # even one on no lease (put by hand): it blocks the shard
            owners[shard] = ShardOwner.from_kv(shard, kv)
