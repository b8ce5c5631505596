"""Leader election on etcd that never has two leaders.

    async with AsyncClient("127.0.0.1:2379") as client:
        async with client.session(ttl=10) as session:
            election = AsyncElection(session, "scheduler")
            term = await election.campaign("host-a")
            while election.is_leader():
                ...

See the README for the guarantees and the command-line tool.
"""

from ._client import AsyncClient
from ._config import ClientConfig
from ._election._election import AsyncElection
from ._election._elector import AsyncElector, ElectorEvent, ElectorState
from ._election._moves import Pause
from ._election._observe import EtcdReachable, EtcdUnreachable, LeaderObserved
from ._election._session import AsyncSession, SessionState
from ._election._states import Move, MoveKind
from ._election._term import Term
from ._election._timing import TimingReport, check_timing
from ._election._view import AsyncElectionView, LeaderInfo
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
from ._reasons import EndReason
from ._secret import Secret
from ._sync._client import Client, Watch
from ._sync._elector import Elector
from ._sync._session import Election, ElectionView, Session
from .etcd import AsyncWatch, Compare, HistoryLoss, KeyValue, Op, TxnResult

__version__ = "0.1.0"
"""The version of etcd-elector."""

__all__ = [
    "AmbiguousResult",
    "AsyncClient",
    "AsyncElection",
    "AsyncElectionView",
    "AsyncElector",
    "AsyncSession",
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
