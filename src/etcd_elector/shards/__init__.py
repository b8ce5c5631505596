"""Shard groups: P shards shared among the live replicas of a service, each shard owned by
at most one replica at a time, fenced, balanced, and moved deliberately.

    async with AsyncClient("127.0.0.1:2379") as client:
        async with AsyncShardGroup(client, "orders", shards=64) as group:
            await group.run(consume)   # consume(shard) runs for each shard this replica owns

A recipe over the library's public API: one session (lease) per replica, one watch on the
group, compare-and-swap on one owner key per shard. See docs/shards.md.
"""

from ._group import AsyncShardGroup, ShardEvent, ShardEventKind, ShardWork
from ._owned import OwnedShard, ReleaseReason
from ._plan import plan, quotas
from ._spec import DEFAULT_NAMESPACE, GroupKeys, MemberInfo, shard_names
from ._sync import ShardGroup, ShardView
from ._view import AsyncShardView, GroupSnapshot, ShardOwner

__all__ = [
    "DEFAULT_NAMESPACE",
    "AsyncShardGroup",
    "AsyncShardView",
    "GroupKeys",
    "GroupSnapshot",
    "MemberInfo",
    "OwnedShard",
    "ReleaseReason",
    "ShardEvent",
    "ShardEventKind",
    "ShardGroup",
    "ShardOwner",
    "ShardView",
    "ShardWork",
    "plan",
    "quotas",
    "shard_names",
]
