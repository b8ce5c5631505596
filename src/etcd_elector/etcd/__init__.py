"""The etcd client under etcd-elector, and the types of what its calls return.

``etcd_elector.AsyncClient`` (and its blocking twin ``Client``) *is* this client plus the
election entry points; import the result types from here when you annotate code that uses its
calls directly::

    from etcd_elector.etcd import GetResult, RangeResult, WatchBatch

Nothing in this package knows about elections: it is the layer below them (the connection to
etcd, failover, credentials, the history guard, streams, and typed results).
"""

from .._config import Endpoint
from ._client import AsyncEtcdClient
from ._history_guard import HistoryGuard, HistoryLoss
from ._keepalive import KeepAliveStream
from ._txn import Compare, Op
from ._types import (
    DeleteResult,
    Event,
    EventType,
    GetResult,
    KeepAliveAnswer,
    KeyValue,
    Lease,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TxnResult,
    WatchBatch,
)
from ._watch import AsyncWatch

__all__ = [
    "AsyncEtcdClient",
    "AsyncWatch",
    "Compare",
    "DeleteResult",
    "Endpoint",
    "Event",
    "EventType",
    "GetResult",
    "HistoryGuard",
    "HistoryLoss",
    "KeepAliveAnswer",
    "KeepAliveStream",
    "KeyValue",
    "Lease",
    "LeaseInfo",
    "Member",
    "Op",
    "PutResult",
    "RangeResult",
    "Status",
    "TxnResult",
    "WatchBatch",
]
