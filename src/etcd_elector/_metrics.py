"""Metrics: one small sink interface, a no-op default and a Prometheus implementation.

The library reports what happens to a sink installed once per process with
:func:`set_metrics`; nothing is measured until one is. Any backend plugs in by implementing
:class:`MetricsSink` (subclass :class:`NoopMetrics` to implement only some methods, and to keep
working when methods are added). Sink calls are made on the event loop, must be cheap, and can
never raise into the library: :func:`sink` wraps every call.

Prometheus needs the optional extra ``etcd-elector[metrics]`` (``prometheus-client``)::

    from etcd_elector import PrometheusMetrics, set_metrics

    set_metrics(PrometheusMetrics())  # registers on prometheus_client's default registry
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "FencedResult",
    "MetricsSink",
    "NoopMetrics",
    "PrometheusMetrics",
    "get_metrics",
    "set_metrics",
    "sink",
]

log = logging.getLogger(__name__)


class FencedResult(enum.StrEnum):
    """What became of a fenced transaction (``election.txn``); stable label values."""

    COMMITTED = "committed"  # the term held and the caller's compares were true
    COMPARE_FAILED = "compare_failed"  # the term held; the caller's own compares were false
    REFUSED = "refused"  # the term was over: refused locally (NotLeader) or by etcd's compare
    UNKNOWN = "unknown"  # the call failed (timeout, ambiguous outcome, unreachable etcd)


@runtime_checkable
class MetricsSink(Protocol):
    """What etcd-elector reports. ``election`` is the election's name; durations are seconds.

    This is the one definition of the interface: :class:`NoopMetrics` inherits these methods
    (each does nothing), and the library's guard around an installed sink is generated from
    them. (They ``return None`` explicitly so that type checkers do not take them for
    abstract.)
    """

    def leadership(self, election: str, leading: bool) -> None:
        """A term of ``election`` began (``True``) or ended (``False``) in this process."""
        return None

    def campaign_started(self, election: str) -> None:
        """This process began to campaign in ``election``."""
        return None

    def term_started(self, election: str) -> None:
        """A campaign was won."""
        return None

    def term_ended(self, election: str, reason: str, duration: float) -> None:
        """A term ended after ``duration`` seconds; ``reason`` is an :class:`EndReason` value
        (``deadline``, ``expired``, ``resigned``, ``key_deleted``...)."""
        return None

    def campaign_waited(self, election: str, seconds: float) -> None:
        """A won campaign took ``seconds`` from its start to the term."""
        return None

    def keepalive(self, rtt_seconds: float, margin_left_seconds: float) -> None:
        """A lease renewal arrived after ``rtt_seconds``, with ``margin_left_seconds`` left
        before the local deadline it replaced (how close the session came to being lost)."""
        return None

    def keepalive_failed(self) -> None:
        """A keepalive got no valid answer (timeout, broken stream, unreachable etcd)."""
        return None

    def session_started(self) -> None:
        """A lease was granted and is being kept alive."""
        return None

    def session_ended(self, reason: str) -> None:
        """A session ended; ``reason`` is an :class:`EndReason` value."""
        return None

    def watch_reconnected(self) -> None:
        """A watch stream was opened again after the previous one broke."""
        return None

    def watch_compacted(self) -> None:
        """etcd cancelled a watch because its start revision was compacted."""
        return None

    def fenced_txn(self, election: str, result: str) -> None:
        """A fenced transaction finished; ``result`` is a :class:`FencedResult` value."""
        return None

    def history_lost(self, kind: str) -> None:
        """etcd's history went back (``revision_went_back``) or its cluster id changed
        (``cluster_id_changed``): every session on the client ended."""
        return None

    def leadership_refused(self, election: str) -> None:
        """A campaign won with a fencing token not above the highest known (after a history
        loss) and was refused."""
        return None

    def planned_move(self, election: str, kind: str) -> None:
        """A planned move happened in this process: ``handoff_requested``, ``draining``,
        ``drain_cancelled`` (the budget was spent), ``handed_off``, ``handoff_fallback`` (no
        successor: a plain resign), ``paused`` (stepped down or held off) or ``resumed``."""
        return None


#: The names of the interface's methods, in the order they are defined.
METHODS: tuple[str, ...] = tuple(
    name
    for name, member in vars(MetricsSink).items()
    if inspect.isfunction(member) and not name.startswith("_")
)


class NoopMetrics(MetricsSink):
    """The default sink: measures nothing. Subclass it to implement only some methods (and to
    keep working when methods are added)."""


class _Guarded(NoopMetrics):
    """Forwards every method to a user's sink; a sink that raises is logged (once per method),
    never propagated: measuring must not change what the library does."""

    def __init__(self, inner: MetricsSink) -> None:
        self.inner = inner
        self._complained: set[str] = set()
        self._lock = threading.Lock()

    def _call(self, method: str, *args: Any) -> None:
        try:
            getattr(self.inner, method)(*args)
        except Exception:
            with self._lock:
                first = method not in self._complained
                self._complained.add(method)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "metrics sink %r failed in %s()%s",
                self.inner,
                method,
                "" if first else " (again)",
                exc_info=True,
            )


def _forwarder(method: str) -> Callable[..., None]:
    def forward(self: _Guarded, *args: Any) -> None:
        self._call(method, *args)

    return functools.update_wrapper(forward, getattr(MetricsSink, method))


for _method in METHODS:
    setattr(_Guarded, _method, _forwarder(_method))


_NOOP = NoopMetrics()
_installed: MetricsSink = _NOOP
_guarded: NoopMetrics = _NOOP


def set_metrics(metrics: MetricsSink | None) -> MetricsSink:
    """Install the process-wide metrics sink (``None``: measure nothing); return the previous.

    Install it before creating clients; every session, election and watch reports to the sink
    installed at the moment of the event.
    """
    global _installed, _guarded
    previous = _installed
    if metrics is None or type(metrics) is NoopMetrics:
        _installed, _guarded = _NOOP, _NOOP
    else:
        _installed, _guarded = metrics, _Guarded(metrics)
    return previous


def get_metrics() -> MetricsSink:
    """The installed metrics sink (a :class:`NoopMetrics` unless one was set)."""
    return _installed


def sink() -> MetricsSink:
    """The installed sink, wrapped so that no call raises (for the library's own hooks)."""
    return _guarded


# Buckets chosen for election timings: RTTs on a LAN to a slow WAN, margins up to a long TTL.
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MARGIN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
TERM_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 24 * 3600.0)


class PrometheusMetrics(NoopMetrics):
    """A sink that keeps Prometheus metrics in ``registry`` (default: prometheus_client's
    default registry). Metric names and labels are listed in ``docs/observability.md``.

    :raises ImportError: if ``prometheus-client`` is not installed
        (``pip install 'etcd-elector[metrics]'``).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ImportError(
                "PrometheusMetrics needs prometheus-client: pip install 'etcd-elector[metrics]'"
            ) from exc
        self.registry: CollectorRegistry = registry if registry is not None else prom.REGISTRY
        reg = self.registry
        election = ["election"]
        self.is_leader = prom.Gauge(
            "etcd_elector_is_leader",
            "1 while this process holds a term of the election, else 0",
            election,
            registry=reg,
        )
        self.campaigns_started = prom.Counter(
            "etcd_elector_campaigns_started_total",
            "Campaigns begun by this process",
            election,
            registry=reg,
        )
        self.terms_started = prom.Counter(
            "etcd_elector_terms_started_total", "Terms won by this process", election, registry=reg
        )
        self.terms_ended = prom.Counter(
            "etcd_elector_terms_ended_total",
            "Terms of this process that ended, by reason",
            ["election", "reason"],
            registry=reg,
        )
        self.term_duration = prom.Histogram(
            "etcd_elector_leadership_duration_seconds",
            "How long each ended term lasted",
            election,
            buckets=TERM_BUCKETS,
            registry=reg,
        )
        self.campaign_wait = prom.Histogram(
            "etcd_elector_campaign_wait_seconds",
            "Time from the start of a won campaign to its term",
            election,
            buckets=WAIT_BUCKETS,
            registry=reg,
        )
        self.keepalive_rtt = prom.Histogram(
            "etcd_elector_keepalive_rtt_seconds",
            "Round trip of lease keepalives that etcd answered",
            buckets=RTT_BUCKETS,
            registry=reg,
        )
        self.lease_margin = prom.Histogram(
            "etcd_elector_lease_margin_seconds",
            "Time left before the local lease deadline when each renewal arrived",
            buckets=MARGIN_BUCKETS,
            registry=reg,
        )
        self.keepalive_failures = prom.Counter(
            "etcd_elector_keepalive_failures_total",
            "Keepalives that got no valid answer (timeout, broken stream, unreachable etcd)",
            registry=reg,
        )
        self.sessions_started = prom.Counter(
            "etcd_elector_sessions_started_total", "Leases granted and kept alive", registry=reg
        )
        self.sessions_ended = prom.Counter(
            "etcd_elector_sessions_ended_total",
            "Sessions that ended, by reason",
            ["reason"],
            registry=reg,
        )
        self.watch_reconnects = prom.Counter(
            "etcd_elector_watch_reconnects_total",
            "Watch streams opened again after the previous one broke",
            registry=reg,
        )
        self.watch_compactions = prom.Counter(
            "etcd_elector_watch_compactions_total",
            "Watches cancelled by etcd because their start revision was compacted",
            registry=reg,
        )
        self.fenced_txns = prom.Counter(
            "etcd_elector_fenced_txns_total",
            "Fenced transactions (election.txn), by result: committed, compare_failed, "
            "refused (the term was over), unknown (the call failed)",
            ["election", "result"],
            registry=reg,
        )
        self.history_losses = prom.Counter(
            "etcd_elector_history_losses_total",
            "Times etcd's revision went back or its cluster id changed (data wiped or "
            "restored): every session on the client ended",
            ["kind"],
            registry=reg,
        )
        self.leadership_refusals = prom.Counter(
            "etcd_elector_leadership_refusals_total",
            "Campaigns won with a fencing token not above the highest known, and refused",
            election,
            registry=reg,
        )

        self.planned_moves = prom.Counter(
            "etcd_elector_planned_moves_total",
            "Planned moves in this process, by kind: handoff_requested, draining, "
            "drain_cancelled, handed_off, handoff_fallback, paused, resumed",
            ["election", "kind"],
            registry=reg,
        )

    def __repr__(self) -> str:
        return f"<PrometheusMetrics registry={self.registry!r}>"

    def planned_move(self, election: str, kind: str) -> None:
        self.planned_moves.labels(election, kind).inc()

    def leadership(self, election: str, leading: bool) -> None:
        gauge = self.is_leader.labels(election)
        if leading:
            gauge.inc()
        else:
            gauge.dec()

    def campaign_started(self, election: str) -> None:
        self.campaigns_started.labels(election).inc()
        self.is_leader.labels(election)  # the series exists (at 0) before the first term

    def term_started(self, election: str) -> None:
        self.terms_started.labels(election).inc()

    def term_ended(self, election: str, reason: str, duration: float) -> None:
        self.terms_ended.labels(election, reason).inc()
        self.term_duration.labels(election).observe(max(0.0, duration))

    def campaign_waited(self, election: str, seconds: float) -> None:
        self.campaign_wait.labels(election).observe(max(0.0, seconds))

    def keepalive(self, rtt_seconds: float, margin_left_seconds: float) -> None:
        self.keepalive_rtt.observe(max(0.0, rtt_seconds))
        self.lease_margin.observe(max(0.0, margin_left_seconds))

    def keepalive_failed(self) -> None:
        self.keepalive_failures.inc()

    def session_started(self) -> None:
        self.sessions_started.inc()

    def session_ended(self, reason: str) -> None:
        self.sessions_ended.labels(reason).inc()

    def watch_reconnected(self) -> None:
        self.watch_reconnects.inc()

    def watch_compacted(self) -> None:
        self.watch_compactions.inc()

    def fenced_txn(self, election: str, result: str) -> None:
        self.fenced_txns.labels(election, result).inc()

    def history_lost(self, kind: str) -> None:
        self.history_losses.labels(kind).inc()

    def leadership_refused(self, election: str) -> None:
        self.leadership_refusals.labels(election).inc()
