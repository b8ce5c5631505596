"""Real etcd server processes on 127.0.0.1: one member, or a cluster of them, with faults,
optionally serving clients over TLS (and requiring client certificates)."""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from etcd_elector._environ import without_etcd_settings
from etcd_elector._errors import ConfigurationError
from etcd_elector._orphans import dies_with_parent
from etcd_elector.testing._binary import etcd_version, find_etcd_binary
from etcd_elector.testing._peers import PeerNetwork
from etcd_elector.testing._ports import LOOPBACK, free_port

__all__ = ["EtcdCluster", "EtcdMember", "EtcdStartError", "EtcdTLS", "LeaderUnknown"]

DEFAULT_HEARTBEAT_MS = 50
DEFAULT_ELECTION_TIMEOUT_MS = 500
DEFAULT_START_TIMEOUT_S = 30.0

_REQUEST_TIMEOUT_S = 1.0
_POLL_INTERVAL_S = 0.05
_EXIT_TIMEOUT_S = 10.0
_SIGNAL_TIMEOUT_S = 5.0
_LOG_TAIL_BYTES = 4000
_TOOL_TIMEOUT_S = 60.0

# urllib honours http_proxy and friends; the test kit only ever talks to loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EtcdStartError(RuntimeError):
    """An etcd member exited or did not become healthy in time; the message has its log."""


class LeaderUnknown(RuntimeError):
    """No reachable member reports a raft leader that belongs to the cluster."""


@dataclass(frozen=True)
class EtcdTLS:
    """TLS on the client port of a test etcd (peers still talk plaintext on loopback).

    ``cert_file``/``key_file`` are etcd's certificate and key (``--cert-file``,
    ``--key-file``). With ``trusted_ca_file``, etcd requires client certificates signed by
    that CA (``--client-cert-auth --trusted-ca-file``), and the kit presents
    ``client_cert_file``/``client_key_file`` for its own health checks. The kit does not
    verify etcd's certificate: it only ever talks to the processes it started, and a test
    may give etcd an expired or misnamed certificate on purpose.
    """

    cert_file: str
    key_file: str
    trusted_ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None

    def __post_init__(self) -> None:
        if self.trusted_ca_file and not (self.client_cert_file and self.client_key_file):
            raise ConfigurationError(
                "with trusted_ca_file (client certificates required), give the kit a "
                "client_cert_file and client_key_file for its health checks"
            )

    def args(self) -> list[str]:
        """etcd's command-line flags for this setup."""
        args = ["--cert-file", self.cert_file, "--key-file", self.key_file]
        if self.trusted_ca_file:
            args += ["--client-cert-auth", "--trusted-ca-file", self.trusted_ca_file]
        return args

    def opener(self) -> urllib.request.OpenerDirector:
        """An HTTPS opener for the kit's own requests (no proxy, no server verification)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file and self.client_key_file:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )


def _post_json(
    url: str, body: dict[str, Any], timeout: float, opener: urllib.request.OpenerDirector = _HTTP
) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with opener.open(request, timeout=timeout) as response:
        decoded = json.loads(response.read())
    if not isinstance(decoded, dict):
        raise ValueError(f"{url} answered {decoded!r}, not a JSON object")
    return decoded


def _as_int(value: object) -> int:
    """etcd's JSON gateway writes uint64 fields as decimal strings (and omits zero ones)."""
    if value is None:
        return 0
    return int(str(value))


def _tail(path: Path, limit: int = _LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - limit))
            return log.read().decode(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


def _proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc (``T`` when stopped), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] if fields else None


def _child_env() -> dict[str, str]:
    # etcd reads ETCD_* variables as flags: keep the caller's from leaking into the test server.
    return without_etcd_settings(os.environ, keep=["ETCD_UNSUPPORTED_ARCH"])


_open_lock = threading.Lock()
_open_clusters: set[EtcdCluster] = set()


def _close_leftovers() -> None:
    """atexit safety net: no etcd started by this process outlives it, nor does its data."""
    with _open_lock:
        clusters = list(_open_clusters)
    for cluster in clusters:
        cluster.close()


atexit.register(_close_leftovers)


class EtcdMember:
    """One etcd server process of an :class:`EtcdCluster`, with its fixed name, ports and data."""

    def __init__(
        self,
        cluster: EtcdCluster,
        name: str,
        client_port: int,
        peer_port: int,
        data_dir: Path,
        log_path: Path,
        client_host: str = LOOPBACK,
    ) -> None:
        self._cluster = cluster
        self.name = name
        self.client_host = client_host
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = data_dir
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._member_id: int | None = None

    def __repr__(self) -> str:
        return f"<EtcdMember {self.name} {self.client_endpoint} pid={self.pid_or_none}>"

    @property
    def cluster(self) -> EtcdCluster:
        """The cluster this member belongs to."""
        return self._cluster

    # -- addresses -------------------------------------------------------------------------

    @property
    def client_endpoint(self) -> str:
        """``127.0.0.1:<client port>``, what a client connects to."""
        host = f"[{self.client_host}]" if ":" in self.client_host else self.client_host
        return f"{host}:{self.client_port}"

    @property
    def client_url(self) -> str:
        """``http://`` or, when the cluster serves TLS, ``https://`` and the endpoint."""
        scheme = "https" if self._cluster.tls is not None else "http"
        return f"{scheme}://{self.client_endpoint}"

    @property
    def peer_url(self) -> str:
        """Where the member listens for its peers."""
        return f"http://{LOOPBACK}:{self.peer_port}"

    @property
    def advertised_peer_url(self) -> str:
        """Where its peers reach it: :attr:`peer_url`, or its proxy in a partitionable
        cluster (see :attr:`EtcdCluster.network`)."""
        network = self._cluster._network
        return self.peer_url if network is None else network.url(self.name)

    # -- process state ---------------------------------------------------------------------

    @property
    def pid_or_none(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def pid(self) -> int:
        """Process id of the current (or last) etcd process of this member."""
        if self._proc is None:
            raise RuntimeError(f"member {self.name} was never started")
        return self._proc.pid

    @property
    def is_running(self) -> bool:
        """The process exists (it may be stopped with SIGSTOP)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def is_stopped(self) -> bool:
        """The process is frozen by :meth:`stop`."""
        return self.is_running and self._stopped

    @property
    def is_serving(self) -> bool:
        """The process is running and not frozen, so it may answer requests."""
        return self.is_running and not self._stopped

    # -- requests --------------------------------------------------------------------------

    def health(self, timeout: float = _REQUEST_TIMEOUT_S) -> bool:
        """True when ``GET /health`` answers ``{"health": "true"}``."""
        try:
            with self._cluster.http.open(f"{self.client_url}/health", timeout=timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            exc.close()  # 503 while the member has no leader
            return False
        except (OSError, ValueError):
            return False
        return isinstance(body, dict) and str(body.get("health")) == "true"

    def status(self, timeout: float = _REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """This member's ``Maintenance.Status`` through etcd's JSON gateway.

        Raises ``OSError`` (``urllib.error.URLError``) when the member does not answer.
        """
        answer = _post_json(
            f"{self.client_url}/v3/maintenance/status", {}, timeout, self._cluster.http
        )
        member_id = _as_int(answer.get("header", {}).get("member_id"))
        if member_id:
            self._member_id = member_id
        return answer

    @property
    def member_id(self) -> int:
        """etcd's id of this member (asked once, then cached)."""
        if self._member_id is None:
            self.status()
        if self._member_id is None:
            raise RuntimeError(f"member {self.name} did not report its member id")
        return self._member_id

    def wait_healthy(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Poll ``/health`` until it is true; raise :class:`EtcdStartError` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self._raise_if_exited()
            if self.health():
                return
            if time.monotonic() >= deadline:
                raise EtcdStartError(self._diagnosis(f"not healthy within {timeout:g} s"))
            time.sleep(_POLL_INTERVAL_S)

    # -- faults ----------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the process and wait for it to exit (a crash, no clean shutdown)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=_EXIT_TIMEOUT_S)
        self._forget()

    def terminate(self) -> None:
        """SIGTERM the process (a clean shutdown) and wait; SIGKILL it if it lingers."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            try:
                proc.wait(timeout=_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        self._forget()

    def stop(self) -> None:
        """Freeze the process with SIGSTOP: it holds its sockets but answers nothing."""
        proc = self._require_running("stop")
        proc.send_signal(signal.SIGSTOP)
        self._stopped = True
        self._wait_state(stopped=True)

    def cont(self) -> None:
        """Thaw a process frozen by :meth:`stop` (SIGCONT)."""
        proc = self._require_running("cont")
        proc.send_signal(signal.SIGCONT)
        self._stopped = False
        self._wait_state(stopped=False)

    def restart(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Start this member again with its data, name and ports (killing it first if needed).

        Returns once it listens for clients and, when a majority of the cluster is running
        (counting this member), once it is healthy.
        """
        self.kill()
        self._start(initial_state="existing", timeout=timeout)

    def wipe_and_restart(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Kill this member, delete its data dir and start it afresh: etcd's history is gone
        and its revisions start again at 1, under the same cluster id (same name, URLs and
        cluster token). Only for a one-member cluster: a wiped member of a larger cluster
        would have to be removed and added again.
        """
        if len(self._cluster.members) != 1:
            raise RuntimeError(
                "wipe_and_restart is for a one-member cluster; in a larger one, remove the "
                "member and add it back instead"
            )
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self._member_id = None
        self._start(initial_state="new", timeout=timeout)

    def snapshot_save(self, path: str | os.PathLike[str]) -> None:
        """Save a snapshot of this member's data to ``path`` with ``etcdctl snapshot save``
        (what an operator's backup does). The member must be serving (plaintext only)."""
        if self._cluster.tls is not None:
            raise RuntimeError("snapshot_save supports plaintext clusters only")
        self._cluster.run_tool(
            "etcdctl", "--endpoints", self.client_endpoint, "snapshot", "save", os.fspath(path)
        )

    def _start(self, *, initial_state: str, timeout: float) -> None:
        self._spawn(initial_state=initial_state)
        deadline = time.monotonic() + timeout
        self._wait_listening(deadline)
        if self._cluster.has_quorum():
            self.wait_healthy(max(0.0, deadline - time.monotonic()))

    # -- internals -------------------------------------------------------------------------

    def _command(self, initial_state: str) -> list[str]:
        cluster = self._cluster
        args = [
            cluster.binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.advertised_peer_url,
            "--initial-cluster",
            cluster.initial_cluster,
            "--initial-cluster-state",
            initial_state,
            "--initial-cluster-token",
            cluster.token,
            "--heartbeat-interval",
            str(cluster.heartbeat_ms),
            "--election-timeout",
            str(cluster.election_timeout_ms),
            # etcd 3.4 defaults to the capnslog logger; zap works on 3.4 and 3.5 alike.
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            cluster.log_level,
        ]
        if cluster.version >= (3, 5, 0):
            # Only a process crash is simulated here, never a machine crash, so fsync
            # buys nothing but slowness. The flag does not exist before 3.5.
            args += ["--unsafe-no-fsync"]
        if cluster.tls is not None:
            args += cluster.tls.args()
        if cluster.auth_token_ttl is not None:
            args += ["--auth-token-ttl", str(cluster.auth_token_ttl)]
        args += list(cluster.extra_args)
        return args

    def _spawn(self, initial_state: str) -> None:
        if self._cluster.closed:
            raise RuntimeError(f"cannot start member {self.name}: its cluster is closed")
        command = self._command(initial_state)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"--- {stamp} starting: {' '.join(command)}\n".encode())
            log.flush()
            # start_new_session: a Ctrl-C in the test's terminal must not reach etcd.
            self._proc = subprocess.Popen(
                dies_with_parent(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                cwd=self.data_dir.parent,
                start_new_session=True,
                close_fds=True,
            )
        self._stopped = False

    def _forget(self) -> None:
        self._stopped = False

    def _kill_quietly(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_EXIT_TIMEOUT_S)
        self._forget()

    def _require_running(self, action: str) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"cannot {action} member {self.name}: it is not running")
        return proc

    def _wait_state(self, *, stopped: bool) -> None:
        deadline = time.monotonic() + _SIGNAL_TIMEOUT_S
        while time.monotonic() < deadline:
            state = _proc_state(self.pid)
            if state is None or (state in ("T", "t")) == stopped:
                return
            time.sleep(0.005)
        raise RuntimeError(f"member {self.name} did not {'stop' if stopped else 'continue'}")

    def _wait_listening(self, deadline: float) -> None:
        while True:
            self._raise_if_exited()
            with contextlib.suppress(OSError):
                socket.create_connection((self.client_host, self.client_port), 0.5).close()
                return
            if time.monotonic() >= deadline:
                raise EtcdStartError(self._diagnosis("does not listen for clients"))
            time.sleep(_POLL_INTERVAL_S)

    def _raise_if_exited(self) -> None:
        proc = self._proc
        if proc is None:
            raise EtcdStartError(f"member {self.name} was never started")
        code = proc.poll()
        if code is not None:
            self._forget()
            raise EtcdStartError(self._diagnosis(f"exited with status {code}"))

    def _diagnosis(self, what: str) -> str:
        return (
            f"etcd member {self.name} ({self.client_endpoint}) {what}; "
            f"log {self.log_path} ends with:\n{_tail(self.log_path)}"
        )


def _check_addresses(size: int, host: str, ports: Sequence[tuple[int, int]] | None) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"etcd test members serve on a loopback address only (127.0.0.1), not {host!r}"
        )
    if ports is None:
        return
    if len(ports) != size:
        raise ConfigurationError(f"give (client, peer) ports for each of the {size} members")
    flat = [port for pair in ports for port in pair]
    if any(not 0 < port < 65536 for port in flat) or len(set(flat)) != len(flat):
        raise ConfigurationError(f"ports must be distinct, from 1 to 65535, got {list(ports)}")


class EtcdCluster:
    """A set of real etcd processes on 127.0.0.1, started with :meth:`start`.

    Use it as a context manager, or call :meth:`close`; an atexit hook kills whatever is
    left running when the interpreter exits.
    """

    def __init__(
        self,
        *,
        size: int,
        binary: str,
        root: Path,
        owns_root: bool,
        extra_args: Sequence[str],
        election_timeout_ms: int,
        heartbeat_ms: int,
        log_level: str,
        tls: EtcdTLS | None = None,
        auth_token_ttl: int | None = None,
        client_host: str = LOOPBACK,
        ports: Sequence[tuple[int, int]] | None = None,
        partitionable: bool = False,
        keeps_data: bool = False,
    ) -> None:
        self.binary = binary
        self.tls = tls
        self.auth_token_ttl = auth_token_ttl
        self.http = _HTTP if tls is None else tls.opener()
        self.version = etcd_version(binary)
        self.root = root
        self._owns_root = owns_root
        self._keeps_data = keeps_data
        self.extra_args = tuple(extra_args)
        self.election_timeout_ms = election_timeout_ms
        self.heartbeat_ms = heartbeat_ms
        self.log_level = log_level
        self.token = f"etcd-elector-test-{uuid.uuid4().hex[:16]}"
        if ports is None:
            ports = [(free_port(), free_port()) for _ in range(size)]
        self._members = [
            EtcdMember(
                self,
                name=f"m{index}",
                client_host=client_host,
                client_port=client_port,
                peer_port=peer_port,
                data_dir=root / f"m{index}.etcd",
                log_path=root / f"m{index}.log",
            )
            for index, (client_port, peer_port) in enumerate(ports)
        ]
        self._network: PeerNetwork | None = None
        if partitionable:
            self._network = PeerNetwork.start(
                {m.name: f"{LOOPBACK}:{m.peer_port}" for m in self._members}, self._pids
            )
        self.initial_cluster = ",".join(f"{m.name}={m.advertised_peer_url}" for m in self._members)
        self._closed = False
        with _open_lock:
            _open_clusters.add(self)

    def _pids(self) -> dict[str, int]:
        return {m.name: pid for m in self._members if (pid := m.pid_or_none) is not None}

    @classmethod
    def start(
        cls,
        size: int = 1,
        *,
        binary: str | None = None,
        data_root: str | os.PathLike[str] | None = None,
        extra_args: Iterable[str] = (),
        election_timeout_ms: int = DEFAULT_ELECTION_TIMEOUT_MS,
        heartbeat_ms: int = DEFAULT_HEARTBEAT_MS,
        start_timeout: float = DEFAULT_START_TIMEOUT_S,
        log_level: str = "warn",
        tls: EtcdTLS | None = None,
        auth_token_ttl: int | None = None,
        partitionable: bool = False,
        data_dir: str | os.PathLike[str] | None = None,
        client_host: str = LOOPBACK,
        ports: Sequence[tuple[int, int]] | None = None,
    ) -> EtcdCluster:
        """Start ``size`` members named ``m0``, ``m1``, … and wait until all are healthy.

        ``tls`` serves clients over TLS (see :class:`EtcdTLS`); ``auth_token_ttl`` sets how
        many seconds etcd's simple auth tokens live after their last use (etcd's default
        300; authentication itself is enabled through etcd's API once the cluster runs).

        ``partitionable`` puts a proxy in front of each member's peer port, so that
        :attr:`network` can cut members off from each other (see :class:`PeerNetwork`).

        ``binary`` defaults to :func:`find_etcd_binary`. Data and logs go to a fresh
        temporary directory, inside ``data_root`` when given (which is then left in place,
        with the member logs, at :meth:`close`). With ``data_dir`` they go to exactly that
        directory and all stay there: a cluster started again on it, with the same size
        and peer ports, comes back with its data. ``ports`` gives each member's
        ``(client port, peer port)`` instead of free ones, and ``client_host`` the loopback
        address the members serve clients on. Raises :class:`EtcdStartError`, with the
        tail of the failing member's log, when a member exits or is not healthy in time.
        """
        if size < 1:
            raise ConfigurationError(f"an etcd cluster needs at least one member, not {size}")
        if heartbeat_ms < 1 or election_timeout_ms < 5 * heartbeat_ms:
            raise ConfigurationError(
                "election_timeout_ms must be at least 5 times heartbeat_ms (etcd's rule), "
                f"got {election_timeout_ms} and {heartbeat_ms}"
            )
        _check_addresses(size, client_host, ports)
        if data_dir is not None and data_root is not None:
            raise ConfigurationError("give data_root (a fresh directory in it) or data_dir")
        if data_dir is not None:
            root = Path(data_dir)
            root.mkdir(parents=True, exist_ok=True)
        elif data_root is None:
            root = Path(tempfile.mkdtemp(prefix="etcd-elector-"))
        else:
            Path(data_root).mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="etcd-", dir=data_root))
        try:
            cluster = cls(
                size=size,
                binary=binary if binary is not None else find_etcd_binary(),
                root=root,
                owns_root=data_root is None and data_dir is None,
                extra_args=tuple(extra_args),
                election_timeout_ms=election_timeout_ms,
                heartbeat_ms=heartbeat_ms,
                log_level=log_level,
                tls=tls,
                auth_token_ttl=auth_token_ttl,
                client_host=client_host,
                ports=ports,
                partitionable=partitionable,
                keeps_data=data_dir is not None,
            )
        except BaseException:
            if data_dir is None:
                shutil.rmtree(root, ignore_errors=True)
            raise
        try:
            for member in cluster._members:
                member._spawn(initial_state="new")
            deadline = time.monotonic() + start_timeout
            for member in cluster._members:
                member.wait_healthy(max(0.0, deadline - time.monotonic()))
            for member in cluster._members:
                with contextlib.suppress(OSError, ValueError):
                    member.status()  # learn and cache its member id
        except BaseException:
            cluster.close()
            raise
        return cluster

    # -- addresses -------------------------------------------------------------------------

    @property
    def members(self) -> list[EtcdMember]:
        return list(self._members)

    @property
    def endpoints(self) -> list[str]:
        """Every member's ``127.0.0.1:<client port>``, running or not."""
        return [member.client_endpoint for member in self._members]

    @property
    def endpoint_string(self) -> str:
        """:attr:`endpoints` joined with commas."""
        return ",".join(self.endpoints)

    def member(self, name: str) -> EtcdMember:
        for member in self._members:
            if member.name == name:
                return member
        raise KeyError(name)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def network(self) -> PeerNetwork:
        """The proxies between members, to cut them off from each other: ``isolate``,
        ``cut``, ``partition``, ``heal`` (see :class:`PeerNetwork`).

        :raises RuntimeError: unless the cluster was started with ``partitionable=True``.
        """
        if self._network is None:
            raise RuntimeError(
                "this cluster has no peer proxies: start it with EtcdCluster.start(..., "
                "partitionable=True) to cut its members off from each other"
            )
        return self._network

    def has_quorum(self) -> bool:
        """A majority of members are running and not frozen."""
        serving = sum(1 for member in self._members if member.is_serving)
        return serving > len(self._members) // 2

    # -- leadership ------------------------------------------------------------------------

    def leader(self) -> EtcdMember:
        """The member that a reachable member names as the raft leader.

        Raises :class:`LeaderUnknown` when no reachable member knows a leader. The answer
        can be stale for an election timeout after a fault; :meth:`wait_for_leader`
        returns a leader that also claims leadership itself.
        """
        for member in self._members:
            if not member.is_serving:
                continue
            try:
                status = member.status()
            except (OSError, ValueError):
                continue
            leader = self._member_by_id(_as_int(status.get("leader")))
            if leader is not None:
                return leader
        raise LeaderUnknown("no reachable etcd member reports a leader")

    def wait_for_leader(self, timeout: float = 10.0) -> EtcdMember:
        """Poll until a running member is the leader by its own account, and return it."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(LeaderUnknown, OSError, ValueError):
                leader = self.leader()
                if leader.is_serving and _as_int(leader.status().get("leader")) == (
                    leader.member_id
                ):
                    return leader
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no etcd leader within {timeout:g} s")
            time.sleep(_POLL_INTERVAL_S)

    # -- backups ---------------------------------------------------------------------------

    def restore_snapshot(
        self,
        path: str | os.PathLike[str],
        *,
        cluster_token: str | None = None,
        timeout: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        """Restore every member from a snapshot file (``etcdutl snapshot restore``, or
        ``etcdctl snapshot restore`` for etcd 3.4) into fresh data dirs and start them: etcd's
        history goes back to the snapshot's revision.

        Like an operator who does not pass the old ``--initial-cluster-token``, the restore
        uses a new cluster token unless ``cluster_token`` is given, so the cluster id changes;
        pass ``cluster_token=cluster.token`` to keep it.
        """
        for member in self._members:
            member.kill()
        token = cluster_token or f"etcd-elector-restored-{uuid.uuid4().hex[:16]}"
        tool = "etcdutl" if self.version >= (3, 5, 0) else "etcdctl"
        for member in self._members:
            restored = member.data_dir.with_name(member.data_dir.name + ".restored")
            shutil.rmtree(restored, ignore_errors=True)
            self.run_tool(
                tool,
                "snapshot",
                "restore",
                os.fspath(path),
                "--data-dir",
                str(restored),
                "--name",
                member.name,
                "--initial-cluster",
                self.initial_cluster,
                "--initial-cluster-token",
                token,
                "--initial-advertise-peer-urls",
                member.advertised_peer_url,  # as in --initial-cluster (a proxy's, if partitionable)
            )
            shutil.rmtree(member.data_dir, ignore_errors=True)
            restored.rename(member.data_dir)
            member._member_id = None
        self.token = token
        for member in self._members:
            member._spawn(initial_state="existing")
        deadline = time.monotonic() + timeout
        for member in self._members:
            member._wait_listening(deadline)
        for member in self._members:
            member.wait_healthy(max(0.0, deadline - time.monotonic()))

    def tool(self, name: str) -> str:
        """The path of etcd's ``etcdctl`` or ``etcdutl``: next to the etcd binary, else on
        ``PATH``. Raises ``FileNotFoundError`` when there is none."""
        beside = Path(self.binary).with_name(name)
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
        found = shutil.which(name)
        if found is None:
            raise FileNotFoundError(f"no {name} next to {self.binary} or on PATH")
        return found

    def run_tool(self, name: str, *args: str) -> str:
        """Run ``etcdctl``/``etcdutl`` (API v3) to completion; return its output.

        Raises ``RuntimeError`` with the output when it fails.
        """
        command = [self.tool(name), *args]
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**_child_env(), "ETCDCTL_API": "3"},
            timeout=_TOOL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {done.returncode}: "
                f"{(done.stdout + done.stderr)[-_LOG_TAIL_BYTES:]}"
            )
        return done.stdout

    def _member_by_id(self, member_id: int) -> EtcdMember | None:
        if member_id == 0:
            return None
        for member in self._members:
            if member._member_id == member_id:
                return member
        for member in self._members:  # learn the ids not cached yet
            if member._member_id is None and member.is_serving:
                with contextlib.suppress(OSError, ValueError):
                    if member.member_id == member_id:
                        return member
        return None

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every member (thawing frozen ones first), wait for them, delete the data.

        Idempotent. Member logs are deleted too, unless ``data_root`` was given.
        """
        if self._closed:
            return
        self._closed = True
        with _open_lock:
            _open_clusters.discard(self)
        for member in self._members:
            member._kill_quietly()
        if self._network is not None:
            self._network.close()
        if self._keeps_data:
            return
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            for member in self._members:
                shutil.rmtree(member.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EtcdCluster {self.endpoint_string} etcd {'.'.join(map(str, self.version))}>"
