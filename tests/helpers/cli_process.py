"""Drive ``python -m etcd_elector.cli`` as a subprocess and read its ``--json`` lines with
bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["CliProcess", "pid_gone", "run_cli", "wait_until"]

DEFAULT_WAIT = 20.0


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETCD_ENDPOINTS", "ETCDCTL_", "ETCD_ELECTOR_"))
        and k != "KUBERNETES_SERVICE_HOST"  # in a pod, --wait-for-etcd would default to 30 s
    }
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion."""
    return subprocess.run(
        [sys.executable, "-m", "etcd_elector.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(env),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout} s: {what}")
        time.sleep(0.02)


def pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


class CliProcess:
    """A running CLI process; its JSON stdout lines are collected by a thread. With
    ``wrapper`` (e.g. ``("timeout", "60")``) the CLI runs under that command, and ``proc``
    and :meth:`signal` are the wrapper's."""

    def __init__(
        self, *args: str, env: Mapping[str, str] | None = None, wrapper: Sequence[str] = ()
    ) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "etcd_elector.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_clean_env(env),
            start_new_session=True,  # signals from the test reach this process only
        )
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._new: queue.Queue[dict[str, Any]] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._seen = 0

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                self.events.append(record)
                self._new.put(record)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    def expect(
        self,
        event: str,
        timeout: float = DEFAULT_WAIT,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first event named ``event`` (matching ``where``) not returned before."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(self._seen, len(self.events)):
                record = self.events[index]
                if record.get("event") == event and (where is None or where(record)):
                    self._seen = index + 1
                    return record
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self._drained()):
                raise AssertionError(
                    f"no {event!r} from {' '.join(self.args)} within {timeout} s; "
                    f"exit={self.proc.poll()} events={[e.get('event') for e in self.events]} "
                    f"stderr={self.stderr_lines[-5:]}"
                )
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=min(remaining, 0.1))

    def _drained(self) -> bool:
        return not self._threads[0].is_alive()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = DEFAULT_WAIT) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code

    def close(self) -> None:
        """Kill the process (and its group) if it still runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for thread in self._threads:
            thread.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
