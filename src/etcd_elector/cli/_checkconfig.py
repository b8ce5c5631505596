"""``etcd-elector check-config``: what the timing settings mean, with no etcd contacted.

Prints the worst-case failover for each kind of event, how much clock-rate difference the
margin tolerates, and warnings for risky settings; exit 0, or 4 for settings a session would
refuse. The arithmetic lives in :mod:`etcd_elector._election._timing`.
"""

from __future__ import annotations

import textwrap

from .._election._timing import TimingReport, check_timing
from ._exit import ExitCode
from ._options import Options, parse_seconds
from ._output import Printer
from ._parser import ParsedArgs

__all__ = ["check_config", "render"]

_EVENTS = {
    "resign": "graceful resign",
    "crash": "leader crash",
    "partition": "leader partitioned",
    "etcd-leader-change": "etcd leader change",
}


def _seconds(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") + " s"


def render(report: TimingReport) -> str:
    """The human-readable report."""
    granted = (
        f"etcd grants {report.granted_ttl} s"
        if report.granted_ttl != report.ttl
        else "granted as asked"
    )
    lines = [
        f"ttl {report.ttl} s ({granted}), margin {_seconds(report.margin)}, "
        f"keepalive every {_seconds(report.keepalive_interval)}",
        f"etcd: election timeout {_seconds(report.election_timeout)}, heartbeat "
        f"{_seconds(report.heartbeat)}, minimum ttl {report.etcd_min_ttl} s",
        "",
        "worst-case failover (time with no leader; add the round trips):",
    ]
    for failover in report.failovers:
        trips = f"+ {failover.round_trips} round trip" + ("s" if failover.round_trips > 1 else "")
        lines.append(
            f"  {_EVENTS.get(failover.event, failover.event):<20}"
            f"{_seconds(failover.seconds):>9} {trips}"
        )
        lines += textwrap.wrap(
            failover.why, width=92, initial_indent=" " * 6, subsequent_indent=" " * 6
        )
    lines += [
        "",
        "safety:",
        f"  leader stops acting   {_seconds(report.leader_stops_after)} after its last answered "
        f"renewal was sent (ttl - margin)",
        f"  renewal headroom      {_seconds(report.renewal_headroom)} (ttl - margin - keepalive "
        f"interval): how late one renewal may be",
        f"  clock-drift tolerance {report.drift_tolerance_ppm:.0f} ppm "
        f"({report.drift_tolerance_ppm / 1e4:.3g}%): margin / ttl, how much faster",
        "                        etcd's clock may run than ours",
        "",
    ]
    if report.warnings:
        lines.append("warnings:")
        for warning in report.warnings:
            lines += textwrap.wrap(
                warning, width=92, initial_indent="  - ", subsequent_indent=" " * 4
            )
    else:
        lines.append("warnings: none")
    return "\n".join(lines)


async def check_config(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Print the consequences of ``--ttl``, ``--margin``, ``--keepalive-interval`` and etcd's
    ``--etcd-election-timeout``/``--etcd-heartbeat-interval``.

    :raises ConfigurationError: for invalid settings (exit code 4).
    """
    margin = (
        None if args.margin is None else parse_seconds(args.margin, "--margin", allow_zero=True)
    )
    interval = (
        None
        if args.keepalive_interval is None
        else parse_seconds(args.keepalive_interval, "--keepalive-interval")
    )
    report = check_timing(
        ttl=options.ttl,
        margin=margin,
        keepalive_interval=interval,
        election_timeout=parse_seconds(args.etcd_election_timeout, "--etcd-election-timeout"),
        heartbeat=parse_seconds(args.etcd_heartbeat_interval, "--etcd-heartbeat-interval"),
    )
    if options.json:
        printer.event("check_config", text="", **report.to_json())
    else:
        for line in render(report).splitlines():
            printer.text(line)
    return ExitCode.OK
