"""Free TCP ports on 127.0.0.1, never the same one twice within this process."""

from __future__ import annotations

import socket
import threading

__all__ = ["LOOPBACK", "free_port", "reserve_port"]

#: The only address the test kit listens on or connects to.
LOOPBACK = "127.0.0.1"

_MAX_ATTEMPTS = 200

_lock = threading.Lock()
_issued: set[int] = set()


def reserve_port(port: int) -> None:
    """Record ``port`` as taken so that :func:`free_port` never hands it out."""
    with _lock:
        _issued.add(port)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free just now and was never issued before.

    The kernel picks the port (bind to port 0); ports already handed out by this process,
    or reserved with :func:`reserve_port`, are skipped.
    """
    for _ in range(_MAX_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        with _lock:
            if port not in _issued:
                _issued.add(port)
                return port
    raise RuntimeError(f"no fresh TCP port on {LOOPBACK} after {_MAX_ATTEMPTS} attempts")
