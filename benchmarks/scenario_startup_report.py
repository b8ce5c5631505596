"""BENCHMARKS.md's section on the command start-up scenario (``scenario_startup.py``)."""

from __future__ import annotations

from typing import Any

from reporting.plots import Plotter
from reporting.text import Goal, Section, join, ms, not_run, table, times

GOAL_S = 0.130
LABELS = {
    "ours_leader": "`etcd-elector leader NAME`",
    "go_get": "`etcdctl get KEY` (Go)",
    "python_bare": "`python -c pass` (the floor)",
    "python_grpc": "`python -c 'import asyncio, grpc'`",
    "python_floor": "`python -c 'import asyncio, grpc'` (the floor)",  # results before #17
}


def _load(data: dict[str, Any]) -> str:
    before, after = data.get("load_average_before"), data.get("load_average_after")
    if not before or not after:
        return ""
    return (
        f" Load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in before)}; "
        f"after: {', '.join(f'{v:.2f}' for v in after)}."
    )


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the command start-up scenario, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 8. Command start-up",
        "Wall time of one command against a live etcd holding a leader, each run a fresh "
        "process, from just before it starts to its exit; the commands alternate. "
        "`etcd-elector leader` reads the leader and its lease (linearizably, over etcd's JSON "
        "gateway with the standard library: it imports neither gRPC nor asyncio) and prints "
        "it; `etcdctl get` does one read; the bare Pythons do nothing, or only import what a "
        "Python gRPC client needs before it sends anything. Our package's bytecode is "
        "compiled beforehand, as pip does at install.",
    ]
    failed = not_run(data, "startup")
    if failed or data is None:
        return Section("\n\n".join([*parts, failed or ""]), goals)
    results = data["results"]
    rows = [
        [
            LABELS[peer],
            str(summary["n"]),
            ms(summary["p50"], 0),
            ms(summary["p95"], 0),
            ms(summary["max"], 0),
        ]
        for peer, summary in results.items()
    ]
    parts.append(table(["command", "runs", "p50 ms", "p95 ms", "max ms"], rows))
    ours = results["ours_leader"]["p50"]
    parts.append(
        f"`etcd-elector leader` p50 / `etcdctl get` p50: {times(data['ratio_to_go_p50'])}; "
        f"above the bare Python floor: {ms(data['above_python_floor_p50'], 0)} ms." + _load(data)
    )
    goals.append(
        Goal(
            "`etcd-elector leader NAME` start-up",
            "median ≤ 130 ms",
            f"{ms(ours, 0)} ms ({times(data['ratio_to_go_p50'])} `etcdctl get`)",
            "met" if ours <= GOAL_S else "**missed**",
        )
    )
    return Section(join(parts), goals)
