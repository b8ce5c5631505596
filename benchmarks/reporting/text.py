"""Peer labels, number formats and Markdown tables for BENCHMARKS.md."""

# ruff: noqa: RUF001, RUF002  (the report uses the real multiplication sign)

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

LABELS = {
    "ours_cli": "etcd-elector CLI",
    "ours_inproc": "etcd-elector in-process",
    "go_elect": "etcdctl elect (Go)",
    "go_lock": "etcdctl lock (Go)",
    "py_etcd3": "python-etcd3 Lock",
    "ours": "etcd-elector transport",
    "bare": "bare grpc.aio stubs",
    "bare_dm": "bare + deadline + metadata",
}


class Goal(NamedTuple):
    """One row of the report's goals table."""

    goal: str
    target: str
    measured: str
    verdict: str


@dataclass
class Section:
    """A scenario's part of the report: its Markdown, and the goals it measured."""

    text: str
    goals: list[Goal] = field(default_factory=list)


def label(key: str) -> str:
    return LABELS.get(key, key)


def ms(seconds: float | None, digits: int = 1) -> str:
    """Seconds shown in milliseconds; '-' when missing."""
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.{digits}f}"


def sec(seconds: float | None, digits: int = 2) -> str:
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds:.{digits}f}"


def num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def times(r: float | None) -> str:
    """A ratio such as '1.25×'; '-' when missing."""
    return "-" if r is None else f"{r:.2f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def not_run(data: dict[str, Any] | None, name: str) -> str | None:
    """Why a scenario has no numbers (no result file, or it failed), or None if it has."""
    if data is None:
        return f"_Not run: no `{name}.json` in the results._"
    if not data.get("ok", False):
        return f"_This scenario failed: `{data.get('error', 'unknown error')}`._"
    return None


def skipped_note(data: dict[str, Any]) -> str:
    """The sentence listing the peers a scenario left out, with why ('' if none)."""
    skipped = data.get("skipped") or {}
    if not skipped:
        return ""
    return "\n\nSkipped: " + "; ".join(f"{label(k)}: {v}" for k, v in skipped.items()) + "."


def join(parts: list[str]) -> str:
    """Paragraphs, empty ones (a plot that was skipped) left out."""
    return "\n\n".join(p for p in parts if p)
