"""Command-line syntax: the global options (accepted before or after the subcommand, each
only by the commands it applies to) and one subparser per command. Values are only checked
for syntax here; :mod:`._options` validates them and fills in the environment and defaults.

Help is layered: ``etcd-elector --help`` lists the global options, the environment and the
exit codes once; ``etcd-elector COMMAND --help`` shows that command's own options, with their
defaults, and names the global options it takes.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .. import __version__
from ._exit import EXIT_CODES_HELP, ExitCode
from ._shards_args import add_parser as add_shards_parser

__all__ = [
    "COMMAND_GLOBALS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "OUTPUT_FORMATS",
    "ParsedArgs",
    "UsageError",
    "parse_args",
]

LOG_LEVELS = ("debug", "info", "warning", "error", "debug-all")
LOG_FORMATS = ("text", "json")
OUTPUT_FORMATS = ("simple", "json")
PROG = "etcd-elector"
RUN_TRAILER = "-- COMMAND [ARG...]"


class UsageError(Exception):
    """Bad command-line syntax; reported as one line with exit code 2."""

    code = ExitCode.USAGE


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (and raises instead of exiting).

    ``built=False``: a command not named on this command line. It is listed in the help but
    never parsed, so its arguments are not built: argparse builds each one in full (a help
    formatter per argument), which was most of a short command's start-up (``leader``).
    """

    def __init__(self, *args: Any, built: bool = True, **kwargs: Any) -> None:
        self.built = built
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if not self.built:
            return _UNBUILT
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


ParsedArgs = argparse.Namespace
_UNBUILT = argparse.Action(option_strings=[], dest=argparse.SUPPRESS)  # stands for any of them


@dataclass(frozen=True)
class _Global:
    """A global option: its flags, ``dest`` and help (shown once, in the top-level help)."""

    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    switch: bool = False  # takes no value

    @property
    def dest(self) -> str:
        return self.flags[-1].lstrip("-").replace("-", "_")

    @property
    def shown(self) -> str:
        """How error messages name it: ``--write-out`` (``-w``)."""
        long, *short = sorted(self.flags, key=len, reverse=True)
        return long + (f" ({short[0]})" if short else "")


GLOBALS = (
    _Global(
        ("--endpoints",),
        "etcd endpoints, host:port[,host:port...] (env ETCD_ENDPOINTS, ETCDCTL_ENDPOINTS; "
        "default 127.0.0.1:2379)",
        "LIST",
    ),
    _Global(
        ("--cacert",),
        "verify etcd's certificate with this CA bundle (PEM); turns TLS on (env ETCD_CACERT; "
        "default: the system's CAs for https:// endpoints)",
        "FILE",
    ),
    _Global(
        ("--cert",),
        "client certificate (PEM) for etcd's --client-cert-auth (env ETCD_CERT; default none)",
        "FILE",
    ),
    _Global(("--key",), "key of --cert, PEM (env ETCD_KEY; default none)", "FILE"),
    _Global(
        ("--server-name",),
        "the name etcd's TLS certificate must carry, when it is not the endpoint's host "
        "(default: the endpoint's host)",
        "NAME",
    ),
    _Global(
        ("--user",),
        "etcd user (env ETCD_USER; default none); a password here is visible to local users "
        "in the process list: prefer --password-file or ETCD_PASSWORD",
        "NAME[:PASSWORD]",
    ),
    _Global(
        ("--password",),
        "password of --user, like etcdctl's (default none); visible to local users in the "
        "process list, so it warns: prefer --password-file or ETCD_PASSWORD",
        "PASSWORD",
    ),
    _Global(
        ("--password-file",),
        "file holding the password of --user, one trailing newline dropped (default none)",
        "FILE",
    ),
    _Global(
        ("--namespace",),
        "key prefix of the elections, one spelling: /apps/x, not /apps/x/; '/' is the root "
        "(env ETCD_ELECTOR_NAMESPACE; default /etcd-elector)",
        "PREFIX",
    ),
    _Global(("--ttl",), "lease TTL in whole seconds (env ETCD_ELECTOR_TTL; default 10)", "SECONDS"),
    _Global(("--timeout",), "deadline of each etcd call, 0.01 to 3600 (default 5)", "SECONDS"),
    _Global(
        ("--log-level",),
        "log to stderr at this level; debug is ours only, debug-all adds gRPC's and "
        "asyncio's (default warning)",
        "LEVEL",
        LOG_LEVELS,
    ),
    _Global(
        ("--log-format",),
        "log lines as text or as one JSON object per line with every structured field "
        "(env ETCD_ELECTOR_LOG_FORMAT; default text)",
        "FORMAT",
        LOG_FORMATS,
    ),
    _Global(
        ("--json",),
        "print one JSON object per line on stdout, the same as -w json (default: text)",
        switch=True,
    ),
    _Global(
        ("-w", "--write-out"),
        "output format, as etcdctl names it: simple (text) or json (default simple)",
        "FORMAT",
        OUTPUT_FORMATS,
    ),
)
_BY_DEST = {option.dest: option for option in GLOBALS}

_TALKS_TO_ETCD = (
    "endpoints",
    "cacert",
    "cert",
    "key",
    "server_name",
    "user",
    "password",
    "password_file",
    "namespace",
    "timeout",
)
_OUTPUT = ("log_level", "log_format", "json", "write_out")
# The global options each command takes; any other is a usage error, not silently ignored.
COMMAND_GLOBALS: dict[str, tuple[str, ...]] = {
    "campaign": (*_TALKS_TO_ETCD, "ttl", *_OUTPUT),
    "run": (*_TALKS_TO_ETCD, "ttl", *_OUTPUT),
    "observe": (*_TALKS_TO_ETCD, *_OUTPUT),
    "leader": (*_TALKS_TO_ETCD, *_OUTPUT),
    "status": (*_TALKS_TO_ETCD, *_OUTPUT),
    "handoff": (*_TALKS_TO_ETCD, *_OUTPUT),
    "pause": (*_TALKS_TO_ETCD, *_OUTPUT),
    "resume": (*_TALKS_TO_ETCD, *_OUTPUT),
    "etcd": ("endpoints", *_OUTPUT),  # where it listens
    "demo": ("ttl", *_OUTPUT),
    "check-config": ("ttl", *_OUTPUT),
    "chaos": ("ttl", *_OUTPUT),
    "shards": (*_TALKS_TO_ETCD, "ttl", *_OUTPUT),
}
_WHY_NOT = {
    "observe": "it holds no lease",
    "leader": "it holds no lease",
    "status": "it holds no lease",
    "handoff": "it holds no lease",
    "pause": "it holds no lease",
    "resume": "it holds no lease",
    "etcd": "it starts an etcd of its own, without TLS or users",
    "demo": "it runs an etcd of its own, without TLS or users",
    "chaos": "it runs an etcd of its own, without TLS or users",
    "check-config": "it contacts no etcd",
}

_DESCRIPTION = """\
Leader election on etcd: campaign, run a command only while leader, observe the leader,
inspect candidates, or try it all with 'etcd-elector demo' (no etcd to install).
'etcd-elector COMMAND --help' shows a command's own options."""

_ENV_HELP = """\
environment:
  ETCD_ENDPOINTS (then ETCDCTL_ENDPOINTS)  default for --endpoints
  ETCD_CACERT, ETCD_CERT, ETCD_KEY         default for --cacert, --cert, --key
  ETCD_USER                                default for --user (NAME or NAME:PASSWORD)
  ETCD_PASSWORD                            password of the user (not passed to 'run's command)
  (each ETCD_ variable above falls back to etcdctl's ETCDCTL_ one)
  ETCD_ELECTOR_NAMESPACE                   default for --namespace
  ETCD_ELECTOR_TTL                         default for --ttl (campaign, run, check-config)
  ETCD_ELECTOR_IDENTITY                    default candidate value (else hostname:pid)
  ETCD_ELECTOR_LOG_FORMAT                  default for --log-format
  ETCD_ELECTOR_HEALTH_ADDR                 default for --health-addr (campaign, run)
  ETCD_ELECTOR_WAIT_FOR_ETCD               default for --wait-for-etcd (campaign, run)
  ETCD_ELECTOR_TOKEN_FILE                  default for --token-file
  NOTIFY_SOCKET, WATCHDOG_USEC             set by systemd (Type=notify, WatchdogSec=): campaign
                                           and run send READY=1 and watchdog pings
"""

_RUN_HELP = """\
COMMAND runs only while this process leads, in its own process group, with
ETCD_ELECTOR_ELECTION, ETCD_ELECTOR_KEY, ETCD_ELECTOR_LEASE (hex) and
ETCD_ELECTOR_TOKEN (the fencing token) in its environment.

Safety: the command is stopped before etcd could elect anyone else. It runs under a
small watchdog process that holds the local lease deadline: when no lease renewal
has arrived by (deadline - grace), every process of the command's tree gets
SIGTERM, then SIGKILL by the deadline, which is itself a safety margin before
etcd's earliest possible expiry. The watchdog runs in a session of its own, so
this holds even if the supervisor is frozen (SIGSTOP, Ctrl-Z); if the supervisor
dies, the watchdog stops the tree at once. The tree includes processes that left
the command's process group or session (double fork, setsid); work handed to
another service (systemd-run, at, ssh, a container runtime) is out of reach. If
the watchdog itself is SIGKILLed, the command still gets SIGKILL (its
parent-death signal), but what the command started does not.

On loss of leadership or on SIGTERM/SIGINT/SIGHUP the tree gets SIGTERM, then
SIGKILL after the grace; a second signal SIGKILLs it at once. Either way the
supervisor then withdraws from the election (resigns, revokes its lease) before
it exits. The grace is capped at (granted TTL - margin - 1.5 x keepalive
interval) so that normal renewals never trigger the early stop; raise --ttl for a
longer grace.

With --restart on-failure or always, a command that fails --max-failures times
within --failure-window gives the term up: the supervisor resigns and campaigns
again behind the other candidates, so a healthy replica can take over.

With --json, the command's standard output is sent to standard error, so that
standard output carries only JSON lines."""

_LEADER_HELP = """\
The line also says how long ago etcd last renewed the leader's lease (granted TTL -
remaining TTL) and when the lease expires at the latest: a leader that was killed
stays leader, as etcd sees it, until then."""

_STATUS_HELP = """\
RENEWED is how long ago etcd last renewed each candidate's lease (granted TTL -
remaining TTL), EXPIRES when the lease expires at the latest: a candidate that was
killed stays in the election, as etcd sees it, until then."""


def _add_global(parser: argparse._ActionsContainer, option: _Global, *, top: bool) -> None:
    """On the top parser, a global option defaults to None (False for a switch) and shows in
    the help; on a subparser it is hidden and defaults to SUPPRESS, so that a value given
    before the subcommand is not overwritten by the subparser's default."""
    extra: dict[str, object] = {
        "dest": option.dest,
        "help": option.help if top else argparse.SUPPRESS,
    }
    if option.switch:
        extra["action"] = "store_true"
        extra["default"] = False if top else argparse.SUPPRESS
    else:
        extra["default"] = None if top else argparse.SUPPRESS
        extra["metavar"] = option.metavar
        if option.choices:
            extra["choices"] = option.choices
    parser.add_argument(*option.flags, **extra)  # type: ignore[arg-type]


def _hidden_globals(parser: argparse.ArgumentParser) -> None:
    """Every global option, accepted after the command too, described only in the top help."""
    for option in GLOBALS:
        _add_global(parser, option, top=False)


def _globals_note(name: str) -> str:
    takes = ", ".join(_BY_DEST[dest].flags[-1] for dest in COMMAND_GLOBALS[name])
    listed = textwrap.fill(takes, width=78, initial_indent="  ", subsequent_indent="  ")
    return f"global options it takes, before or after '{name}' (see '{PROG} --help'):\n{listed}"


def _add_health(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--health-addr",
        metavar="HOST:PORT",
        help="serve /live, /ready, /leader, /healthz and /metrics over HTTP on this address, e.g. "
        "127.0.0.1:8080 (env ETCD_ELECTOR_HEALTH_ADDR; default: not served)",
    )


def _add_priority(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--priority",
        metavar="N",
        help="0 (never lead: a standby) to 1000000; the highest-priority candidate leads, "
        "a leader hands off to a higher one as it queues (default 1)",
    )


def _add_wait_for_etcd(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-for-etcd",
        metavar="DURATION",
        help="keep retrying an unreachable etcd at start for this long (90s, 5m), then exit 5 "
        "(env ETCD_ELECTOR_WAIT_FOR_ETCD; default 0, or 30s in Kubernetes)",
    )


def _add_token_file(parser: argparse.ArgumentParser, *, keeps: bool) -> None:
    """``--token-file`` (env ETCD_ELECTOR_TOKEN_FILE) and, for commands that lead,
    ``--accept-history-reset``; docs/cli.md says what they do at length."""
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help=(
            "highest token kept across restarts (default none)"
            if keeps
            else "highest token a candidate kept (default none)"
        ),
    )
    if keeps:
        parser.add_argument(
            "--accept-history-reset",
            action="store_true",
            help="accept etcd's history as it is: drop the token floor",
        )


def _build(named: frozenset[str] | None = None) -> argparse.ArgumentParser:
    """The parser; of the commands, only those ``named`` (any word of the command line) are
    built in full, or all of them."""
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]",
        description=_DESCRIPTION,
        epilog=_ENV_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", parser_class=_Parser
    )
    commands.required = True
    group = parser.add_argument_group(
        "global options (before or after the command; each command takes those that apply)"
    )
    for option in GLOBALS:
        _add_global(group, option, top=True)

    def command(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        if named is not None and name not in named:
            return commands.add_parser(name, help=help_text, add_help=False, built=False)
        sub = commands.add_parser(
            name,
            prog=f"{PROG} {name}",
            help=help_text,
            description=help_text,
            epilog=(epilog + "\n\n" if epilog else "") + _globals_note(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _hidden_globals(sub)
        return sub

    campaign = command(
        "campaign",
        "campaign for leadership and hold it until SIGINT/SIGTERM/SIGHUP, then resign",
        "Prints 'elected' when it wins and 'lost' (with the reason) the moment leadership\n"
        "is lost, then campaigns again (with --once: exits with code 7).",
    )
    campaign.add_argument("name", help="election name")
    campaign.add_argument(
        "--value",
        help="value to publish, printable text (default: ETCD_ELECTOR_IDENTITY, else hostname:pid)",
    )
    campaign.add_argument(
        "--once", action="store_true", help="exit with code 7 on loss (default: campaign again)"
    )
    _add_priority(campaign)
    _add_health(campaign)
    _add_wait_for_etcd(campaign)
    _add_token_file(campaign, keeps=True)

    run = command(
        "run",
        f"run COMMAND only while leader: {PROG} run NAME {RUN_TRAILER}",
        _RUN_HELP,
    )
    run.add_argument("name", help="election name")
    run.add_argument(
        "--value",
        help="value to publish, printable text (default: ETCD_ELECTOR_IDENTITY, else hostname:pid)",
    )
    run.add_argument(
        "--grace",
        metavar="SECONDS",
        help="time between SIGTERM and SIGKILL (default 2; capped, see below)",
    )
    run.add_argument(
        "--drain",
        metavar="SECONDS",
        help="on a planned stop (SIGTERM, handoff, pause): SIGTERM the command, wait up to "
        "this long for it to exit, then SIGKILL, and only then release leadership; never "
        "past the lease deadline (default: --grace)",
    )
    _add_priority(run)
    run.add_argument(
        "--restart",
        choices=("never", "on-failure", "always"),
        default="never",
        help="when COMMAND exits by itself while leader: never (resign and exit with its "
        "code; default), on-failure (restart on a non-zero exit), always",
    )
    run.add_argument(
        "--max-failures",
        metavar="N",
        help="with --restart: give the term up (resign, campaign again) after N failures "
        "within --failure-window (default 5; 0 never gives up)",
    )
    run.add_argument(
        "--failure-window",
        metavar="DURATION",
        help="the window of --max-failures (default 5m)",
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="exit with code 7 on loss (default: campaign again)",
    )
    _add_health(run)
    _add_wait_for_etcd(run)
    _add_token_file(run, keeps=True)

    observe = command("observe", "print the leader and every change until interrupted")
    observe.add_argument("name", help="election name")
    _add_token_file(observe, keeps=False)

    leader = command(
        "leader",
        "print the current leader (exit 3 when there is none)",
        _LEADER_HELP,
    )
    leader.add_argument("name", help="election name")
    leader.add_argument(
        "--print-value-only",
        action="store_true",
        help="print only the leader's value, as etcdctl does: its exact bytes when stdout "
        "is a pipe or a file, escaped on a terminal (default: the whole line)",
    )

    status = command(
        "status",
        "list the candidates in election order: value, lease, lease renewal, token",
        _STATUS_HELP,
    )
    status.add_argument("name", help="election name")
    _add_token_file(status, keeps=False)

    handoff = command(
        "handoff",
        "ask the leader to hand off (drained) to --to, or to the next in line",
        "Waits until another candidate leads and prints it. The leader carries the request\n"
        "out: its work is drained, then the candidate whose value is VALUE leads next (if it\n"
        "is gone by then, the next in line). Exit 3: no leader; 11: --to names no candidate;\n"
        "12: not carried out within --wait (the request is withdrawn).",
    )
    handoff.add_argument("name", help="election name")
    handoff.add_argument(
        "--to",
        metavar="VALUE",
        help="the value of the candidate to lead next (default: the next in line)",
    )
    handoff.add_argument(
        "--wait", metavar="SECONDS", help="how long to wait for the new leader (default 60)"
    )

    pause = command(
        "pause",
        "pause the election: the leader drains and steps down, nobody leads until resume",
        "Waits until no candidate holds a key (etcdctl elect -l shows no leader either).\n"
        "Candidates stay and say they are paused. Exit 12: a key is still held after --wait\n"
        "(the pause stays in force).",
    )
    pause.add_argument("name", help="election name")
    pause.add_argument(
        "--reason", metavar="TEXT", help="why, shown by status and in events (default none)"
    )
    pause.add_argument(
        "--wait", metavar="SECONDS", help="how long to wait for no leader (default 60)"
    )

    resume = command("resume", "lift a pause: candidates campaign again")
    resume.add_argument("name", help="election name")

    etcd = command(
        "etcd",
        "start a development etcd on 127.0.0.1 and run until interrupted",
        "Listens on --endpoints (or ETCD_ENDPOINTS): one loopback address per member.\n"
        "Without them: 127.0.0.1:2379 (and 22379, 32379 for --members 3) where free,\n"
        "else a free port, and it says which. Peers use the next port (2380...).\n"
        "With --data-dir the data stays in DIR: start again with the same DIR (and the\n"
        "same --members) and it comes back, on the same ports unless told otherwise.",
    )
    etcd.add_argument(
        "--members", type=int, choices=(1, 3), default=1, help="1 or 3 members (default 1)"
    )
    etcd.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep data and logs in DIR, across restarts (default: a temporary directory, "
        "removed at exit)",
    )

    demo = command(
        "demo",
        "watch leader election at work: embedded etcd, candidates, injected faults",
        "Starts etcd and candidate processes, then kills, pauses or asks the leader to\n"
        "resign, round after round, and measures each failover. Needs no etcd install.\n"
        "The lease TTL is 2 s unless --ttl is given (ETCD_ELECTOR_TTL is not used here).",
    )
    demo.add_argument(
        "--candidates",
        type=int,
        default=3,
        metavar="N",
        help="number of candidates, 2 to 9 (default 3)",
    )
    demo.add_argument("--rounds", type=int, default=4, metavar="N", help="fault rounds (default 4)")
    demo.add_argument(
        "--no-tty",
        action="store_true",
        help="plain lines instead of a live view (default: a live view on a terminal)",
    )

    check = command(
        "check-config",
        "explain timing settings: worst-case failovers, clock-drift tolerance, risky values",
        "Contacts no etcd. Uses --ttl (or ETCD_ELECTOR_TTL) and the options above; the\n"
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
        "(kills, pauses, blackholes, drops, latency, compaction, etcd member restarts, etcd's\n"
        "data wiped (one member) or restored from an older backup, each repaired by moving\n"
        "the revision past every token seen; with --members 3 also etcd leader kills, quorum\n"
        "loss, and cutting the member a leader or standby uses off from its peers) and\n"
        "checks the recorded history: no overlapping leaders, no stale fenced write, no\n"
        "token or revision that went back unreported, every data loss reported, a new\n"
        "leader within the bound after each fault, no leaked lease. The TTL is 2 s unless\n"
        "--ttl is given.",
    )
    chaos.add_argument(
        "--duration",
        metavar="DURATION",
        default="60s",
        help="how long: 90s, 30m, 1h (default 60s)",
    )
    chaos.add_argument(
        "--seed", type=int, default=1, metavar="SEED", help="seed of the fault schedule (default 1)"
    )
    chaos.add_argument(
        "--candidates",
        type=int,
        default=3,
        metavar="N",
        help="candidate processes, 2 to 9 (default 3)",
    )
    chaos.add_argument(
        "--members", type=int, choices=(1, 3), default=1, help="etcd members (default 1)"
    )
    chaos.add_argument(
        "--faults",
        metavar="LIST",
        help="only these faults, comma-separated, e.g. partition_leader_member,"
        "partition_standby_member (default: every fault that fits --members; a wrong name "
        "gets the list)",
    )

    shards_run = add_shards_parser(command, _hidden_globals, _globals_note("shards"))

    # Last, so that they list every option of 'run'.
    for runs in (run, shards_run):
        runs.usage = runs.format_usage().removeprefix("usage: ").rstrip() + " " + RUN_TRAILER
    return parser


def _reject_foreign_globals(parsed: ParsedArgs) -> None:
    """A global option the command does not use is an error, not silently ignored."""
    takes = COMMAND_GLOBALS[parsed.command]
    for option in GLOBALS:
        if getattr(parsed, option.dest, None) in (None, False) or option.dest in takes:
            continue
        why = _WHY_NOT.get(parsed.command, "it does not use it")
        raise UsageError(
            f"{option.shown} does not apply to '{parsed.command}': {why} "
            f"(see '{PROG} {parsed.command} --help')"
        )


def _check_output(parsed: ParsedArgs) -> None:
    """``--json`` and ``-w json`` mean the same; ``-w simple`` contradicts ``--json``."""
    if parsed.json and parsed.write_out == "simple":
        raise UsageError("--json and -w simple contradict each other: give one")
    parsed.json = bool(parsed.json or parsed.write_out == "json")
    if getattr(parsed, "print_value_only", False) and parsed.json:
        raise UsageError(
            "--print-value-only prints the bare value: leave out --json / -w json "
            "(JSON carries the exact bytes in value_base64)"
        )


def parse_args(argv: Sequence[str] | None = None) -> ParsedArgs:
    """Parse ``argv``; everything after the first ``--`` is ``run``'s command.

    :raises UsageError: with a one-line message.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    trailing: list[str] | None = None
    if "--" in args:
        split = args.index("--")
        args, trailing = args[:split], args[split + 1 :]
    parser = _build(frozenset(args))
    parsed = parser.parse_args(args)
    if parsed.command == "run":
        if not trailing:
            raise UsageError(f"run needs a command: {PROG} run NAME {RUN_TRAILER}")
        parsed.argv = trailing
    elif parsed.command == "shards" and parsed.shards_command == "run":
        if not trailing:
            raise UsageError(
                f"shards run needs a command: {PROG} shards run GROUP --shards N {RUN_TRAILER}"
            )
        parsed.argv = trailing
    elif trailing is not None:
        raise UsageError(
            f"'--' is only used with 'run' and 'shards run', not with '{parsed.command}'"
        )
    _reject_foreign_globals(parsed)
    _check_output(parsed)
    return parsed
