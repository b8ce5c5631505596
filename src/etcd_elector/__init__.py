"""Leader election on etcd that never has two leaders.

    async with AsyncClient("127.0.0.1:2379") as client:
        async with client.session(ttl=10) as session:
            election = AsyncElection(session, "scheduler")
            term = await election.campaign("host-a")
            while election.is_leader():
                ...

See the README for the guarantees and the command-line tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import (
    AmbiguousResult,
    AuthenticationFailed,
    CampaignFailed,
    ClientClosed,
    ConfigurationError,
    ConnectionFailed,
    DatabaseSpaceExceeded,
    EtcdElectorError,
    EtcdServerError,
    LeadershipError,
    LeadershipLost,
    LeaseNotFound,
    NoLeader,
    NotLeader,
    PermissionDenied,
    RequestRejected,
    RequestTimeout,
    RequestTooLarge,
    SessionLost,
    TLSHandshakeFailed,
    TokenRegressed,
    TransportError,
    WatchCanceled,
    WatchCompacted,
    WatchError,
)
from ._lazy import lazy_exports
from ._reasons import EndReason

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._config import ClientConfig
    from ._election._election import AsyncElection
    from ._election._elector import AsyncElector, ElectorEvent, ElectorState
    from ._election._leader import LeaderInfo
    from ._election._moves import Pause
    from ._election._observe import EtcdReachable, EtcdUnreachable, LeaderObserved
    from ._election._session import AsyncSession, SessionState
    from ._election._states import Move, MoveKind
    from ._election._term import Term
    from ._election._timing import TimingReport, check_timing
    from ._election._view import AsyncElectionView
    from ._health import HealthServer
    from ._logfmt import JsonLogFormatter
    from ._metrics import (
        FencedResult,
        MetricsSink,
        NoopMetrics,
        PrometheusMetrics,
        get_metrics,
        set_metrics,
    )
    from ._secret import Secret
    from ._sync._client import Client, Watch
    from ._sync._elector import Elector
    from ._sync._session import Election, ElectionView, Session
    from ._systemd import SystemdNotifier
    from .etcd import AsyncWatch, Compare, HistoryLoss, KeyValue, Op, TxnResult
    from .shards import (
        AsyncShardGroup,
        AsyncShardView,
        GroupSnapshot,
        OwnedShard,
        ShardEvent,
        ShardEventKind,
        ShardGroup,
        ShardOwner,
        ShardView,
    )

# Everything else is imported on first use (PEP 562), so that a command such as
# `etcd-elector leader` loads only what it needs: its start-up is part of every health check.
_LAZY = {
    "AsyncClient": "._client",
    "ClientConfig": "._config",
    "AsyncElection": "._election._election",
    "AsyncElector": "._election._elector",
    "ElectorEvent": "._election._elector",
    "ElectorState": "._election._elector",
    "Pause": "._election._moves",
    "Move": "._election._states",
    "MoveKind": "._election._states",
    "EtcdReachable": "._election._observe",
    "EtcdUnreachable": "._election._observe",
    "LeaderObserved": "._election._observe",
    "AsyncSession": "._election._session",
    "SessionState": "._election._session",
    "Term": "._election._term",
    "TimingReport": "._election._timing",
    "check_timing": "._election._timing",
    "AsyncElectionView": "._election._view",
    "LeaderInfo": "._election._leader",
    "HealthServer": "._health",
    "JsonLogFormatter": "._logfmt",
    "FencedResult": "._metrics",
    "MetricsSink": "._metrics",
    "NoopMetrics": "._metrics",
    "PrometheusMetrics": "._metrics",
    "get_metrics": "._metrics",
    "set_metrics": "._metrics",
    "Secret": "._secret",
    "Client": "._sync._client",
    "Watch": "._sync._client",
    "Elector": "._sync._elector",
    "Election": "._sync._session",
    "ElectionView": "._sync._session",
    "Session": "._sync._session",
    "SystemdNotifier": "._systemd",
    "AsyncShardGroup": ".shards",
    "AsyncShardView": ".shards",
    "GroupSnapshot": ".shards",
    "OwnedShard": ".shards",
    "ShardEvent": ".shards",
    "ShardEventKind": ".shards",
    "ShardGroup": ".shards",
    "ShardOwner": ".shards",
    "ShardView": ".shards",
    "AsyncWatch": ".etcd",
    "Compare": ".etcd",
    "HistoryLoss": ".etcd",
    "KeyValue": ".etcd",
    "Op": ".etcd",
    "TxnResult": ".etcd",
}


__version__ = "0.1.0"
"""The version of etcd-elector."""

__all__ = [
    "AmbiguousResult",
    "AsyncClient",
    "AsyncElection",
    "AsyncElectionView",
    "AsyncElector",
    "AsyncSession",
    "AsyncShardGroup",
    "AsyncShardView",
    "AsyncWatch",
    "AuthenticationFailed",
    "CampaignFailed",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "Compare",
    "ConfigurationError",
    "ConnectionFailed",
    "DatabaseSpaceExceeded",
    "Election",
    "ElectionView",
    "Elector",
    "ElectorEvent",
    "ElectorState",
    "EndReason",
    "EtcdElectorError",
    "EtcdReachable",
    "EtcdServerError",
    "EtcdUnreachable",
    "FencedResult",
    "GroupSnapshot",
    "HealthServer",
    "HistoryLoss",
    "JsonLogFormatter",
    "KeyValue",
    "LeaderInfo",
    "LeaderObserved",
    "LeadershipError",
    "LeadershipLost",
    "LeaseNotFound",
    "MetricsSink",
    "Move",
    "MoveKind",
    "NoLeader",
    "NoopMetrics",
    "NotLeader",
    "Op",
    "OwnedShard",
    "Pause",
    "PermissionDenied",
    "PrometheusMetrics",
    "RequestRejected",
    "RequestTimeout",
    "RequestTooLarge",
    "Secret",
    "Session",
    "SessionLost",
    "SessionState",
    "ShardEvent",
    "ShardEventKind",
    "ShardGroup",
    "ShardOwner",
    "ShardView",
    "SystemdNotifier",
    "TLSHandshakeFailed",
    "Term",
    "TimingReport",
    "TokenRegressed",
    "TransportError",
    "TxnResult",
    "Watch",
    "WatchCanceled",
    "WatchCompacted",
    "WatchError",
    "__version__",
    "check_timing",
    "get_metrics",
    "set_metrics",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, __all__)
