"""What the demo shows: a live terminal frame (redrawn in place on a TTY), plain log lines
otherwise, and the summary table at the end. Pure formatting: no I/O besides writing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["CandidateRow", "DemoView", "RoundResult", "summary_lines"]

_CLEAR = "\x1b[H\x1b[2J"
_HIDE_CURSOR = "\x1b[?25l"
_SHOW_CURSOR = "\x1b[?25h"
_BOLD = "\x1b[1m"
_RED = "\x1b[31;1m"
_GREEN = "\x1b[32m"
_RESET = "\x1b[0m"
_RECENT = 8


@dataclass
class CandidateRow:
    name: str
    pid: int
    state: str
    position: int | None = None  # place in etcd's queue (1 = leader), from the poller
    lease_ttl: int | None = None  # seconds etcd still grants the lease, from the poller


@dataclass
class RoundResult:
    number: int
    fault: str
    old: str
    new: str | None
    failover_ms: float | None
    bound_ms: float

    @property
    def within_bound(self) -> bool:
        return self.failover_ms is not None and self.failover_ms <= self.bound_ms


def summary_lines(results: Sequence[RoundResult], overlaps: Sequence[str]) -> list[str]:
    """The closing table: round, fault, old leader, new leader, failover ms, expected bound."""
    verdict = "TWO LEADERS AT ONCE WERE SEEN" if overlaps else "never two leaders at once"
    lines = [f"summary: {len(results)} round(s), {verdict}"]
    table = [("round", "fault", "old leader", "new leader", "failover ms", "bound ms", "ok")]
    for result in results:
        table.append(
            (
                str(result.number),
                result.fault,
                result.old,
                result.new or "-",
                f"{result.failover_ms:.0f}" if result.failover_ms is not None else "-",
                f"{result.bound_ms:.0f}",
                "yes" if result.within_bound else "SLOW" if result.failover_ms else "NO",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        lines.append(
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        )
    lines.extend(f"  !!! {overlap}" for overlap in overlaps)
    return lines


@dataclass
class DemoView:
    """Renders the demo's state to ``stream``: a live frame on a TTY, else plain lines."""

    stream: TextIO
    live: bool
    title: str
    enabled: bool = True  # False with --json: the caller prints JSON events instead
    started: float = field(default_factory=time.monotonic)
    recent: list[str] = field(default_factory=list)
    status_line: str = ""

    def begin(self) -> None:
        if self.live and self.enabled:
            self._write(_HIDE_CURSOR)

    def end(self) -> None:
        if self.live and self.enabled:
            self._write(_SHOW_CURSOR + "\n")

    def log(self, message: str, *, alarm: bool = False) -> None:
        stamp = f"[{time.monotonic() - self.started:6.2f}s]"
        line = f"{stamp} {message}"
        self.recent = [*self.recent, line][-_RECENT:]
        if self.enabled and not self.live:
            self._write(("!!! " if alarm else "") + line + "\n")

    def status(self, message: str) -> None:
        self.status_line = message

    def frame(
        self,
        rows: Sequence[CandidateRow],
        results: Sequence[RoundResult],
        overlaps: Sequence[str],
    ) -> None:
        if not (self.live and self.enabled):
            return
        out = [_CLEAR, f"{_BOLD}{self.title}{_RESET}", ""]
        table = [("CANDIDATE", "PID", "STATE", "QUEUE", "LEASE TTL")]
        for row in rows:
            table.append(
                (
                    row.name,
                    str(row.pid),
                    row.state.upper() if row.state == "leader" else row.state,
                    "leader" if row.position == 1 else str(row.position or "-"),
                    f"{row.lease_ttl}s"
                    if row.lease_ttl is not None and row.lease_ttl >= 0
                    else "-",
                )
            )
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        for index, line in enumerate(table):
            text = "  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
            if index and rows[index - 1].state == "leader":
                text = f"{_GREEN}{text}{_RESET}"
            out.append(text)
        out += ["", self.status_line, "", "failovers:"]
        if not results:
            out.append("  (none yet)")
        for result in results:
            measured = f"{result.failover_ms:.0f} ms" if result.failover_ms is not None else "-"
            out.append(
                f"  round {result.number}: {result.fault:<6} {result.old} -> "
                f"{result.new or '?'}  {measured} (bound {result.bound_ms:.0f} ms)"
            )
        if overlaps:
            out += ["", *(f"{_RED}!!! {overlap}{_RESET}" for overlap in overlaps)]
        out += ["", "recent events:", *(f"  {line}" for line in self.recent), ""]
        self._write("\n".join(out))

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.enabled = False
