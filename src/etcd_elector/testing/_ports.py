"""Free TCP ports on 127.0.0.1, never the same one twice within this process.

The ports are picked outside the kernel's ephemeral range (``ip_local_port_range``) where
there is room: a port from inside it (what binding to port 0 gives) can be taken as the source
port of any outgoing connection between our check and etcd's own bind (or its restart), and
etcd then exits with "address already in use" (seen in CI).
"""

from __future__ import annotations

import functools
import random
import socket
import threading
from pathlib import Path

__all__ = ["LOOPBACK", "free_port", "reserve_port"]

#: The only address the test kit listens on or connects to.
LOOPBACK = "127.0.0.1"

_MAX_ATTEMPTS = 200
#: Below this, ports belong to well-known and registered services more often.
_LOWEST = 10_000
_HIGHEST = 65_535
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")

_lock = threading.Lock()
_issued: set[int] = set()
_random = random.Random()


def reserve_port(port: int) -> None:
    """Record ``port`` as taken so that :func:`free_port` never hands it out."""
    with _lock:
        _issued.add(port)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free just now and was never issued before.

    Outside the ephemeral range when the system leaves room for it (else the kernel picks
    one, binding to port 0); ports already handed out by this process, or reserved with
    :func:`reserve_port`, are skipped.
    """
    candidates = _outside_ephemeral()
    for _ in range(_MAX_ATTEMPTS):
        port = _random.choice(candidates) if candidates else _kernel_pick()
        with _lock:
            if port in _issued or (candidates and not _bindable(port)):
                continue
            _issued.add(port)
            return port
    raise RuntimeError(f"no fresh TCP port on {LOOPBACK} after {_MAX_ATTEMPTS} attempts")


@functools.cache
def _outside_ephemeral() -> tuple[int, ...]:
    """The ports from ``_LOWEST`` up that no outgoing connection takes by itself."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return ()  # not Linux, or unreadable: the kernel's pick
    below = range(_LOWEST, max(_LOWEST, low))
    above = range(min(high + 1, _HIGHEST + 1), _HIGHEST + 1)
    return (*below, *above)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _kernel_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port
