"""A Python program (an example, the README's example) running as a replica: its own process
in its own process group, as a shell starts a job, with its output lines read by threads and
every wait bounded."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

__all__ = ["Replica", "send_like_a_shell"]

WAIT = 30.0  # generous bound for one condition on a loaded machine


def send_like_a_shell(pid: int, signum: int) -> None:
    """SIGINT as Ctrl-C sends it (to the whole process group), anything else as ``kill`` does
    (to the process); both through a real shell's ``kill``."""
    name = signal.Signals(signum).name.removeprefix("SIG")
    target = f"-{os.getpgid(pid)}" if signum == signal.SIGINT else str(pid)
    subprocess.run(["sh", "-c", f"kill -{name} {target}"], check=True, timeout=10)


class Replica:
    """``python <script> <args>`` with ``env``; ``expect()`` waits for an output line."""

    def __init__(self, script: str, *args: str, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,  # see ``tell()``
            text=True,
            env=dict(env),
            start_new_session=True,  # its own group: a group signal reaches it only
        )
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._seen = 0
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def expect(self, prefix: str, timeout: float = WAIT) -> str:
        """The next output line (not returned before) that starts with ``prefix``."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(self._seen, len(self.lines)):
                if self.lines[index].startswith(prefix):
                    self._seen = index + 1
                    return self.lines[index]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and not self._readers[0].is_alive()):
                raise AssertionError(
                    f"no line starting {prefix!r} within {timeout} s; exit={self.proc.poll()} "
                    f"stdout={self.lines[-8:]} stderr={self.stderr_lines[-8:]}"
                )
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=min(remaining, 0.1))

    def tell(self, line: str) -> None:
        """Write ``line`` to the program's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the exit and for every output line."""
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def close(self) -> None:
        """Kill the process group if it still runs (a paused one too)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
