"""A process a chaos run starts (an election candidate, a shard-group replica): a Python module
run in its own session, reaching etcd only through fault proxies of its own, printing one JSON
record per line on stdout (passed to ``sink`` by a reader thread), its stderr kept in a log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from etcd_elector._orphans import dies_with_parent

from ._proxy import FaultProxy

__all__ = ["ChaosProcess"]


class ChaosProcess:
    """``python -m module --endpoints ... *args`` with a proxy per etcd member.

    The process gets the proxies' endpoints starting at member ``first``, so that processes
    spread over the members; ``proxies`` stay in the cluster's member order.
    """

    def __init__(
        self,
        ident: str,
        module: str,
        args: Sequence[str],
        endpoints: Sequence[str],
        sink: Callable[[str], None],
        log_dir: str,
        first: int = 0,
    ) -> None:
        self.ident = ident
        self.log_path = os.path.join(log_dir, f"{ident}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in finish()
        self.proxies = [FaultProxy.start(endpoint) for endpoint in endpoints]
        first %= len(self.proxies)
        ordered = self.proxies[first:] + self.proxies[:first]
        argv = [sys.executable, "-m", module, "--endpoints", ",".join(p.endpoint for p in ordered)]
        self.process = subprocess.Popen(
            dies_with_parent([*argv, *args]),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self.paused = False
        self._reader = threading.Thread(
            target=self._read, args=(sink,), name=f"etcd-elector-chaos-{ident}", daemon=True
        )
        self._reader.start()

    def _read(self, sink: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            sink(line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Signal the process, unless it has exited: once reaped, its pid is free for the
        kernel to give to any new process or thread (a long run wraps the pid space; a stale
        SIGTERM once killed the chaos runner itself, through one of its own threads)."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signum)

    def each_proxy(self, action: Callable[[FaultProxy], None]) -> None:
        for proxy in self.proxies:
            action(proxy)

    def traffic(self) -> list[int]:
        """Bytes through each member's proxy so far, in the cluster's member order."""
        return [p.bytes_to_target + p.bytes_to_client for p in self.proxies]

    def finish(self, timeout: float) -> None:
        """Ask for a clean exit; kill if it does not come. Idempotent."""
        if self._log.closed:
            return
        if self.paused:
            self.signal(signal.SIGCONT)
        self.each_proxy(lambda p: p.heal())
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.each_proxy(lambda p: p.close())
        self._log.close()
