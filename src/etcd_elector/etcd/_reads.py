"""What a read returns, built from either transport's answers: keys, ranges and a lease's TTL.

Apart from the other result types (:mod:`._types`, which names these too) so that a reader
over etcd's JSON gateway loads just these three, and no protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._proto import kv_pb2, rpc_pb2

__all__ = ["KeyValue", "LeaseInfo", "RangeResult"]


@dataclass(frozen=True)
class KeyValue:
    """A key as etcd stores it. ``lease`` is 0 when the key has no lease."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_proto(cls, kv: kv_pb2.KeyValue) -> KeyValue:
        return cls(
            key=kv.key,
            value=kv.value,
            create_revision=kv.create_revision,
            mod_revision=kv.mod_revision,
            version=kv.version,
            lease=kv.lease,
        )


@dataclass(frozen=True)
class RangeResult:
    """Keys read at ``revision``; ``count`` is the total matching, ``more`` if a limit cut it."""

    kvs: tuple[KeyValue, ...]
    revision: int
    count: int
    more: bool

    @classmethod
    def from_proto(cls, resp: rpc_pb2.RangeResponse) -> RangeResult:
        return cls(
            kvs=tuple(KeyValue.from_proto(kv) for kv in resp.kvs),
            revision=resp.header.revision,
            count=resp.count,
            more=resp.more,
        )


@dataclass(frozen=True)
class LeaseInfo:
    """A lease's remaining ``ttl`` (-1 if it does not exist), its ``granted_ttl`` and keys."""

    id: int
    ttl: int
    granted_ttl: int
    keys: tuple[bytes, ...]
