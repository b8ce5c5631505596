"""A child process in its own process group, stopped with SIGTERM, a grace, then SIGKILL.

On Linux the child is started through a tiny exec trampoline (``python -I -S -c``) that sets
its parent-death signal to SIGKILL with ``prctl(PR_SET_PDEATHSIG)`` and then ``exec``s the
command, so a supervisor killed with SIGKILL does not leave the command running. (Setting it
in a ``preexec_fn`` would make Python ``fork()`` a process that runs gRPC's threads, which
Python warns is unsafe and which makes gRPC log on every start; the trampoline lets
``subprocess`` use ``vfork``.) Processes that the command starts itself are only reached by
the process-group signals, that is, while the supervisor is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from .. import _clock
from .._orphans import dies_with_parent
from ._exit import CliError, ExitCode

__all__ = ["ChildProcess", "check_command", "child_environment", "exit_code_of"]


_SWEEP_POLL = 0.05

# Our etcd password stays with us: the supervised command gets neither variable.
_SECRET_VARIABLES = ("ETCD_PASSWORD", "ETCDCTL_PASSWORD")
_USER_VARIABLES = ("ETCD_USER", "ETCDCTL_USER")


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the etcd password: ``ETCD_PASSWORD``, ``ETCDCTL_PASSWORD``, and
    ``ETCD_USER``/``ETCDCTL_USER`` when they carry one (``NAME:PASSWORD``)."""
    return {
        key: value
        for key, value in environ.items()
        if key not in _SECRET_VARIABLES and not (key in _USER_VARIABLES and ":" in value)
    }


def exit_code_of(returncode: int) -> int:
    """A shell-style exit code: ``128+N`` for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def check_command(argv: Sequence[str]) -> None:
    """Fail early, like a shell would, if the command cannot be found or executed.

    :raises CliError: with code 127 (not found) or 126 (not executable).
    """
    program = argv[0]
    if os.sep in program:
        if not os.path.exists(program):
            raise CliError(f"command {program!r} not found", ExitCode.NOT_FOUND)
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            raise CliError(
                f"command {program!r} is not executable (check its permissions)",
                ExitCode.NOT_EXECUTABLE,
            )
    elif shutil.which(program) is None:
        raise CliError(
            f"command {program!r} not found on PATH: give its full path or fix PATH",
            ExitCode.NOT_FOUND,
        )


class ChildProcess:
    """One started command. ``pid`` is also its process group id."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid
        self.killed = False  # SIGKILL was sent to the group
        self.terminated = False  # SIGTERM was sent to the group
        self.exit_reported = False  # for the caller: its exit was printed
        self._waiter: asyncio.Future[int] | None = None

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> ChildProcess:
        """Start ``argv`` in a new session (so its own process group)."""
        command = dies_with_parent(argv)
        stdin = asyncio.subprocess.DEVNULL if sys.stdin is None or sys.stdin.isatty() else None
        process = await asyncio.create_subprocess_exec(
            *command,
            env=dict(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        return cls(process)

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """The child's standard output, when started with ``stdout=asyncio.subprocess.PIPE``."""
        return self._process.stdout

    def send(self, signum: int) -> bool:
        """Send ``signum`` to the child itself (not its group); False if it is gone."""
        if not self.running:
            return False
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True

    @property
    def running(self) -> bool:
        return self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        code = self._process.returncode
        return None if code is None else exit_code_of(code)

    def waiter(self) -> asyncio.Future[int]:
        """One shared future for the child's exit code."""
        if self._waiter is None:
            self._waiter = asyncio.ensure_future(self._process.wait())
        return self._waiter

    async def wait(self) -> int:
        return exit_code_of(await asyncio.shield(self.waiter()))

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to the whole process group; False if nobody is left in it."""
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        if signum == signal.SIGKILL:
            self.killed = True
        elif signum == signal.SIGTERM:
            self.terminated = True
        return True

    def kill_now(self) -> None:
        """SIGKILL the group at once (the supervisor got a second signal)."""
        self.signal_group(signal.SIGKILL)

    async def stop(self, grace: float, kill_by: Callable[[], float] | None = None) -> int:
        """SIGTERM the group, wait until the grace (or ``kill_by()``, a time on
        :func:`etcd_elector._clock.now`, whichever is first) is over, then SIGKILL the group.

        ``kill_by`` is read again after each wait: a lease deadline only moves forward.
        Returns the child's exit code; stragglers of the group are SIGKILLed too.
        """
        started = _clock.now()
        if self.running:
            self.signal_group(signal.SIGTERM)
        waiter = self.waiter()
        while not waiter.done():
            limit = started + grace
            if kill_by is not None:
                limit = min(limit, kill_by())
            remaining = limit - _clock.now()
            if remaining <= 0:
                self.signal_group(signal.SIGKILL)
                await asyncio.wait({waiter})
                break
            await asyncio.wait({waiter}, timeout=remaining)
        self.signal_group(signal.SIGKILL)  # whatever the command left behind in its group
        return exit_code_of(waiter.result())

    async def sweep(self, grace: float) -> None:
        """After the command exited by itself: SIGTERM what is left of its group, SIGKILL
        it after the grace."""
        if not self.signal_group(signal.SIGTERM):
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + grace
        while loop.time() < give_up:
            await asyncio.sleep(_SWEEP_POLL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, 0)
                continue
            return
        self.signal_group(signal.SIGKILL)
