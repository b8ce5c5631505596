"""Children that die with their parent: a command wrapper setting the parent-death signal.

A test etcd, a chaos or demo candidate must never outlive a parent that was SIGKILLed: its
atexit hooks and signal handlers never run then. On Linux the child starts through a tiny
``python -I -S -c`` step that sets ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` and execs the command.
A ``preexec_fn`` would do the same, but forces a plain ``fork()`` that is unsafe while gRPC
threads run. Elsewhere the command runs unwrapped. This reaches the child alone, not what it
starts; ``etcd-elector run`` needs more and runs its command under a watchdog process instead
(:mod:`etcd_elector.cli._watchdog`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["dies_with_parent"]

# Runs in the child: set PR_SET_PDEATHSIG (1) to SIGKILL, make sure the parent did not die
# before that, then become the command. 126/127 like a shell when it cannot be run.
_TRAMPOLINE = """\
import os, sys
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(137)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except FileNotFoundError:
    sys.stderr.write("etcd-elector: error: command %r not found\\n" % sys.argv[2])
    os._exit(127)
except OSError as exc:
    sys.stderr.write("etcd-elector: error: cannot execute %r: %s\\n" % (sys.argv[2], exc))
    os._exit(126)
"""


def dies_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that the process is SIGKILLed if this process dies (Linux)."""
    if sys.platform.startswith("linux") and sys.executable:
        return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), *argv]
    return list(argv)
