"""The supervisor's side of a command that runs under its own watchdog (:mod:`._watchdog`).

The supervisor never signals the command itself: it starts the watchdog, tells it every new
lease deadline, asks it to stop or kill the command's tree, and reads back what happened. The
deadline is enforced by the watchdog alone, so it holds while the supervisor is frozen or dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._exit import ExitCode
from ._process import exit_code_of

__all__ = ["WATCHDOG_PROGRAM", "CommandExit", "WatchedCommand"]

log = logging.getLogger(__name__)

WATCHDOG_PROGRAM = str(Path(__file__).with_name("_watchdog.py"))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True)
class CommandExit:
    """How a command ended, once no process of its tree is left."""

    code: int  # shell style: N, or 128+N after death by signal N
    signal: str | None = None  # the signal it died of, by name
    sent: str | None = None  # the strongest signal we sent it: SIGTERM or SIGKILL
    stopped_by: str | None = None  # why the watchdog began stopping it by itself, if it did
    killed: int = 0  # processes of its tree that needed SIGKILL
    started: bool = True  # False: it could not be started (code 126 or 127)


class WatchedCommand:
    """One run of the command, under one watchdog process. Use :meth:`start`."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.watchdog_pid = process.pid
        self.pid: int | None = None  # the command's own pid, once started
        self.stopped_by: str | None = None
        self.on_stopping: Callable[[str], None] | None = None
        self._process = process
        self._reader = reader
        self._writer = writer
        self._started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._returncode: int | None = None
        self._sent: str | None = None
        self._failed: int | None = None
        self._killed = 0
        self._done = False
        self._finished = asyncio.ensure_future(self._follow())

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        grace: float,
        deadline: float,
        stdout: IO[Any] | None = None,
    ) -> WatchedCommand:
        """Start the watchdog (in a session of its own), which starts ``argv``; return once
        the command runs or is known not to start."""
        ours, theirs = socket.socketpair()
        try:
            stdin = asyncio.subprocess.DEVNULL if sys.stdin is None or sys.stdin.isatty() else None
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                WATCHDOG_PROGRAM,
                str(theirs.fileno()),
                repr(grace),
                repr(deadline),
                "--",
                *argv,
                env=dict(env),
                stdin=stdin,
                stdout=stdout,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        command = cls(process, reader, writer)
        await asyncio.shield(command._started)
        return command

    @property
    def started(self) -> bool:
        return self.pid is not None

    @property
    def done(self) -> bool:
        return self._finished.done()

    # -- orders ----------------------------------------------------------------------------

    def set_deadline(self, deadline: float) -> None:
        """The lease deadline moved (a renewal): kill no earlier than this."""
        self._send(f"deadline {deadline!r}")

    def stop(self, budget: float | None = None) -> None:
        """SIGTERM the tree; the watchdog SIGKILLs it after the grace, or ``budget`` seconds
        (a drain), never past the deadline."""
        self._send("stop" if budget is None else f"stop {budget!r}")

    def kill_now(self) -> None:
        """SIGKILL the tree at once."""
        self._send("kill")

    def _send(self, line: str) -> None:
        if self._done or self._writer.is_closing():
            return
        self._writer.write(line.encode() + b"\n")

    # -- reports ---------------------------------------------------------------------------

    async def finished(self) -> CommandExit:
        """Wait until no process of the command's tree is left."""
        return await asyncio.shield(self._finished)

    async def _follow(self) -> CommandExit:
        try:
            async for raw in self._reader:
                self._note(raw.decode(errors="replace").split())
                if self._done:
                    break
        finally:
            if not self._started.done():
                self._started.set_result(False)
            self._done = True
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            status = await self._process.wait()
        return self._outcome(status)

    def _note(self, words: list[str]) -> None:
        match words:
            case ["started", pid] if pid.isdigit():
                self.pid = int(pid)
                self._started.set_result(True)
            case ["failed", code] if code.isdigit():
                self._failed = int(code)
                self._started.set_result(False)
            case ["stopping", reason]:
                self.stopped_by = reason
                if self.on_stopping is not None:
                    self.on_stopping(reason)
            case ["exited", returncode, sent]:
                self._returncode = int(returncode)
                self._sent = None if sent == "-" else sent
            case ["done", killed] if killed.isdigit():
                self._killed = int(killed)
                self._done = True
            case _:
                log.warning("unexpected line from the command's watchdog: %.80r", " ".join(words))

    def _outcome(self, status: int) -> CommandExit:
        if self._failed is not None:
            return CommandExit(self._failed, started=False)
        if self.pid is None:
            log.error(
                "the command's watchdog (pid %d) exited with status %d before starting it",
                self.watchdog_pid,
                exit_code_of(status),
            )
            return CommandExit(ExitCode.NOT_EXECUTABLE, started=False)
        if not self._done or self._returncode is None:
            # The watchdog itself was killed: its parent-death signal SIGKILLed the command.
            log.error(
                "the watchdog of the command (pid %d) died (exit status %d) before the "
                "command's tree was stopped; what the command started may still run",
                self.watchdog_pid,
                exit_code_of(status),
            )
            returncode = -signal.SIGKILL if self._returncode is None else self._returncode
        else:
            returncode = self._returncode
        died_of = _signal_name(-returncode) if returncode < 0 else None
        return CommandExit(
            exit_code_of(returncode),
            signal=died_of,
            sent=self._sent,
            stopped_by=self.stopped_by,
            killed=self._killed,
        )
