"""BENCHMARKS.md's section on planned moves (``scenario_moves.py``)."""

from __future__ import annotations

from typing import Any

from reporting.plots import Plotter
from reporting.text import Goal, Section, join, ms, not_run, table, verdict

_ROWS = [
    ("handoff", "handoff to a chosen successor: request → successor elected"),
    ("resign", "plain resign: work returns → next elected"),
    ("gap_handoff", "leaderless gap of a handoff: old term's end → new term's start"),
    ("gap_resign", "leaderless gap of a resign"),
    ("priority", "priority-5 candidate joins → it leads"),
    ("pause", "pause → no candidate key left (drain 0)"),
    ("resume", "resume → a leader"),
]


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on planned moves, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 9. Planned moves",
        "Five `AsyncElector` candidates in one process (one session each) on one etcd. "
        "Trials alternate between a plain resign (the leader's work returns) and a handoff "
        "to a successor chosen at random among the four waiting "
        "(`view.request_handoff(to=X)`, carried out by the leader's elector: one fenced "
        "transaction deletes its key and those queued ahead of X). Then priority joins, "
        "pauses and resumes. `python benchmarks/run.py --only moves`.",
    ]
    failed = not_run(data, "moves")
    if failed or data is None:
        goals.append(Goal("Planned moves", "-", failed or "", "?"))
        return Section(join([*parts, failed or ""]), goals)
    summary = data["summary"]
    rows = []
    for key, what in _ROWS:
        s = summary.get(key, {})
        if not s.get("n"):
            continue
        rows.append(
            [what, str(s["n"]), ms(s["p50"], 2), ms(s["p95"], 2), ms(s["p99"], 2), ms(s["max"], 2)]
        )
    parts.append(table(["measured", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows))
    handoff = summary.get("handoff", {})
    gap = summary.get("gap_handoff", {})
    priority = summary.get("priority", {})
    pause = summary.get("pause", {})
    resume = summary.get("resume", {})
    goals += [
        Goal(
            "Chosen-successor handoff, in-process",
            "p50 ≤ 15 ms, p99 ≤ 30 ms",
            f"p50 {ms(handoff.get('p50'), 2)} ms, p99 {ms(handoff.get('p99'), 2)} ms",
            verdict(handoff.get("p50", 1) <= 0.015 and handoff.get("p99", 1) <= 0.030),
        ),
        Goal(
            "Leaderless gap of a handoff",
            "p99 ≤ 20 ms",
            f"p99 {ms(gap.get('p99'), 2)} ms",
            verdict(gap.get("p99", 1) <= 0.020),
        ),
        Goal(
            "A higher-priority candidate leads after it joins",
            "p99 ≤ 1 s",
            f"p99 {ms(priority.get('p99'), 1)} ms",
            verdict(priority.get("p99", 2) <= 1.0),
        ),
        Goal(
            "Pause leaves no leader within the drain budget + 1 s",
            "max ≤ 1 s (drain 0)",
            f"max {ms(pause.get('max'), 1)} ms",
            verdict(pause.get("max", 2) <= 1.0),
        ),
        Goal(
            "Resume gives a leader within 1 s",
            "max ≤ 1 s",
            f"max {ms(resume.get('max'), 1)} ms",
            verdict(resume.get("max", 2) <= 1.0),
        ),
    ]
    return Section(join(parts), goals)
