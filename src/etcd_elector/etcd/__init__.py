"""The etcd client under etcd-elector, and the types of what its calls return.

``etcd_elector.AsyncClient`` (and its blocking twin ``Client``) *is* this client plus the
election entry points; import the result types from here when you annotate code that uses its
calls directly::

    from etcd_elector.etcd import GetResult, RangeResult, WatchBatch

Nothing in this package knows about elections: it is the layer below them (the connection to
etcd, failover, credentials, the history guard, streams, and typed results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
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

# Imported on first use (PEP 562): the JSON gateway (``_gateway``) lives in this package too,
# and the commands that use it (`etcd-elector leader`) must not load gRPC through this file.
_LAZY = {
    "Endpoint": ".._config",
    "AsyncEtcdClient": "._client",
    "HistoryGuard": "._history_guard",
    "HistoryLoss": "._history_guard",
    "KeepAliveStream": "._keepalive",
    "Compare": "._txn",
    "Op": "._txn",
    "DeleteResult": "._types",
    "Event": "._types",
    "EventType": "._types",
    "GetResult": "._types",
    "KeepAliveAnswer": "._types",
    "KeyValue": "._types",
    "Lease": "._types",
    "LeaseInfo": "._types",
    "Member": "._types",
    "PutResult": "._types",
    "RangeResult": "._types",
    "Status": "._types",
    "TxnResult": "._types",
    "WatchBatch": "._types",
    "AsyncWatch": "._watch",
}


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

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, __all__)
