"""Exit codes of the ``etcd-elector`` command, and which error maps to which.

code     meaning
-------  ----------------------------------------------------------------------------
0        success
2        usage error: unknown option, missing argument, no command after ``--``
3        ``leader``: the election has no leader
4        configuration error: bad endpoints, name, namespace, TTL, timeout or grace, a
         missing or unusable certificate file, a user without a password, a value etcd
         refuses (over its --max-request-bytes)
5        etcd cannot be reached, or the TLS handshake failed (or, for ``etcd``/``demo``,
         cannot be started)
6        etcd refused our credentials or our user lacks permission
7        leadership was lost (``campaign --once``, ``run --once``)
8        ``demo``: a round did not finish or two leaders were seen at once
9        ``chaos``: the history checker found a violation
10       etcd's database is full (NOSPACE alarm): ``campaign --once`` and ``run --once``
         stop campaigning (without ``--once`` they keep trying until an operator frees space)
11       ``handoff --to``: no candidate other than the leader has that value
12       ``handoff``/``pause``: the move was not carried out within ``--wait``
70       internal error: a bug, please report it (traceback with --log-level debug)
126      ``run``: the command exists but cannot be executed
127      ``run``: the command was not found
N        ``run``: the command exited by itself with code N (it may overlap the above)
128+N    stopped by signal N (130 for SIGINT, 143 for SIGTERM); under ``run``, also
         the command's own death by signal N
"""

from __future__ import annotations

import enum

from .._errors import (
    AuthenticationFailed,
    ConfigurationError,
    DatabaseSpaceExceeded,
    EtcdElectorError,
    LeadershipLost,
    PermissionDenied,
    RequestRejected,
    TransportError,
)

__all__ = ["EXIT_CODES_HELP", "CliError", "ExitCode", "code_for", "signal_code"]


class ExitCode(enum.IntEnum):
    OK = 0
    USAGE = 2
    NO_LEADER = 3
    CONFIGURATION = 4
    UNREACHABLE = 5
    AUTH = 6
    LOST = 7
    DEMO_FAILED = 8
    VIOLATION = 9
    NO_SPACE = 10
    NO_SUCH_CANDIDATE = 11
    MOVE_TIMED_OUT = 12
    INTERNAL = 70
    NOT_EXECUTABLE = 126
    NOT_FOUND = 127


EXIT_CODES_HELP = """\
exit codes:
  0      success
  2      usage error (unknown option, missing argument, no command after --)
  3      leader: the election has no leader
  4      configuration error (endpoints, name, namespace, TTL, timeout, grace,
         certificate files, credentials, a value over etcd's size limit)
  5      etcd cannot be reached or TLS failed (etcd/demo: cannot be started)
  6      etcd refused the credentials, or permission denied
  7      leadership lost (campaign --once, run --once)
  8      demo: a round did not finish, or two leaders were seen at once
  9      chaos: the checker found a violation (overlap, stale write, slow recovery, leak)
  10     etcd's database is full, NOSPACE alarm (campaign --once, run --once)
  11     handoff --to: no candidate other than the leader has that value
  12     handoff, pause: the move was not carried out within --wait
  70     internal error (please report; traceback with --log-level debug)
  126    run: the command cannot be executed
  127    run: the command was not found
  N      run: the command exited by itself with code N
  128+N  stopped by signal N (130 SIGINT, 143 SIGTERM); run: command killed by signal N
"""


class CliError(Exception):
    """An error the CLI reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def signal_code(signum: int) -> int:
    """The shell's convention for "stopped by signal N"."""
    return 128 + signum


def code_for(error: BaseException) -> int:
    """The exit code for an error raised by the library (or the CLI)."""
    if isinstance(error, CliError):
        return error.code
    if isinstance(error, ConfigurationError | RequestRejected):
        return ExitCode.CONFIGURATION
    if isinstance(error, AuthenticationFailed | PermissionDenied):
        return ExitCode.AUTH
    if isinstance(error, DatabaseSpaceExceeded):
        return ExitCode.NO_SPACE
    if isinstance(error, TransportError):
        return ExitCode.UNREACHABLE
    if isinstance(error, LeadershipLost):
        return ExitCode.LOST
    if isinstance(error, EtcdElectorError):
        return ExitCode.UNREACHABLE
    return ExitCode.INTERNAL
