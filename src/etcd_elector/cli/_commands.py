"""The commands that talk to one election over gRPC: campaign, observe, status (``leader``
reads through the JSON gateway: :mod:`._leader`)."""

from __future__ import annotations

import asyncio
import logging
import time

from .._election._moves import Pause
from .._election._movewatch import MovesWatch
from .._election._term import Term
from .._election._view import AsyncElectionView
from .._errors import PermissionDenied
from .._stop_signals import COMMAND_LINE_SIGNALS, StopSignals
from .._tasks import cancel_all, first_result, unless
from ._connect import open_client, preflight
from ._exit import ExitCode, signal_code
from ._observation import print_history_loss, print_observation
from ._options import Options, parse_priority
from ._output import Printer, printable
from ._parser import ParsedArgs
from ._renewal import read_renewal

__all__ = ["campaign", "observe", "status"]

log = logging.getLogger(__name__)

VALUE_COLUMN = 60  # the status table shortens longer values; --json carries them whole


async def campaign(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Campaign, hold leadership until SIGINT/SIGTERM/SIGHUP, resign; report every loss."""
    # The elector's modules: only for the commands that lead.
    from ._etcd_wait import reach_etcd, resolve_wait
    from ._leadership import Leadership

    wait = resolve_wait(args)
    async with StopSignals(signals=COMMAND_LINE_SIGNALS) as signals, open_client(options) as client:
        if await reach_etcd(client, args.name, options, wait, signals) is None:
            assert signals.received is not None
            return signal_code(signals.received)
        leadership = Leadership(
            client,
            options,
            printer,
            args.name,
            value=args.value,
            once=args.once,
            priority=parse_priority(args.priority),
        )

        async def hold(term: Term) -> None:
            await asyncio.Event().wait()  # until the elector cancels us

        return await leadership.run(hold, signals)


async def observe(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Print the leader (or none) and every change until interrupted; say when etcd cannot be
    reached (the leader printed last may be stale), re-state the leader when it can again,
    and report when etcd's history went back."""
    async with (
        StopSignals(signals=COMMAND_LINE_SIGNALS) as signals,
        open_client(options, keep_token_file=False) as client,
    ):
        view = await preflight(client, args.name, options)

        async def follow() -> None:
            found = client.history.last_loss  # by the first read, against the token file
            if found is not None:
                print_history_loss(printer, args.name, found)
            async for event in view.observe_events():
                loss = client.history.last_loss  # leaders at or below its floor went back
                floor = loss.floor if loss is not None else 0
                print_observation(printer, args.name, event, floor=floor)
                if printer.broken:
                    return

        async def follow_pause() -> None:
            """``paused`` (who, why, since when) and ``resumed`` as they happen."""
            moves = MovesWatch(client, view.moves, _debug_line)
            watching = asyncio.ensure_future(moves.run())
            try:
                await moves.ready.wait()
                shown: Pause | None = None
                while True:
                    if moves.pause != shown:
                        if moves.pause is not None:
                            pause = moves.pause
                            printer.event(
                                "paused",
                                args.name,
                                by=pause.by,
                                reason=pause.reason or None,
                                paused_at=pause.at,
                            )
                        else:
                            printer.event("resumed", args.name)
                        shown = moves.pause
                    await moves.changed()
            finally:
                await cancel_all([watching])

        await unless(first_result(follow(), follow_pause()), signals.wait())
        if signals.received is not None:
            return signal_code(signals.received)
        return ExitCode.OK


def _debug_line(level: int, message: str, /, **fields: object) -> None:
    """What the observer's moves watch has to say (without access to the moves keys, it
    shows no pauses): a debug line."""
    log.debug("%s %s", message, fields.get("detail", ""))


async def _pause_if_readable(view: AsyncElectionView) -> Pause | None:
    """The pause in force; ``None`` also for a role that may read only the election's own
    prefix (from before planned moves), which ``status`` must keep serving."""
    try:
        return await view.paused()
    except PermissionDenied:
        log.debug("no access to %s: pauses not shown", view.moves.prefix.decode())
        return None


def _pause_fields(pause: Pause) -> dict[str, object]:
    return {"by": pause.by, "reason": pause.reason, "at": pause.at}


async def status(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Every candidate in election order, with value, lease, lease renewal and token; with a
    token file, whether etcd's history went back below it."""
    async with open_client(options, keep_token_file=False) as client:
        view = await preflight(client, args.name, options)
        candidates = await view.candidates()
        pause = await _pause_if_readable(view)
        renewals = await asyncio.gather(
            *(read_renewal(client, candidate.lease_id) for candidate in candidates)
        )
        history = client.history
    loss = history.last_loss
    if loss is not None:
        print_history_loss(printer, args.name, loss)
    floor = loss.floor if loss is not None else None  # tokens at or below went back
    log.debug(
        "read candidates prefix=%s endpoints=%s: %d",
        view.prefix.decode(),
        options.endpoints,
        len(candidates),
    )
    rows = list(zip(candidates, renewals, strict=True))
    if printer.json_lines:
        for position, (candidate, renewal) in enumerate(rows, 1):
            printer.event(
                "candidate",
                args.name,
                candidate,
                position=position,
                leader=position == 1,
                **renewal.fields(),
                below_floor=None if floor is None else candidate.token <= floor,
            )
        printer.event(
            "status",
            args.name,
            candidates=len(rows),
            namespace=options.namespace,
            revision=history.revision,
            cluster_id=None if history.cluster_id is None else f"{history.cluster_id:x}",
            token_floor=history.floor if options.token_file is not None else None,
            paused=None if pause is None else _pause_fields(pause),
        )
        return ExitCode.OK
    if pause is not None:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(pause.at))
        why = f": {printable(pause.reason)}" if pause.reason else ""
        printer.text(
            f"election {args.name} is PAUSED by {printable(pause.by)} since {since}{why} "
            f"(nobody leads until 'etcd-elector resume {args.name}')"
        )
    if not rows:
        printer.text(f"election {args.name} (namespace {options.namespace}): no candidates")
        return ExitCode.OK
    printer.text(f"election {args.name} (namespace {options.namespace}): {len(rows)} candidate(s)")
    table = [("#", "", "VALUE", "LEASE", "RENEWED", "EXPIRES", "TOKEN")]
    for position, (entry, renewal) in enumerate(rows, 1):
        table.append(
            (
                str(position),
                "leader" if position == 1 else "",
                printable(entry.value, limit=VALUE_COLUMN),
                entry.lease_hex,
                "gone" if renewal.gone else f"{renewal.renewed_ago}s ago",
                "gone" if renewal.gone else f"<={renewal.expires_within}s",
                str(entry.token)
                + (f" (<= floor {floor}: went back)" if floor and entry.token <= floor else ""),
            )
        )
    if floor:
        printer.text(
            f"etcd lost history: a token at or below {floor} is one etcd issued before, and "
            "systems that keep the highest token refuse it"
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        printer.text(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return ExitCode.OK
