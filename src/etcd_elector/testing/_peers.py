"""Partitions between etcd members: a proxy in front of each member's peer port that knows
which member opened each connection, so that one member can be cut off from the others.

Who opened a connection is read from the kernel, not from the traffic. etcd's raft transport
names its sender in an ``X-Server-From`` header, but that does not attribute every byte: a
member receives a peer's raft messages on a stream that it opened itself (the data flows in
the response), and a follower forwards lease renewals to the leader in requests that carry
no sender at all. So the proxy asks the kernel which socket is the other end of the
connection (``sock_diag`` netlink, else ``/proc/net/tcp``) and which member process holds it
in ``/proc/<pid>/fd`` (Linux only; every address is loopback).

A *directed edge* ``(source, target)`` is every TCP connection that ``source`` opens to
``target``'s peer port. Cutting it resets those connections at once (a RST, as a firewall
rule rejecting with ``tcp-reset`` would) and every new one as soon as it is accepted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Self

from ._ports import LOOPBACK
from ._proxy import FaultProxy

__all__ = ["PeerNetwork", "socket_owner"]

_TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")

# sock_diag (linux/sock_diag.h, linux/inet_diag.h): ask for one TCP socket by its addresses.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_DIAG_REQUEST = struct.Struct("=BBBBI")  # family, protocol, extensions, pad, states
_ALL_STATES = 0xFFFFFFFF
_NO_COOKIE = 0xFFFFFFFF
# inet_diag_msg: family, state, timer, retransmits (4 bytes), a 48-byte socket id, then
# expires, receive queue, send queue, uid, inode (4 bytes each).
_INODE = struct.Struct("=I")
_INODE_AT = _NLMSG_HEADER.size + 4 + 48 + 16


def _proc_address(host: str, port: int, *, table: str) -> str:
    """``host:port`` as ``/proc/net/tcp{,6}`` writes it: the address in 32-bit words, each
    in host byte order, then the port, all hex."""
    if table.endswith("6"):
        packed = socket.inet_pton(socket.AF_INET6, host if ":" in host else f"::ffff:{host}")
    else:
        packed = socket.inet_pton(socket.AF_INET, host)
    words = (packed[i : i + 4] for i in range(0, len(packed), 4))
    address = "".join(f"{int.from_bytes(word, 'little'):08X}" for word in words)
    return f"{address}:{port:04X}"


def _diag_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The inode of the TCP socket bound to ``local`` and connected to ``remote``, asked of
    the kernel with one sock_diag request (None when it has no such socket).

    :raises OSError: when sock_diag is not available (some sandboxes).
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        if family == socket.AF_INET6:
            addresses = [socket.inet_pton(family, f"::ffff:{a[0]}") for a in (local, remote)]
        else:
            addresses = [socket.inet_pton(family, a[0]) + bytes(12) for a in (local, remote)]
        socket_id = (
            struct.pack("!HH", local[1], remote[1])
            + b"".join(addresses)
            + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
        )
        request = _DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES) + socket_id
        header = _NLMSG_HEADER.pack(
            _NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0
        )
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.send(header + request)
            answer = diag.recv(8192)
        kind = _NLMSG_HEADER.unpack_from(answer)[1]
        if kind != _NLMSG_ERROR and len(answer) >= _INODE_AT + _INODE.size:
            inode: int = _INODE.unpack_from(answer, _INODE_AT)[0]
            return inode
    return None


def _table_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """As :func:`_diag_inode`, from the text tables in ``/proc/net`` (slower: the kernel
    writes out every socket of the host)."""
    for table in _TCP_TABLES:
        if ":" in local[0] and not table.endswith("6"):
            continue
        want_local = _proc_address(*local, table=table)
        want_remote = _proc_address(*remote, table=table)
        try:
            with open(table) as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split()
                    if len(fields) > 9 and fields[1] == want_local and fields[2] == want_remote:
                        return int(fields[9])
        except OSError:
            continue
    return None


def _holds(pid: int, link: str) -> bool:
    try:
        entries = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:  # the process is gone
        return False
    for entry in entries:
        with contextlib.suppress(OSError):  # a descriptor closed while we looked
            if os.readlink(entry.path) == link:
                return True
    return False


def socket_owner(accepted: socket.socket, pids: Mapping[str, int]) -> str | None:
    """Which of ``pids`` (name to process id) opened the connection that ``accepted`` is our
    end of, or None when none of them holds the other end (or it is closed already)."""
    try:
        ours = accepted.getsockname()[:2]
        theirs = accepted.getpeername()[:2]
    except OSError:
        return None
    try:
        inode = _diag_inode(local=theirs, remote=ours)
    except OSError:
        inode = _table_inode(local=theirs, remote=ours)
    if not inode:
        return None
    link = f"socket:[{inode}]"
    for name, pid in pids.items():
        if _holds(pid, link):
            return name
    return None


class PeerNetwork:
    """One :class:`FaultProxy` in front of each member's peer port, naming each connection's
    opener, so that traffic between members can be cut edge by edge.

    Members must advertise :meth:`url` as their peer URL (``EtcdCluster.start(...,
    partitionable=True)`` does that), so that every member reaches every other one through
    its proxy. ``pids`` returns the current process id of each member by name.
    """

    def __init__(self, proxies: Mapping[str, FaultProxy]) -> None:
        self._proxies = dict(proxies)

    @classmethod
    def start(
        cls, targets: Mapping[str, str], pids: Callable[[], Mapping[str, int]]
    ) -> PeerNetwork:
        """Start a proxy for each ``name: "127.0.0.1:<peer port>"`` of ``targets``."""

        def identify(accepted: socket.socket) -> str | None:
            return socket_owner(accepted, pids())

        proxies: dict[str, FaultProxy] = {}
        try:
            for name, target in targets.items():
                proxies[name] = FaultProxy.start(target, identify=identify)
        except BaseException:
            for proxy in proxies.values():
                proxy.close()
            raise
        return cls(proxies)

    @property
    def names(self) -> list[str]:
        return list(self._proxies)

    def url(self, name: str) -> str:
        """The peer URL that member ``name`` advertises: its proxy."""
        return f"http://{LOOPBACK}:{self._proxies[name].port}"

    def proxy(self, name: str) -> FaultProxy:
        """The proxy in front of member ``name``'s peer port."""
        return self._proxies[name]

    # -- partitions ------------------------------------------------------------------------

    def cut(self, source: str, target: str) -> None:
        """Cut the edge ``source -> target``: the connections ``source`` opened to ``target``
        are reset now, and new ones at once; ``target`` can still reach ``source``.

        etcd's raft keeps working over one edge: each member opens its own streams to
        receive from a peer, and falls back to requests it opens itself to send. What a
        one-way cut stops is whatever only ``source`` opens, such as a follower's lease
        renewals forwarded to its leader.
        """
        self._require(source, target)
        if source != target:
            self._proxies[target].cut_origin(source)

    def isolate(self, name: str) -> None:
        """Cut every edge to and from ``name`` (connections of unknown origin to it too)."""
        self._require(name)
        self._proxies[name].cut_origin(None)
        for other in self._proxies:
            if other != name:
                self.cut(other, name)
                self.cut(name, other)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every edge between members of different ``groups`` (both directions)."""
        sets = [set(group) for group in groups]
        for index, group in enumerate(sets):
            self._require(*group)
            for other in sets[index + 1 :]:
                for a in group:
                    for b in other:
                        self.cut(a, b)
                        self.cut(b, a)

    def heal(self) -> None:
        """Undo every cut: members may connect to each other again."""
        for proxy in self._proxies.values():
            proxy.heal()

    def cut_edges(self) -> set[tuple[str, str]]:
        """The edges ``(source, target)`` being cut now."""
        return {
            (source, target)
            for target, proxy in self._proxies.items()
            for source in proxy.cut_origins
            if source is not None
        }

    def connections(self) -> dict[tuple[str | None, str], int]:
        """Open connections by edge, ``(source, target)``; ``source`` None: not identified."""
        return {
            (source, target): count
            for target, proxy in self._proxies.items()
            for source, count in proxy.connections_by_origin().items()
        }

    def _require(self, *names: str) -> None:
        for name in names:
            if name not in self._proxies:
                known = ", ".join(self._proxies)
                raise KeyError(f"no member named {name!r} (members: {known})")

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close every proxy. Idempotent."""
        for proxy in self._proxies.values():
            proxy.close()

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
        cut = ", ".join(f"{s}->{t}" for s, t in sorted(self.cut_edges())) or "none"
        return f"<PeerNetwork {', '.join(self._proxies)} cut: {cut}>"
