"""A real ``NOTIFY_SOCKET`` listener, as systemd runs one: a unix datagram socket whose
messages (``READY=1``, ``WATCHDOG=1``...) are kept with the time they arrived."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from etcd_elector import _clock

__all__ = ["Notification", "NotifyListener"]


@dataclass(frozen=True)
class Notification:
    at: float  # etcd_elector._clock.now() when it arrived
    fields: dict[str, str]

    @property
    def text(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self.fields.items())


class NotifyListener:
    """Bound to a fresh path in a short temporary directory (unix paths are short)."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
        self.path = os.path.join(self._dir, "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.1)
        self.received: list[Notification] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-listener", daemon=True)

    def __enter__(self) -> NotifyListener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self._dir)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            at = _clock.now()
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self._changed:
                self.received.append(Notification(at, fields))
                self._changed.notify_all()

    def with_field(self, key: str, value: str | None = None) -> list[Notification]:
        with self._changed:
            return [
                n
                for n in self.received
                if key in n.fields and (value is None or n.fields[key] == value)
            ]

    def wait_for(
        self, condition: Callable[[list[Notification]], bool], timeout: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not within {timeout} s: {what}: {self.received[-5:]}")
                self._changed.wait(min(left, 0.1))

    def pings(self) -> list[float]:
        """When each ``WATCHDOG=1`` arrived."""
        return [n.at for n in self.with_field("WATCHDOG", "1")]
