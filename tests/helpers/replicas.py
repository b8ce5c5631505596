"""Replicas of a scheduler as real processes, and bounded fault rounds against their leader.

Each replica is a subprocess whose etcd connection goes through its own ``FaultProxy``, and
whose identity (``ETCD_ELECTOR_IDENTITY``) is its name, so the test finds the leader in etcd
and hurts exactly that process: SIGKILL (then a fresh process), SIGSTOP (until another
replica leads, then SIGCONT) or a blackholed etcd connection (until another replica leads,
then healed). Every wait is bounded; every process is stopped at the end, pass or fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from etcd_elector import Client, LeaderInfo
from etcd_elector.testing import FaultProxy, dies_with_parent

__all__ = ["FAULT_KINDS", "Fault", "Replica", "ReplicaSet"]

FAULT_KINDS = ("kill", "stop", "blackhole")
LEADER_WAIT_S = 30.0
STOP_WAIT_S = 15.0
POLL_S = 0.02


@dataclass
class Replica:
    name: str
    proxy: FaultProxy
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    generation: int = 0


@dataclass(frozen=True)
class Fault:
    """One fault: what was done to which leader (and its token), and when (wall clock)."""

    kind: str
    victim: str
    token: int
    at: float


@dataclass
class ReplicaSet:
    """``count`` replicas started with ``argv(name)`` and ``env`` plus their own endpoint."""

    argv: Callable[[str], Sequence[str]]
    env: dict[str, str]
    etcd_endpoint: str
    start_proxy: Callable[[str], FaultProxy]
    election: str
    namespace: str
    directory: Path
    count: int = 3
    replicas: dict[str, Replica] = field(default_factory=dict)

    def start(self) -> ReplicaSet:
        for index in range(self.count):
            name = f"r{index}"
            proxy = self.start_proxy(self.etcd_endpoint)
            replica = Replica(name, proxy, self.directory / f"{name}.log")
            self.replicas[name] = replica
            self._launch(replica)
        return self

    def _launch(self, replica: Replica) -> None:
        replica.generation += 1
        replica.log = open(replica.log_path, "ab")  # noqa: SIM115 - closed in _reap
        replica.log.write(f"--- start {replica.generation} ---\n".encode())
        replica.log.flush()
        env = {
            **self.env,
            "ETCD_ENDPOINTS": replica.proxy.endpoint,
            "ETCD_ELECTOR_IDENTITY": replica.name,
        }
        replica.process = subprocess.Popen(
            dies_with_parent(list(self.argv(replica.name))),
            env=env,
            stdout=replica.log,
            stderr=subprocess.STDOUT,
        )

    def _reap(self, replica: Replica) -> None:
        if replica.process is not None:
            replica.process.wait(STOP_WAIT_S)
        if replica.log is not None:
            replica.log.close()
            replica.log = None

    def close(self) -> None:
        """SIGCONT and SIGTERM every replica (they resign); SIGKILL what does not exit."""
        for replica in self.replicas.values():
            replica.proxy.heal()
            process = replica.process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for replica in self.replicas.values():
            process = replica.process
            if process is None:
                continue
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
            self._reap(replica)

    def logs(self, tail: int = 4000) -> str:
        """The replicas' output (the last ``tail`` characters of each; 0: all of it)."""
        return "\n".join(
            f"==== {name} ====\n{replica.log_path.read_text(errors='replace')[-tail:]}"
            for name, replica in self.replicas.items()
        )

    # -- who leads -------------------------------------------------------------------------

    def leader(self) -> LeaderInfo | None:
        with Client(self.etcd_endpoint, timeout=5) as client:
            view = client.election_view(self.election, namespace=self.namespace)
            return view.leader()

    def wait_leader(self, *, newer_than: int = 0, timeout: float = LEADER_WAIT_S) -> LeaderInfo:
        """The leader once one with a token above ``newer_than`` leads."""
        deadline = time.monotonic() + timeout
        with Client(self.etcd_endpoint, timeout=5) as client:
            view = client.election_view(self.election, namespace=self.namespace)
            while True:
                leader = view.leader()
                if leader is not None and leader.token > newer_than:
                    return leader
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no leader newer than token {newer_than} within {timeout}s\n{self.logs()}"
                    )
                time.sleep(POLL_S)

    # -- faults ----------------------------------------------------------------------------

    def inject(self, kind: str, settled: Callable[[int], bool]) -> Fault:
        """Hurt the current leader, wait for a new one to lead and for ``settled(token)``
        (the scheduler acted under the new term), then undo what can be undone."""
        leader = self.wait_leader()
        victim = self.replicas[leader.value_text]
        process = victim.process
        assert process is not None
        at = time.time()
        if kind == "kill":
            process.send_signal(signal.SIGKILL)
        elif kind == "stop":
            process.send_signal(signal.SIGSTOP)
        elif kind == "blackhole":
            victim.proxy.blackhole()
        else:
            raise AssertionError(f"unknown fault {kind}")
        try:
            successor = self.wait_leader(newer_than=leader.token)
            self.wait_until(lambda: settled(successor.token), f"scheduler acting as {successor}")
        finally:
            if kind == "kill":
                self._reap(victim)
                self._launch(victim)
            elif kind == "stop":
                process.send_signal(signal.SIGCONT)
            else:
                victim.proxy.heal()
        return Fault(kind, victim.name, leader.token, at)

    def run_faults(self, kinds: Sequence[str], settled: Callable[[int], bool]) -> list[Fault]:
        return [self.inject(kind, settled) for kind in kinds]

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(POLL_S)


def read_records(path: Path) -> list[list[str]]:
    """The lines of a record file, split on spaces (a torn last line is dropped)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    return [line.split(" ") for line in lines[:-1] if line]  # the part after the last \n is torn


def append_record(fd: int, *fields: object) -> None:
    """One line, one write(2) on an O_APPEND file: lines of several processes never mix."""
    os.write(fd, (" ".join(str(f) for f in fields) + "\n").encode())
