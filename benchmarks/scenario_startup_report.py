"""BENCHMARKS.md's section on the command start-up scenario (``scenario_startup.py``)."""

from __future__ import annotations

from typing import Any

from reporting.plots import Plotter
from reporting.text import Goal, Section, join, ms, not_run, table, times

GOAL_S = 0.130
LABELS = {
    "ours_leader": "`etcd-elector leader NAME`",
    "go_get": "`etcdctl get KEY` (Go)",
    "python_floor": "`python -c 'import asyncio, grpc'` (the floor)",
}


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the command start-up scenario, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 8. Command start-up",
        "Wall time of one command against a live etcd holding a leader, each run a fresh "
        "process, from just before it starts to its exit; the three commands alternate. "
        "`etcd-elector leader` reads the election (a permission check, the leader, its lease) "
        "and prints it; `etcdctl get` does one read; the bare Python only imports asyncio and "
        "grpc, which any Python gRPC client must. Our package's bytecode is compiled "
        "beforehand, as pip does at install.",
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
        f"above the bare Python floor: {ms(data['above_python_floor_p50'], 0)} ms."
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
