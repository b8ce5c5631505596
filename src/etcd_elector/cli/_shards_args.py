"""Command-line syntax of ``etcd-elector shards status|observe|run`` (the commands live in
:mod:`._shards`; this module stays light so that parsing imports nothing heavy)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_parser"]

_RUN_HELP = """\
COMMAND runs once per shard this replica owns, each in its own process group, with
ETCD_ELECTOR_GROUP, ETCD_ELECTOR_SHARD, ETCD_ELECTOR_TOKEN (the shard's fencing
token), ETCD_ELECTOR_KEY and ETCD_ELECTOR_LEASE in its environment.

When a shard moves to another replica (a replica joined, left or died), only that
shard's command gets SIGTERM, then SIGKILL after the grace; the owner key is
released after it exited. Each command runs under a watchdog process, as with
'etcd-elector run': when lease renewals stop, its tree is stopped before the
session's local deadline, even while this process is frozen. On
SIGTERM/SIGINT/SIGHUP all commands are stopped and the shards released; a second
signal SIGKILLs the commands, and the shards are still released.

Every replica of a group must give the same --shards."""


def add_parser(
    command: Callable[..., argparse.ArgumentParser],
    hidden_globals: Callable[[argparse.ArgumentParser], None],
    globals_note: str,
) -> argparse.ArgumentParser:
    """Register ``shards status|observe|run`` under the top-level parser; return ``run``'s
    parser (its usage line gets the command trailer once every option is added)."""
    parent = command(
        "shards",
        "share P shards among replicas: status, observe, run a command per owned shard",
        "See 'etcd-elector shards ACTION --help'.",
    )
    if not getattr(parent, "built", True):
        return parent  # `shards` is not on this command line: nothing of it is parsed
    actions = parent.add_subparsers(
        dest="shards_command", metavar="ACTION", parser_class=type(parent)
    )
    actions.required = True

    def action(name: str, help_text: str, more: str | None = None) -> argparse.ArgumentParser:
        sub = actions.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=(more + "\n\n" if more else "") + globals_note,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        hidden_globals(sub)
        sub.add_argument("group", help="shard group name")
        return sub

    action("status", "list members, each shard's owner and token, and pending moves")
    action("observe", "print the group's members and owners, then every change")
    run = action(
        "run",
        "run COMMAND for each owned shard: etcd-elector shards run GROUP --shards N -- COMMAND",
        _RUN_HELP,
    )
    run.add_argument(
        "--shards", required=True, metavar="N|NAME,NAME...", help="shard count or names"
    )
    run.add_argument(
        "--weight", type=int, default=1, help="share relative to others, 1 to 1000 (default 1)"
    )
    run.add_argument(
        "--value",
        help="identity shown to others (default: ETCD_ELECTOR_IDENTITY, else hostname:pid)",
    )
    run.add_argument(
        "--grace",
        metavar="SECONDS",
        help="time between SIGTERM and SIGKILL (default 2; capped as for 'run')",
    )
    run.add_argument(
        "--restart",
        choices=("never", "on-failure", "always"),
        default="on-failure",
        help="when a shard's command exits by itself: never (the shard stays owned and idle "
        "until it moves), on-failure (default: restart on a non-zero exit), always",
    )
    return run
