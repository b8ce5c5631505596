"""The ``etcd-elector`` command: campaign, run a command while leader, observe, leader,
status, a development etcd, a demo, a chaos soak, and a timing check (``check-config``).
``main()`` is the console-script entry point.

Errors are one line on stderr, ``etcd-elector: error: ...``, and a documented exit code (see
:mod:`etcd_elector.cli._exit`); never a traceback, except for an internal error with
``--log-level debug``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .._errors import EtcdElectorError
from ._exit import CliError, ExitCode, code_for
from ._options import Options, resolve_log_format, resolve_options
from ._output import Printer, printable
from ._parser import ParsedArgs, UsageError, parse_args

__all__ = ["main"]

log = logging.getLogger(__name__)

_LIBRARY = "etcd_elector"  # the root of our loggers
MAX_ERROR_LENGTH = 2000

# A command returns its exit code, or a coroutine that does (run on a new event loop).
Command = Callable[[ParsedArgs, Options, Printer], int | Coroutine[Any, Any, int]]


def _command(name: str) -> Command:
    # Imported on demand: a command pays only for its own imports.
    if name == "leader":
        # One blocking read over etcd's JSON gateway: no asyncio, no gRPC to load.
        from ._leader import leader

        return leader
    if name == "run":
        from ._supervisor import run

        return run
    if name == "etcd":
        from ._devserver import serve

        return serve
    if name == "demo":
        from ._demo import demo

        return demo
    if name == "chaos":
        from ._chaos import chaos

        return chaos
    if name == "shards":
        from ._shards import shards

        return shards
    if name == "check-config":
        from ._checkconfig import check_config

        return check_config
    if name in ("handoff", "pause", "resume"):
        from . import _moves

        move: Command = getattr(_moves, name)
        return move
    from . import _commands

    command: Command = getattr(_commands, name)
    return command


def _error(message: str) -> None:
    _stderr(f"error: {message}")


def _stderr(message: str) -> None:
    """One line on stderr, whatever the message quotes (argv, values, etcd's answers):
    whitespace runs become one space, other control characters are escaped, and the line
    is bounded."""
    text = printable(" ".join(str(message).split()), limit=MAX_ERROR_LENGTH)
    with contextlib.suppress(OSError):
        print(f"etcd-elector: {text}", file=sys.stderr, flush=True)


def _hint(error: EtcdElectorError, code: int) -> str:
    message = str(error)
    if code == ExitCode.UNREACHABLE and not any(
        word in message for word in ("endpoints", "TLS", "https://")
    ):
        return f"{message}: check that etcd is running and --endpoints / ETCD_ENDPOINTS"
    return message


class _PrintableFormatter(logging.Formatter):
    """Text log lines with values escaped (a traceback below keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def _configure_logging(args: ParsedArgs) -> None:
    """Log to stderr at ``--log-level``, as text or (``--log-format json``) JSON lines.

    ``debug`` (and ``info``) apply to our own loggers; gRPC and asyncio stay at warning,
    where their debug chatter ("Loaded running loop") would drown ours, unless the level
    is ``debug-all``.

    :raises ConfigurationError: for a bad ``ETCD_ELECTOR_LOG_FORMAT``.
    """
    handler = logging.StreamHandler(sys.stderr)
    if resolve_log_format(args) == "json":
        from .._logfmt import JsonLogFormatter

        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    chosen = args.log_level or "warning"
    if chosen == "debug-all":
        ours = third_party = logging.DEBUG
    else:
        ours = getattr(logging, chosen.upper())
        third_party = max(ours, logging.WARNING)
    logging.basicConfig(level=third_party, handlers=[handler])
    logging.getLogger(_LIBRARY).setLevel(ours)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = parse_args(argv)
    except UsageError as exc:
        _error(str(exc))
        return ExitCode.USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    debug = args.log_level in ("debug", "debug-all")
    if getattr(args, "password", None) is not None:
        _stderr(
            "warning: --password is visible to other local users in the process list; "
            "prefer --password-file or ETCD_PASSWORD"
        )
    try:
        _configure_logging(args)
        options = resolve_options(args)
        printer = Printer(json_lines=options.json)
        outcome = _command(args.command)(args, options, printer)
        if isinstance(outcome, int):  # `leader`: done, without asyncio
            return outcome
        import asyncio  # here, not above: `leader` never loads it

        return asyncio.run(outcome)
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except EtcdElectorError as exc:
        code = code_for(exc)
        _error(_hint(exc, code))
        if debug:
            log.debug("details", exc_info=exc)
        return code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        _error(
            f"internal error ({type(exc).__name__}: {exc}), please report it; "
            "run with --log-level debug for the traceback"
        )
        if debug:
            log.debug("traceback", exc_info=exc)
        return ExitCode.INTERNAL
