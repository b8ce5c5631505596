"""Where ``etcd-elector etcd`` listens: the addresses it was told, else etcd's usual ports
when free, and the ports a ``--data-dir`` was created with, so that its data comes back.

etcd keeps each member's peer URL in its data: a member restarted on its old data must
listen for peers where it did before, so the ports are written next to the data.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._config import parse_endpoints
from .._errors import ConfigurationError
from ..testing._ports import LOOPBACK, free_port
from ._exit import CliError, ExitCode

__all__ = ["LAYOUT_FILE", "Layout", "plan_layout", "save_layout"]

#: etcd's own convention for a local cluster (its Procfile): member i serves clients on
#: the first port and peers on the second.
DEFAULT_PORTS = ((2379, 2380), (22379, 22380), (32379, 32380))
LAYOUT_FILE = "etcd-elector-dev.json"


@dataclass(frozen=True)
class Layout:
    """Each member's ``(client port, peer port)`` on ``host``, and why any differ from the
    ones asked for (``notes``, one line each)."""

    host: str
    ports: tuple[tuple[int, int], ...]
    notes: tuple[str, ...] = field(default=())

    def client(self, index: int) -> str:
        return f"{self.host}:{self.ports[index][0]}"

    def peer(self, index: int) -> str:
        return f"{LOOPBACK}:{self.ports[index][1]}"


def _told(endpoints: str | None, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The addresses the user gave, and where they came from (None: not told)."""
    if endpoints is not None:
        return endpoints, "--endpoints"
    for variable in ("ETCD_ENDPOINTS", "ETCDCTL_ENDPOINTS"):
        if environ.get(variable):
            return environ[variable], variable
    return None


def _is_free(host: str, port: int) -> bool:
    # SO_REUSEADDR as etcd (Go) sets it: a closed connection in TIME_WAIT does not count.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(avoid: Iterable[int]) -> int:
    avoided = set(avoid)
    while True:
        port = free_port()  # never the same twice, so this ends
        if port not in avoided:
            return port


def _requested(text: str, source: str, members: int) -> tuple[str, list[int]]:
    """The loopback host and client ports in ``text``, one per member."""
    try:
        endpoints = parse_endpoints(text)
    except ConfigurationError as exc:
        raise CliError(f"{source}: {exc}", ExitCode.CONFIGURATION) from None
    hosts = set()
    for endpoint in endpoints:
        if endpoint.secure:
            raise CliError(
                f"{source}: the development etcd serves plain http, not {endpoint}: "
                f"give {endpoint.address}",
                ExitCode.CONFIGURATION,
            )
        host = LOOPBACK if endpoint.host == "localhost" else endpoint.host
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or address.version != 4 or not address.is_loopback:
            raise CliError(
                f"{source}: the development etcd listens on this machine only, on a "
                f"127.x.x.x address, not {endpoint.address}: e.g. --endpoints "
                f"{LOOPBACK}:{endpoint.port}",
                ExitCode.CONFIGURATION,
            )
        hosts.add(host)
    if len(hosts) > 1:
        raise CliError(f"{source}: give every member the same address", ExitCode.CONFIGURATION)
    if len(endpoints) != members:
        example = ",".join(f"{LOOPBACK}:{client}" for client, _ in DEFAULT_PORTS[:members])
        raise CliError(
            f"{source}: --members {members} needs {members} client address"
            f"{'es' if members > 1 else ''}, one per member (e.g. {example}), "
            f"not {len(endpoints)}",
            ExitCode.CONFIGURATION,
        )
    return hosts.pop(), [endpoint.port for endpoint in endpoints]


def _load(data_dir: Path, members: int) -> Layout | None:
    """The layout ``data_dir`` was created with, or None for a fresh directory."""
    path = data_dir / LAYOUT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CliError(f"--data-dir: cannot read {path}: {exc}", ExitCode.CONFIGURATION) from exc
    try:
        stored = json.loads(text)
        layout = Layout(
            host=str(stored["host"]),
            ports=tuple((int(c), int(p)) for c, p in stored["ports"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(
            f"--data-dir: {path} is damaged ({type(exc).__name__}); use another directory",
            ExitCode.CONFIGURATION,
        ) from exc
    if len(layout.ports) != members:
        raise CliError(
            f"--data-dir: {data_dir} holds a {len(layout.ports)}-member etcd: start it with "
            f"--members {len(layout.ports)}, or use another directory",
            ExitCode.CONFIGURATION,
        )
    return layout


def save_layout(data_dir: Path, layout: Layout) -> None:
    """Write ``layout`` next to the data, for the next start on ``data_dir``."""
    stored = {"host": layout.host, "ports": [list(pair) for pair in layout.ports]}
    (data_dir / LAYOUT_FILE).write_text(json.dumps(stored) + "\n")


def _in_use(what: str, address: str, fix: str) -> CliError:
    return CliError(f"{what} {address} is in use (another etcd?): {fix}", ExitCode.UNREACHABLE)


def plan_layout(
    members: int,
    endpoints: str | None,
    data_dir: Path | None,
    environ: Mapping[str, str],
) -> Layout:
    """Decide every member's ports: the client addresses the user gave (``--endpoints``,
    else ``ETCD_ENDPOINTS``), else those ``data_dir`` was created with, else etcd's usual
    ports where free and free ones where not. Peer ports stay those of ``data_dir``.

    :raises CliError: for an address that is not loopback, a wrong count, or a port that was
        asked for (or that the data needs) and is taken.
    """
    told = _told(endpoints, environ)
    stored = _load(data_dir, members) if data_dir is not None else None
    notes: list[str] = []
    if told is not None:
        host, clients = _requested(*told, members)
        for port in clients:
            if not _is_free(host, port):
                fix = f"stop it, or give another port with {told[1]}"
                raise _in_use("client address", f"{host}:{port}", fix)
    elif stored is not None:
        host, clients = stored.host, [client for client, _ in stored.ports]
        for port in clients:
            if not _is_free(host, port):
                fix = "stop it, or choose other client ports with --endpoints"
                raise _in_use(f"client address kept in {data_dir}", f"{host}:{port}", fix)
    else:
        host, clients = LOOPBACK, []
        for client, _ in DEFAULT_PORTS[:members]:
            chosen = client if _is_free(host, client) else _free_port(avoid=clients)
            if chosen != client:
                notes.append(f"{host}:{client} is in use: clients use {host}:{chosen} instead")
            clients.append(chosen)
    if stored is not None:
        peers = [peer for _, peer in stored.ports]
        for peer in peers:
            if not _is_free(LOOPBACK, peer):
                fix = "stop it: the members' data names this peer address"
                raise _in_use(f"peer address kept in {data_dir}", f"{LOOPBACK}:{peer}", fix)
    else:
        peers = []
        taken = set(clients)
        for index, client in enumerate(clients):
            wanted = client + 1 if told is not None else DEFAULT_PORTS[index][1]
            fine = wanted not in taken and wanted < 65536 and _is_free(LOOPBACK, wanted)
            chosen = wanted if fine else _free_port(avoid=taken)
            if chosen != wanted and told is None:
                notes.append(f"{LOOPBACK}:{wanted} is in use: peers use {chosen} instead")
            taken.add(chosen)
            peers.append(chosen)
    clash = sorted(set(clients) & set(peers))
    if clash:
        raise CliError(
            f"client port {clash[0]} is a peer port of the data in {data_dir}: choose another",
            ExitCode.CONFIGURATION,
        )
    return Layout(host, tuple(zip(clients, peers, strict=True)), tuple(notes))
