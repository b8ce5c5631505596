"""Typed results of etcd calls: plain frozen dataclasses, free of protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._reads import KeyValue, LeaseInfo, RangeResult

if TYPE_CHECKING:
    from .._proto import kv_pb2, rpc_pb2

__all__ = [  # the read types are defined in ._reads, and are this module's as well
    "DeleteResult",
    "Event",
    "EventType",
    "GetResult",
    "KeepAliveAnswer",
    "KeyValue",
    "Lease",
    "LeaseInfo",
    "Member",
    "PutResult",
    "RangeResult",
    "Status",
    "TxnResult",
    "WatchBatch",
]


@dataclass(frozen=True)
class GetResult:
    """One key (or ``None``) read at ``revision``."""

    kv: KeyValue | None
    revision: int


@dataclass(frozen=True)
class PutResult:
    """The revision a put committed at; ``prev_kv`` when the put asked for it."""

    revision: int
    prev_kv: KeyValue | None

    @classmethod
    def from_proto(cls, resp: rpc_pb2.PutResponse) -> PutResult:
        prev = KeyValue.from_proto(resp.prev_kv) if resp.HasField("prev_kv") else None
        return cls(revision=resp.header.revision, prev_kv=prev)


@dataclass(frozen=True)
class DeleteResult:
    """How many keys a delete removed, at ``revision``; ``prev_kvs`` when asked for."""

    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...]

    @classmethod
    def from_proto(cls, resp: rpc_pb2.DeleteRangeResponse) -> DeleteResult:
        return cls(
            revision=resp.header.revision,
            deleted=resp.deleted,
            prev_kvs=tuple(KeyValue.from_proto(kv) for kv in resp.prev_kvs),
        )


@dataclass(frozen=True)
class TxnResult:
    """Whether the compares held, and one result per operation of the branch that ran."""

    succeeded: bool
    revision: int
    responses: tuple[Any, ...]

    @classmethod
    def from_proto(cls, resp: rpc_pb2.TxnResponse) -> TxnResult:
        results: list[Any] = []
        for op in resp.responses:
            kind = op.WhichOneof("response")
            if kind == "response_range":
                results.append(RangeResult.from_proto(op.response_range))
            elif kind == "response_put":
                results.append(PutResult.from_proto(op.response_put))
            elif kind == "response_delete_range":
                results.append(DeleteResult.from_proto(op.response_delete_range))
            elif kind == "response_txn":
                results.append(TxnResult.from_proto(op.response_txn))
        return cls(
            succeeded=resp.succeeded, revision=resp.header.revision, responses=tuple(results)
        )


class EventType(enum.Enum):
    """What a watch event reports: a key written (``PUT``) or deleted (``DELETE``)."""

    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    """One change seen by a watch. ``prev_kv`` only when the watch asked for it."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @classmethod
    def from_proto(cls, event: kv_pb2.Event) -> Event:
        return cls(
            type=EventType.DELETE if event.type == _DELETE else EventType.PUT,
            kv=KeyValue.from_proto(event.kv),
            prev_kv=KeyValue.from_proto(event.prev_kv) if event.HasField("prev_kv") else None,
        )


@dataclass(frozen=True)
class WatchBatch:
    """Events delivered together, all at or below ``revision``; empty for a progress notice."""

    events: tuple[Event, ...]
    revision: int


@dataclass(frozen=True)
class Lease:
    """A granted lease. ``ttl`` is what etcd granted, which may differ from what was asked."""

    id: int
    ttl: int

    def __str__(self) -> str:
        return f"{self.id:x}"


@dataclass(frozen=True)
class KeepAliveAnswer:
    """etcd's answer to one keepalive request.

    ``sent_at`` is when the request was *sent*, on the clock of :mod:`etcd_elector._clock`;
    etcd renewed the lease at some moment after that, so ``sent_at + ttl`` is a safe lower bound
    of the lease's expiry. ``ttl <= 0`` means the lease no longer exists.
    """

    lease_id: int
    ttl: int
    sent_at: float
    received_at: float
    revision: int

    @property
    def round_trip(self) -> float:
        return self.received_at - self.sent_at


@dataclass(frozen=True)
class Member:
    """One etcd cluster member, as ``member_list()`` reports it."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True)
class Status:
    """One member's view: its id, the raft leader's id, versions and revision."""

    endpoint: str
    member_id: int
    leader: int
    version: str
    revision: int
    raft_term: int
    raft_index: int
    db_size: int
    errors: tuple[str, ...]

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader


_DELETE = 1  # kv.proto's Event.DELETE (tests/test_proto.py holds it to the generated code)
