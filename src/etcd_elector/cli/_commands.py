"""The commands that talk to one election: campaign, observe, leader, status."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .._election import Term
from .._view import LeaderInfo
from ._connect import open_client, preflight
from ._etcd_wait import reach_etcd, resolve_wait
from ._exit import ExitCode, signal_code
from ._leadership import Leadership
from ._options import Options
from ._output import Printer
from ._parser import ParsedArgs
from ._signals import Signals

__all__ = ["campaign", "leader", "observe", "status"]


async def campaign(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Campaign, hold leadership until SIGINT/SIGTERM/SIGHUP, resign; report every loss."""
    wait = resolve_wait(args)
    async with Signals() as signals, open_client(options) as client:
        if await reach_etcd(client, args.name, options, wait, signals) is None:
            assert signals.received is not None
            return signal_code(signals.received)
        leadership = Leadership(
            client, options, printer, args.name, value=args.value, once=args.once
        )

        async def hold(term: Term) -> None:
            await asyncio.Event().wait()  # until the elector cancels us

        return await leadership.run(hold, signals)


def _print_leader(printer: Printer, name: str, leader: LeaderInfo | None) -> None:
    if leader is None:
        printer.event("no_leader", name, text=f"no leader in election {name}")
    else:
        printer.event("leader", name, leader)


async def observe(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Print the leader (or none) and every change until interrupted."""
    async with Signals() as signals, open_client(options) as client:
        view = await preflight(client, args.name, options)

        async def follow() -> None:
            async for leader in view.observe():
                _print_leader(printer, args.name, leader)
                if printer.broken:
                    return

        watcher = asyncio.create_task(follow())
        stop = asyncio.create_task(signals.wait())
        try:
            await asyncio.wait({watcher, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watcher, stop):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task})
        if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
            error = watcher.exception()
            assert error is not None
            raise error
        if signals.received is not None:
            return signal_code(signals.received)
        return ExitCode.OK


async def leader(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Print the current leader; exit 3 when there is none."""
    async with open_client(options) as client:
        view = await preflight(client, args.name, options)
        current = await view.leader()
    _print_leader(printer, args.name, current)
    return ExitCode.OK if current is not None else ExitCode.NO_LEADER


async def status(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Every candidate in election order, with value, lease, remaining TTL and token."""
    async with open_client(options) as client:
        view = await preflight(client, args.name, options)
        candidates = await view.candidates()
        infos = await asyncio.gather(
            *(client.lease_time_to_live(candidate.lease) for candidate in candidates)
        )
    rows: list[dict[str, Any]] = []
    for position, (candidate, info) in enumerate(zip(candidates, infos, strict=True), 1):
        rows.append(
            {
                "position": position,
                "leader": position == 1,
                "ttl": info.ttl,
                "candidate": candidate,
            }
        )
    if printer.json_lines:
        for row in rows:
            printer.event(
                "candidate",
                args.name,
                row["candidate"],
                position=row["position"],
                leader=row["leader"],
                ttl=row["ttl"],
            )
        printer.event("status", args.name, candidates=len(rows), namespace=options.namespace)
        return ExitCode.OK
    if not rows:
        printer.text(f"election {args.name} (namespace {options.namespace}): no candidates")
        return ExitCode.OK
    printer.text(f"election {args.name} (namespace {options.namespace}): {len(rows)} candidate(s)")
    table = [("#", "", "VALUE", "LEASE", "TTL", "TOKEN")]
    for row in rows:
        entry: LeaderInfo = row["candidate"]
        table.append(
            (
                str(row["position"]),
                "leader" if row["leader"] else "",
                entry.value_text,
                entry.lease_hex,
                f"{row['ttl']}s" if row["ttl"] >= 0 else "gone",
                str(entry.token),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        printer.text(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return ExitCode.OK
