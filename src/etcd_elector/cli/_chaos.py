"""``etcd-elector chaos``: a seeded fault soak with its own etcd, checked for split brain.

Prints progress as it goes and a summary table at the end; exits 9 on any violation and
prints the seed that replays the schedule.
"""

from __future__ import annotations

import asyncio

from .._errors import ConfigurationError
from ..testing import ChaosSettings, run_chaos
from ..testing._chaos import chosen_faults
from ._durations import parse_duration
from ._exit import CliError, ExitCode
from ._options import Options
from ._output import Printer
from ._parser import ParsedArgs

__all__ = ["chaos", "parse_duration"]

DEFAULT_CHAOS_TTL = 2


async def chaos(args: ParsedArgs, options: Options, printer: Printer) -> int:
    settings = ChaosSettings(
        duration=parse_duration(args.duration),
        seed=args.seed,
        ttl=int(options.ttl) if args.ttl is not None else DEFAULT_CHAOS_TTL,
        candidates=args.candidates,
        members=args.members,
        faults=tuple(f.strip() for f in (args.faults or "").split(",") if f.strip()),
    )
    if not 2 <= settings.candidates <= 9:
        raise CliError("--candidates must be between 2 and 9", ExitCode.CONFIGURATION)
    try:
        faults = chosen_faults(settings)
    except ConfigurationError as exc:
        raise CliError(f"--faults: {exc}", ExitCode.CONFIGURATION) from exc
    printer.event(
        "chaos_started",
        seed=settings.seed,
        duration=settings.duration,
        ttl=settings.ttl,
        candidates=settings.candidates,
        members=settings.members,
        faults=list(faults),
    )
    result = await asyncio.to_thread(
        run_chaos, settings, lambda line: printer.event("progress", text=line, detail=line)
    )
    report = result.report
    # One row a line: the printer keeps every line to one line on a terminal.
    table = result.summary().splitlines()
    printer.event(
        "chaos_finished",
        text=table[0],
        seed=settings.seed,
        trials=result.trials,
        faults=dict(result.faults),
        terms=len(report.intervals),
        writes_committed=report.writes_committed,
        writes_refused=report.writes_refused,
        worst_failover=report.worst_failover,
        data_losses=report.data_losses,
        loss_reports=report.loss_reports,
        regressions_reported=report.regressions_reported,
        longest_repair=max((r.seconds for r in result.repairs), default=None),
        violations=[f"{v.kind}: {v.message}" for v in report.violations],
    )
    for row in table[1:]:
        printer.text(row)
    return ExitCode.OK if report.ok else ExitCode.VIOLATION
