"""A health endpoint for one elector or election: standard-library HTTP on its own thread.

Every answer is computed from local state at request time (the session's deadline against the
clock, as ``is_leader()`` does); no request does etcd I/O, so a probe can never pile load on
etcd or hang on it.

Kubernetes probes, one question each:

* ``/live`` (liveness): 200 while the event loop the elector runs on answers within
  ``loop_stall`` seconds; 503 once it does not (a blocked or wedged loop: restart the pod).
  An etcd outage never makes it fail, so it never restarts every replica at once.
* ``/ready`` (readiness): 200 while this replica is a healthy candidate in any role (session
  alive and renewing, elector campaigning or leading, loop answering); 503 otherwise.
  Leader or not does not matter, so rolling updates keep working.
* ``/leader``: 200 only while this process leads inside its safe window (before the local
  deadline), 503 otherwise: for a Service that routes to the leader alone.

And:

* ``/healthz``: 200 while the session is alive and renewing; 503 when keepalives are failing
  (``uncertain``), the local deadline has passed, or there is no session.
* ``/metrics``: Prometheus text, when ``prometheus-client`` is installed (else 404).

Bodies other than ``/metrics`` are small JSON objects describing the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from . import _metrics
from ._election._election import AsyncElection
from ._election._elector import AsyncElector, ElectorState
from ._election._session import AsyncSession, SessionState
from ._election._term import Term
from ._errors import ConfigurationError
from ._log import log_event
from ._reasons import EndReason

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["HealthServer", "Watched", "parse_address"]

log = logging.getLogger(__name__)

_TEXT = "text/plain; charset=utf-8"
_POLL_INTERVAL = 0.1  # how long close() may wait for the server thread to notice
_LOOP_STALL = 0.5  # /live: how long the event loop may take to run a callback
_READY_STATES = (ElectorState.CAMPAIGNING, ElectorState.LEADING)
_PATHS = "/live, /ready, /leader, /healthz or /metrics"
_NO_METRICS = b"metrics need the prometheus-client package: pip install 'etcd-elector[metrics]'\n"


class Watched(Protocol):
    """What the health server reads, all local state: an ``AsyncElector`` or ``AsyncElection``."""

    @property
    def name(self) -> str: ...

    def is_leader(self) -> bool: ...

    @property
    def term(self) -> Term | None: ...

    @property
    def session(self) -> AsyncSession | None: ...


class BlockingTwin(Protocol):
    """A blocking ``Elector`` or ``Election``: the health server reads its async object."""

    @property
    def aio(self) -> Watched: ...

    @property
    def portal(self) -> Any: ...


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0 picks a free one) as a tuple.

    :raises ConfigurationError: saying what is wrong.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigurationError(f"expected HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    return host, int(port_text)


class HealthServer:
    """Serve ``/live``, ``/ready``, ``/leader``, ``/healthz`` and ``/metrics`` for ``target``.

    ::

        with HealthServer(elector, "127.0.0.1:8080") as health:
            print(health.url)  # http://127.0.0.1:8080
            await elector.run(work)

    :param target: an ``AsyncElector``, ``AsyncElection`` or their blocking twins.
    :param address: ``HOST:PORT`` or ``(host, port)``; port 0 picks a free port (see
        :attr:`address` once started).
    :param registry: the Prometheus registry ``/metrics`` shows (default: the registry of the
        installed :class:`PrometheusMetrics` sink, else prometheus_client's default registry).
    :param loop_stall: seconds the event loop may take to run a callback before ``/live``
        and ``/ready`` answer 503 (keep the probe's ``timeoutSeconds`` above it).
    :raises ConfigurationError: for a malformed address, or a ``loop_stall`` that is not a
        positive number.
    """

    def __init__(
        self,
        target: Watched | BlockingTwin,
        address: str | tuple[str, int] = "127.0.0.1:0",
        *,
        registry: CollectorRegistry | None = None,
        loop_stall: float = _LOOP_STALL,
    ) -> None:
        inner: Any = getattr(target, "aio", target)  # the sync twins wrap the async objects
        if not isinstance(inner, AsyncElector | AsyncElection):
            raise TypeError(f"HealthServer needs an elector or an election, got {target!r}")
        if isinstance(loop_stall, bool) or not loop_stall > 0:
            raise ConfigurationError(f"loop_stall must be a positive number, got {loop_stall!r}")
        self.target: AsyncElector | AsyncElection = inner
        self.requested = parse_address(address) if isinstance(address, str) else address
        self.registry = registry
        self.loop_stall = float(loop_stall)
        portal = getattr(target, "portal", None)  # a twin's loop runs on its client's thread
        self._loop: asyncio.AbstractEventLoop | None = getattr(portal, "loop", None)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> HealthServer:
        """Bind and serve on a daemon thread. Idempotent.

        :raises OSError: if the address cannot be bound.
        """
        with self._lock:
            if self._server is not None:
                return self
            if self._loop is None:
                with contextlib.suppress(RuntimeError):
                    self._loop = asyncio.get_running_loop()
            server_class = _Server6 if ":" in self.requested[0] else _Server
            server = server_class(self.requested, _Handler)
            server.health = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"etcd-elector-health-{self.address[1]}",
                daemon=True,
            )
            self._thread.start()
        log_event(
            log,
            logging.INFO,
            "health endpoint listening",
            election=self.target.name,
            address=self.url,
        )
        return self

    def close(self) -> None:
        """Stop serving and release the port. Idempotent; blocks up to about 0.1 s."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``. :raises RuntimeError: before :meth:`start`."""
        server = self._server
        if server is None:
            raise RuntimeError("the health server is not running")
        host, port = server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not running"
        return f"<HealthServer {self.target.name!r} {where}>"

    # -- the answers (local state only) ----------------------------------------------------

    def _session(self) -> AsyncSession | None:
        return self.target.session

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: (status, body)."""
        session = self._session()
        body: dict[str, Any] = {"election": self.target.name, "leader": self.target.is_leader()}
        if isinstance(self.target, AsyncElector):
            body["elector"] = self.target.state.value
            pause = self.target.moves.pause
            if pause is not None:  # the election is paused: who, why, since when
                body["paused"] = {"by": pause.by, "reason": pause.reason, "at": pause.at}
        if session is None:
            body.update(healthy=False, session=None, reason="no session")
            return 503, body
        state = session.state
        body.update(
            session=state.value,
            lease=f"{session.lease_id:x}",
            remaining=round(session.remaining(), 3),
        )
        if state is SessionState.ALIVE:
            body["healthy"] = True
            return 200, body
        reason = {
            SessionState.UNCERTAIN: "keepalives are failing",
            SessionState.LOST: f"session lost ({session.loss_reason or EndReason.DEADLINE})",
        }.get(state, f"session {state.value}")
        body.update(healthy=False, reason=reason)
        return 503, body

    def _event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the target runs on: the one we were started on, or its session's."""
        if self._loop is None:
            session = self._session()
            # The session's keepalive task runs on the loop that drives the whole elector.
            keeper: asyncio.Task[None] | None = getattr(session, "_keeper", None)
            if keeper is not None:
                self._loop = keeper.get_loop()
        return self._loop

    def _loop_answers(self) -> tuple[bool, str]:
        """Whether the event loop runs a callback within ``loop_stall`` (from this thread)."""
        loop = self._event_loop()
        if loop is None:
            return True, "unknown"  # not started on a loop yet: nothing is stalled
        if loop.is_closed():
            return False, "closed"
        answered = threading.Event()
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # closed meanwhile
            return False, "closed"
        if answered.wait(self.loop_stall):
            return True, "running"
        return False, f"stalled (no answer within {self.loop_stall:g} s)"

    def live(self) -> tuple[int, dict[str, Any]]:
        """``/live``: (status, body); 503 only when the event loop does not answer."""
        answers, loop = self._loop_answers()
        body: dict[str, Any] = {"election": self.target.name, "live": answers, "loop": loop}
        return (200 if answers else 503), body

    def ready(self) -> tuple[int, dict[str, Any]]:
        """``/ready``: (status, body); 200 for a healthy candidate, leader or not."""
        status, body = self.health()
        answers, loop = self._loop_answers()
        body["loop"] = loop
        reason = body.pop("reason", None)
        if isinstance(self.target, AsyncElector) and self.target.state not in _READY_STATES:
            reason = reason or f"elector {self.target.state.value}"
        if not answers:
            reason = f"event loop {loop}"
        body.pop("healthy", None)
        body["ready"] = status == 200 and reason is None
        if not body["ready"]:
            body["reason"] = reason
            return 503, body
        return 200, body

    def leader(self) -> tuple[int, dict[str, Any]]:
        """``/leader``: (status, body); 200 only while this process leads."""
        term = self.target.term
        leading = term is not None and term.is_leader()
        body: dict[str, Any] = {"election": self.target.name, "leader": leading}
        if term is not None and leading:
            session = self._session()
            body.update(
                key=term.key,
                lease=term.lease_hex,
                token=term.token,
                remaining=round(session.remaining(), 3) if session is not None else None,
            )
            return 200, body
        return 503, body

    def metrics(self) -> tuple[int, bytes, str]:
        """``/metrics``: (status, body, content type)."""
        try:
            import prometheus_client as prom
        except ImportError:
            return 404, _NO_METRICS, _TEXT
        registry = self.registry
        if registry is None:
            installed = _metrics.get_metrics()
            registry = (
                installed.registry
                if isinstance(installed, _metrics.PrometheusMetrics)
                else prom.REGISTRY
            )
        return 200, prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    health: HealthServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "etcd-elector-health"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        health = self.server.health
        path = self.path.split("?", 1)[0]
        try:
            answer = {
                "/live": health.live,
                "/ready": health.ready,
                "/leader": health.leader,
                "/healthz": health.health,
            }.get(path)
            if answer is not None:
                status, state = answer()
                self._send(status, _json(state), "application/json", body)
            elif path == "/metrics":
                self._send(*health.metrics(), body)
            else:
                self._send(404, f"not found: try {_PATHS}\n".encode(), _TEXT, body)
        except Exception:
            log.exception("health endpoint failed answering %s", path)
            self._send(500, b"internal error\n", _TEXT, body)

    def _send(self, status: int, payload: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("health %s - " + format, self.address_string(), *args)


def _json(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()
