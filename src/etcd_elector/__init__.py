"""Leader election on etcd that never has two leaders.

    async with AsyncClient("127.0.0.1:2379") as client:
        async with client.session(ttl=10) as session:
            election = session.election("scheduler")
            term = await election.campaign("host-a")
            while election.is_leader():
                ...

See the README for the guarantees and the command-line tool.
"""

from ._client import AsyncClient
from ._config import ClientConfig, Endpoint
from ._election import AsyncElection, Term, TermEndReason
from ._elector import AsyncElector, ElectorEvent, ElectorState, EndReason
from ._errors import (
    AmbiguousResult,
    AuthenticationFailed,
    CampaignFailed,
    ConfigurationError,
    ConnectionFailed,
    EtcdElectorError,
    EtcdServerError,
    LeadershipError,
    LeadershipLost,
    LeaseNotFound,
    NoLeader,
    NotLeader,
    PermissionDenied,
    RequestTimeout,
    SessionLost,
    TLSHandshakeFailed,
    TransportError,
    WatchCanceled,
    WatchCompacted,
    WatchError,
)
from ._health import HealthServer
from ._keepalive import KeepAliveStream
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
from ._session import AsyncSession, LossReason, SessionState
from ._sync import Client, Election, ElectionView, Elector, Session
from ._tuning import TimingReport, check_timing
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
from ._view import ElectionView as AsyncElectionView
from ._view import LeaderInfo
from ._watch import Watch
from .shards import (
    AsyncShardGroup,
    AsyncShardView,
    GroupSnapshot,
    OwnedShard,
    ReleaseReason,
    ShardEvent,
    ShardEventKind,
    ShardGroup,
    ShardOwner,
    ShardView,
)

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
    "AuthenticationFailed",
    "CampaignFailed",
    "Client",
    "ClientConfig",
    "Compare",
    "ConfigurationError",
    "ConnectionFailed",
    "DeleteResult",
    "Election",
    "ElectionView",
    "Elector",
    "ElectorEvent",
    "ElectorState",
    "EndReason",
    "Endpoint",
    "EtcdElectorError",
    "EtcdServerError",
    "Event",
    "EventType",
    "FencedResult",
    "GetResult",
    "GroupSnapshot",
    "HealthServer",
    "JsonLogFormatter",
    "KeepAliveAnswer",
    "KeepAliveStream",
    "KeyValue",
    "LeaderInfo",
    "LeadershipError",
    "LeadershipLost",
    "Lease",
    "LeaseInfo",
    "LeaseNotFound",
    "LossReason",
    "Member",
    "MetricsSink",
    "NoLeader",
    "NoopMetrics",
    "NotLeader",
    "Op",
    "OwnedShard",
    "PermissionDenied",
    "PrometheusMetrics",
    "PutResult",
    "RangeResult",
    "ReleaseReason",
    "RequestTimeout",
    "Secret",
    "Session",
    "SessionLost",
    "SessionState",
    "ShardEvent",
    "ShardEventKind",
    "ShardGroup",
    "ShardOwner",
    "ShardView",
    "Status",
    "TLSHandshakeFailed",
    "Term",
    "TermEndReason",
    "TimingReport",
    "TransportError",
    "TxnResult",
    "Watch",
    "WatchBatch",
    "WatchCanceled",
    "WatchCompacted",
    "WatchError",
    "__version__",
    "check_timing",
    "get_metrics",
    "set_metrics",
]
