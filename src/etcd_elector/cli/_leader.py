"""``etcd-elector leader NAME``: one linearizable read of the leader and of its lease, printed;
exit 3 when there is none.

Health checks and scripts call it, so its start-up is most of its cost: it reads through etcd's
JSON gateway (:class:`~..etcd._gateway.GatewayClient`, the standard library only) and never
loads gRPC, asyncio or protobuf. Who leads is decided by the election's own rule
(:func:`~.._election._leader.read_leader_blocking`), the same as every other reader's.
"""

from __future__ import annotations

import logging
import time

from .._election._leader import LeaderInfo, read_leader_blocking
from .._election._names import election_prefix
from .._errors import PermissionDenied
from ..etcd._gateway import GatewayClient
from ._exit import ExitCode
from ._observation import print_leader
from ._options import Options
from ._output import Printer
from ._parser import ParsedArgs
from ._renewal import Renewal

__all__ = ["access_denied", "leader"]

log = logging.getLogger(__name__)


def leader(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Print the current leader, with how fresh its lease is; exit 3 when there is none.

    :raises TransportError: (ConnectionFailed, PermissionDenied, ...) as the read raised it.
    """
    prefix = election_prefix(options.namespace, args.name)
    with GatewayClient(options.config) as client:
        try:
            current = read_leader_blocking(client, prefix)
        except PermissionDenied as exc:
            raise access_denied(exc, options.config.username, prefix) from exc
        renewal = None
        if current is not None:
            info = client.lease_time_to_live(current.lease_id)
            renewal = Renewal.from_info(info, answered_at=time.time())
    log.debug(
        "read leader prefix=%s endpoints=%s: %s",
        prefix.decode(),
        options.endpoints,
        "none" if current is None else f"lease={current.lease_hex} token={current.token}",
    )
    show(args, printer, current, renewal)
    return ExitCode.OK if current is not None else ExitCode.NO_LEADER


def show(
    args: ParsedArgs, printer: Printer, current: LeaderInfo | None, renewal: Renewal | None
) -> None:
    """The leader as ``leader`` prints it: its value alone (``--print-value-only``), or the
    ``leader`` / ``no_leader`` line (``--json``: event)."""
    if args.print_value_only:
        if current is not None:
            printer.raw(current.value)
    else:
        print_leader(printer, args.name, current, renewal)


def access_denied(exc: PermissionDenied, user: str | None, prefix: bytes) -> PermissionDenied:
    """etcd denied reading the election at ``prefix``: say who, where, and what to grant."""
    who = f"user {user!r}" if user else "this client (no --user)"
    return PermissionDenied(
        f"etcd at {exc.endpoint} denied {who} access to {prefix.decode()} "
        "(etcdserver: permission denied): grant the user's role read access to that "
        "prefix, readwrite for campaign and run (see docs/security.md)",
        endpoint=exc.endpoint,
    )
