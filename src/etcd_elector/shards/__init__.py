"""Shard groups: P shards shared among the live replicas of a service, each shard owned by
at most one replica at a time, fenced, balanced, and moved deliberately.

    async with AsyncClient("127.0.0.1:2379") as client:
        async with AsyncShardGroup(client, "orders", shards=64) as group:
            await group.run(consume)   # consume(shard) runs for each shard this replica owns

A recipe beside the election layer: one session (lease) per replica, one watch on the group,
compare-and-swap on one owner key per shard. See docs/shards.md. The top-level package exports
what applications use; this package adds the plan and the key layout, for tools.
"""

from ._events import ShardEvent, ShardEventKind, ShardWork
from ._group import AsyncShardGroup
from ._owned import OwnedShard
from ._plan import plan, quotas
from ._spec import GroupKeys, MemberInfo, shard_names
from ._sync import ShardGroup, ShardView
from ._view import AsyncShardView, GroupSnapshot, ShardOwner

__all__ = [
    "AsyncShardGroup",
    "AsyncShardView",
    "GroupKeys",
    "GroupSnapshot",
    "MemberInfo",
    "OwnedShard",
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
