"""Child processes whose output lines are stamped with the time the harness read them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.layout import REPO_ROOT


def child_env(**extra: str) -> dict[str, str]:
    """The environment without etcd client settings (they would override our flags)."""
    from etcd_elector.testing import without_etcd_settings

    env = without_etcd_settings(os.environ)
    env.pop("PYTHONPATH", None)
    env["ETCDCTL_API"] = "3"
    env.update(extra)
    return env


@dataclass
class Line:
    t: float  # when the harness read it (Unix time)
    text: str
    stream: str  # "out" or "err"
    child: Child | None = None

    @property
    def json(self) -> dict[str, Any] | None:
        if not self.text.startswith("{"):
            return None
        try:
            value = json.loads(self.text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class Child:
    """A child process whose output lines are stamped with the time they were read."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        on_line: Callable[[Line], None] | None = None,
        stdin: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env if env is not None else child_env()
        self.on_line = on_line
        self.want_stdin = stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[Line] = []
        self.started_at = 0.0
        self.exited_at: float | None = None
        self._event = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []
        self._waiter: asyncio.Task[None] | None = None
        self.tags: dict[str, Any] = {}

    async def start(self) -> Child:
        # The child is SIGKILLed if the harness dies, even by SIGKILL (Linux).
        from etcd_elector.testing import dies_with_parent

        self.started_at = time.time()
        self.proc = await asyncio.create_subprocess_exec(
            *dies_with_parent(self.argv),
            stdin=asyncio.subprocess.PIPE if self.want_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(REPO_ROOT),
            start_new_session=True,
            limit=1 << 20,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, "out")),
            asyncio.create_task(self._read(self.proc.stderr, "err")),
        ]
        self._waiter = asyncio.create_task(self._wait())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.exited_at is None

    async def _read(self, stream: asyncio.StreamReader, kind: str) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = Line(time.time(), raw.decode(errors="replace").rstrip("\n"), kind, self)
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)
            self._notify()

    async def _wait(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        self.exited_at = time.time()
        self._notify()

    def _notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def changed(self) -> None:
        await self._event.wait()

    async def wait_line(self, pred: Callable[[Line], bool], timeout: float, since: int = 0) -> Line:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = since
        while True:
            while index < len(self.lines):
                if pred(self.lines[index]):
                    return self.lines[index]
                index += 1
            if self.exited_at is not None and all(r.done() for r in self._readers):
                raise ChildExited(self)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no matching line within {timeout:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed(), remaining)

    async def send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    def signal(self, signum: int) -> float:
        """Send ``signum``; returns the time just before sending it."""
        t = time.time()
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)
        return t

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGKILL (if running) and reap."""
        if self.proc is None:
            return
        if self.exited_at is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._waiter), timeout)  # type: ignore[arg-type]
        for reader in self._readers:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(reader, 1.0)

    def stderr_tail(self, n: int = 5) -> str:
        return " | ".join(line.text for line in self.lines if line.stream == "err")[-600:]


class ChildExited(RuntimeError):
    def __init__(self, child: Child) -> None:
        code = child.proc.returncode if child.proc else None
        super().__init__(f"{child.name} exited (code {code}): {child.stderr_tail()}")
        self.child = child
