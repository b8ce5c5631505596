"""The leader-election implementations compared, each run as candidate processes.

A :class:`Peer` knows how to start one candidate of its implementation and how to read its
output: the line saying it leads, the line saying it lost, and where its queue lives at etcd.
"""

from __future__ import annotations

import os
import signal
import sys

from harness.children import Line, child_env
from harness.layout import ETCD3_PYTHON, ETCD3_VENV, NO_ETCD3_ENV, WORKERS
from harness.machine import etcd_binaries


def _json_event(line: Line, event: str) -> bool:
    data = line.json
    return line.stream == "out" and data is not None and data.get("event") == event


class Peer:
    """One leader-election implementation, run as a candidate process."""

    key: str = ""
    label: str = ""
    resign_signal = signal.SIGTERM
    reports_loss = False

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return child_env()

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        raise NotImplementedError

    def is_lost(self, line: Line) -> bool:
        return False

    def queue_prefix(self, election: str) -> bytes | None:
        """Keys under this prefix count queued candidates; None: wait for a 'waiting' line."""
        return None

    def is_waiting(self, line: Line) -> bool:
        return False

    def available(self) -> str | None:
        """None if it can run here, else why not."""
        return None


class OursCli(Peer):
    key = "ours_cli"
    label = "etcd-elector campaign (process)"
    reports_loss = True

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "etcd_elector.cli",
            "--json",
            "--log-level",
            "error",
            "--endpoints",
            endpoint,
            "--ttl",
            str(ttl),
            "campaign",
            election,
            "--value",
            value,
        ]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return _json_event(line, "elected")

    def is_lost(self, line: Line) -> bool:
        return _json_event(line, "lost")

    def queue_prefix(self, election: str) -> bytes | None:
        return f"/etcd-elector/{election}/".encode()


class GoElect(Peer):
    key = "go_elect"
    label = "etcdctl elect (Go, concurrency.Election)"
    resign_signal = signal.SIGINT

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [etcd_binaries()[1], "--endpoints", endpoint, "elect", election, value]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return line.stream == "out" and line.text == value

    def is_lost(self, line: Line) -> bool:
        return line.stream == "err" and "session expired" in line.text

    def queue_prefix(self, election: str) -> bytes | None:
        return f"{election}/".encode()


class GoLock(Peer):
    key = "go_lock"
    label = "etcdctl lock --ttl (Go, concurrency.Mutex)"
    resign_signal = signal.SIGINT

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [etcd_binaries()[1], "--endpoints", endpoint, "lock", "--ttl", str(ttl), election]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return line.stream == "out" and line.text.startswith(f"{election}/")

    def is_lost(self, line: Line) -> bool:
        return line.stream == "err" and "session expired" in line.text

    def queue_prefix(self, election: str) -> bytes | None:
        return f"{election}/".encode()


class PyEtcd3(Peer):
    key = "py_etcd3"
    label = "python-etcd3 0.12 Lock (thread refreshing ttl/3)"

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [
            str(ETCD3_PYTHON),
            str(WORKERS / "etcd3_candidate.py"),
            "--endpoint",
            endpoint,
            "--ttl",
            str(ttl),
            "--name",
            election,
            "--value",
            value,
        ]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return _json_event(line, "elected")

    def is_lost(self, line: Line) -> bool:
        return _json_event(line, "lost")

    def is_waiting(self, line: Line) -> bool:
        return _json_event(line, "waiting")

    def available(self) -> str | None:
        if os.environ.get(NO_ETCD3_ENV):
            return os.environ[NO_ETCD3_ENV]
        if not ETCD3_PYTHON.exists():
            return f"no virtual environment at {ETCD3_VENV} (run.py creates it unless --no-etcd3)"
        return None


PEERS: dict[str, Peer] = {p.key: p for p in (OursCli(), GoElect(), GoLock(), PyEtcd3())}
