"""Command-line syntax: the global options (accepted before or after the subcommand) and
one subparser per command. Values are only checked for syntax here; :mod:`._options`
validates them and fills in the environment and defaults."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ._exit import EXIT_CODES_HELP, ExitCode
from ._shards_args import add_parser as add_shards_parser

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "ParsedArgs", "UsageError", "parse_args"]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
PROG = "etcd-elector"


class UsageError(Exception):
    """Bad command-line syntax; reported as one line with exit code 2."""

    code = ExitCode.USAGE


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (and raises instead of exiting)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


ParsedArgs = argparse.Namespace

_DESCRIPTION = """\
Leader election on etcd: campaign, run a command only while leader, observe the leader,
inspect candidates, or try it all with 'etcd-elector demo' (no etcd to install)."""

_ENV_HELP = """\
environment:
  ETCD_ENDPOINTS (then ETCDCTL_ENDPOINTS)  default for --endpoints
  ETCD_CACERT, ETCD_CERT, ETCD_KEY         default for --cacert, --cert, --key
  ETCD_USER                                default for --user (NAME or NAME:PASSWORD)
  ETCD_PASSWORD                            password of the user (not passed to 'run's command)
  (each ETCD_ variable above falls back to etcdctl's ETCDCTL_ one)
  ETCD_ELECTOR_NAMESPACE                   default for --namespace
  ETCD_ELECTOR_TTL                         default for --ttl
  ETCD_ELECTOR_IDENTITY                    default candidate value (else hostname:pid)
  ETCD_ELECTOR_LOG_FORMAT                  default for --log-format
  ETCD_ELECTOR_HEALTH_ADDR                 default for --health-addr (campaign, run)
"""

_RUN_HELP = """\
COMMAND runs only while this process leads, in its own process group, with
ETCD_ELECTOR_ELECTION, ETCD_ELECTOR_KEY, ETCD_ELECTOR_LEASE (hex) and
ETCD_ELECTOR_TOKEN (the fencing token) in its environment.

Safety: the command is stopped before etcd could elect anyone else. When no lease
renewal has arrived by (local lease deadline - grace), its process group gets
SIGTERM, then SIGKILL by the local deadline, which is itself a safety margin before
etcd's earliest possible expiry. On loss of leadership or on SIGTERM/SIGINT it gets
SIGTERM, then SIGKILL after the grace; a second signal SIGKILLs it at once. The
grace is capped at (granted TTL - margin - 1.5 x keepalive interval) so that normal
renewals never trigger the early stop; raise --ttl for a longer grace.

On Linux the command also gets SIGKILL if this supervisor dies (parent-death
signal). Processes the command starts itself are covered by the process-group
signals only while the supervisor is alive.

The supervisor must keep running to stop the command in time: pausing the
supervisor alone (SIGSTOP to its pid, not to the command's group) defeats the
watchdog.

With --json, the command's standard output is sent to standard error, so that
standard output carries only JSON lines."""


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options. On subparsers they default to SUPPRESS, so that a value given
    before the subcommand is not overwritten by the subparser's default."""
    group = parser.add_argument_group("global options (before or after the command)")
    default = None if top else argparse.SUPPRESS
    group.add_argument(
        "--endpoints",
        metavar="LIST",
        default=default,
        help="etcd endpoints, host:port[,host:port...] "
        "(env ETCD_ENDPOINTS, ETCDCTL_ENDPOINTS; default 127.0.0.1:2379)",
    )
    group.add_argument(
        "--cacert",
        metavar="FILE",
        default=default,
        help="verify etcd's certificate with this CA bundle (PEM); turns TLS on "
        "(env ETCD_CACERT; https:// endpoints without it use the system's CAs)",
    )
    group.add_argument(
        "--cert",
        metavar="FILE",
        default=default,
        help="client certificate (PEM) for etcd's --client-cert-auth (env ETCD_CERT)",
    )
    group.add_argument(
        "--key", metavar="FILE", default=default, help="key of --cert, PEM (env ETCD_KEY)"
    )
    group.add_argument(
        "--user",
        metavar="NAME[:PASSWORD]",
        default=default,
        help="etcd user (env ETCD_USER); a password here is visible to local users in the "
        "process list: prefer --password-file or ETCD_PASSWORD",
    )
    group.add_argument(
        "--password-file",
        metavar="FILE",
        default=default,
        help="file holding the password of --user (one trailing newline is dropped)",
    )
    group.add_argument(
        "--namespace",
        metavar="PREFIX",
        default=default,
        help="key prefix of the elections (env ETCD_ELECTOR_NAMESPACE; default /etcd-elector)",
    )
    group.add_argument(
        "--ttl",
        metavar="SECONDS",
        default=default,
        help="lease TTL in whole seconds (env ETCD_ELECTOR_TTL; default 10)",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        default=default,
        help="deadline of each etcd call (default 5)",
    )
    group.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=default,
        help="log to stderr at this level (default warning)",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default,
        help="log lines as text or as one JSON object per line with every structured field "
        "(env ETCD_ELECTOR_LOG_FORMAT; default text)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print one JSON object per line on stdout (event, time, election, key, lease, "
        "token, value, ...)",
    )


def _add_health(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--health-addr",
        metavar="HOST:PORT",
        help="serve /healthz, /leader and /metrics over HTTP on this address, e.g. "
        "127.0.0.1:8080 (env ETCD_ELECTOR_HEALTH_ADDR)",
    )


def _build() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_ENV_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_globals(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=(epilog + "\n\n" if epilog else "") + EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_globals(sub, top=False)
        return sub

    campaign = command(
        "campaign",
        "campaign for leadership and hold it until SIGINT/SIGTERM, then resign",
        "Prints 'elected' when it wins and 'lost' (with the reason) the moment leadership\n"
        "is lost, then campaigns again (with --once: exits with code 7).",
    )
    campaign.add_argument("name", help="election name")
    campaign.add_argument("--value", help="value to publish (default: hostname:pid)")
    campaign.add_argument("--once", action="store_true", help="exit with code 7 on loss")
    _add_health(campaign)

    run = command(
        "run",
        "run COMMAND only while leader: etcd-elector run NAME -- COMMAND [ARGS...]",
        _RUN_HELP,
    )
    run.add_argument("name", help="election name")
    run.add_argument("--value", help="value to publish (default: hostname:pid)")
    run.add_argument(
        "--grace",
        metavar="SECONDS",
        default="2",
        help="time between SIGTERM and SIGKILL (default 2; capped, see below)",
    )
    run.add_argument(
        "--restart",
        choices=("never", "on-failure", "always"),
        default="never",
        help="when COMMAND exits by itself while leader: never (resign and exit with its "
        "code; default), on-failure (restart on a non-zero exit), always",
    )
    run.add_argument(
        "--once", action="store_true", help="exit with code 7 on loss instead of campaigning"
    )
    _add_health(run)

    observe = command("observe", "print the leader and every change until interrupted")
    observe.add_argument("name", help="election name")

    leader = command("leader", "print the current leader (exit 3 when there is none)")
    leader.add_argument("name", help="election name")

    status = command(
        "status", "list the candidates in election order: value, lease, remaining TTL, token"
    )
    status.add_argument("name", help="election name")

    etcd = command("etcd", "start a development etcd on 127.0.0.1 and run until interrupted")
    etcd.add_argument("--members", type=int, choices=(1, 3), default=1, help="1 or 3 members")
    etcd.add_argument("--data-dir", metavar="DIR", help="keep data and logs under DIR")

    demo = command(
        "demo",
        "watch leader election at work: embedded etcd, candidates, injected faults",
        "Starts etcd and candidate processes, then kills, pauses or asks the leader to\n"
        "resign, round after round, and measures each failover. Needs no etcd install.\n"
        "The lease TTL is 2 s unless --ttl is given (ETCD_ELECTOR_TTL is not used here);\n"
        "--endpoints and --namespace are not used: the demo runs its own etcd.",
    )
    demo.add_argument("--candidates", type=int, default=3, help="number of candidates (2-9)")
    demo.add_argument("--rounds", type=int, default=4, help="fault rounds (default 4)")
    demo.add_argument("--no-tty", action="store_true", help="plain lines instead of a live view")

    check = command(
        "check-config",
        "explain timing settings: worst-case failovers, clock-drift tolerance, risky values",
        "Contacts no etcd. Uses --ttl (or ETCD_ELECTOR_TTL) and the options below; the\n"
        "etcd options are the etcd server's own flags, in seconds. Exit 0, or 4 for\n"
        "settings a session would refuse (warnings do not change the exit code).",
    )
    check.add_argument(
        "--margin", metavar="SECONDS", help="safety margin (default 15%% of the TTL, >= 0.5 s)"
    )
    check.add_argument(
        "--keepalive-interval",
        metavar="SECONDS",
        help="seconds between lease renewals (default a third of the granted TTL)",
    )
    check.add_argument(
        "--etcd-election-timeout",
        metavar="SECONDS",
        default="1.0",
        help="etcd's --election-timeout, in seconds (default 1.0)",
    )
    check.add_argument(
        "--etcd-heartbeat-interval",
        metavar="SECONDS",
        default="0.1",
        help="etcd's --heartbeat-interval, in seconds (default 0.1)",
    )

    chaos = command(
        "chaos",
        "soak the election under seeded random faults and check for two leaders at once",
        "Starts its own etcd and candidate processes that do fenced writes, injects faults\n"
        "(kills, pauses, blackholes, drops, latency, compaction, etcd member restarts, etcd\n"
        "leader kills, quorum loss with --members 3) and checks the recorded history: no\n"
        "overlapping leaders, no stale fenced write, a new leader within the bound after\n"
        "each fault, no leaked lease. The TTL is 2 s unless --ttl is given.",
    )
    chaos.add_argument("--duration", default="60s", help="how long: 90s, 30m, 1h (default 60s)")
    chaos.add_argument("--seed", type=int, default=1, help="seed of the fault schedule")
    chaos.add_argument("--candidates", type=int, default=3, help="candidate processes (2-9)")
    chaos.add_argument("--members", type=int, choices=(1, 3), default=1, help="etcd members")
    add_shards_parser(command, _add_globals, EXIT_CODES_HELP)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> ParsedArgs:
    """Parse ``argv``; everything after the first ``--`` is ``run``'s command.

    :raises UsageError: with a one-line message.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    trailing: list[str] | None = None
    if "--" in args:
        split = args.index("--")
        args, trailing = args[:split], args[split + 1 :]
    parser = _build()
    parsed = parser.parse_args(args)
    if parsed.command == "run":
        if not trailing:
            raise UsageError("run needs a command: etcd-elector run NAME -- COMMAND [ARGS...]")
        parsed.argv = trailing
    elif parsed.command == "shards" and parsed.shards_command == "run":
        if not trailing:
            raise UsageError(
                "shards run needs a command: etcd-elector shards run GROUP --shards N -- COMMAND"
            )
        parsed.argv = trailing
    elif trailing is not None:
        raise UsageError(f"'--' is only used with 'run', not with '{parsed.command}'")
    return parsed
