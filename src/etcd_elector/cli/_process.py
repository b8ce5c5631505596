"""A child process in its own process group, signalled by hand: how ``demo`` runs its
candidate processes.

On Linux the child is started through a tiny exec trampoline (:mod:`etcd_elector._orphans`)
that sets its parent-death signal, so a parent killed with SIGKILL does not leave it running.
``run``'s command is not started this way: it runs under a watchdog process of its own
(:mod:`._watched`), which also reaches what the command starts and holds the lease deadline.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from .._orphans import dies_with_parent

__all__ = ["ChildProcess", "child_environment", "exit_code_of"]


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


class ChildProcess:
    """One started process. ``pid`` is also its process group id."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

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

    @property
    def running(self) -> bool:
        return self._process.returncode is None

    def send(self, signum: int) -> bool:
        """Send ``signum`` to the child itself (not its group); False if it is gone."""
        if not self.running:
            return False
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to the whole process group; False if nobody is left in it."""
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def wait(self) -> int:
        """The child's exit code, shell style."""
        return exit_code_of(await self._process.wait())
