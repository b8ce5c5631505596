"""BENCHMARKS.md's section on the graceful handoff scenario (``scenario_handoff.py``)."""

from __future__ import annotations

from typing import Any

from harness.stats import ratio
from reporting.plots import Plotter
from reporting.text import (
    Goal,
    Section,
    join,
    label,
    ms,
    not_run,
    table,
    times,
    verdict,
)


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the graceful handoff scenario, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 1. Graceful handoff",
        "The leader resigns; measured until the next candidate announces it leads. "
        "Process peers: SIGTERM to `etcd-elector campaign --json` (which resigns and exits) "
        "vs SIGINT to `etcdctl elect NAME PROPOSAL` (which resigns on interrupt); timed from "
        "just before the signal to the harness reading the next process's `elected` line or "
        "proposal. In-process: candidates as asyncio tasks in one process, timed from "
        "`resign()` to the next `campaign()` returning. Four waiting candidates per peer, "
        "TTL 10 s; trials alternate between the peers.",
    ]
    failed = not_run(data, "handoff")
    if failed or data is None:
        goals.append(
            Goal("Graceful handoff p99 < 20 ms, no slower than Go", "-", failed or "", "?")
        )
        return Section("\n\n".join([*parts, failed or ""]), goals)
    summary = data["summary"]
    go = summary.get("go_elect", {})
    rows = []
    for key in ("ours_cli", "go_elect", "ours_inproc"):
        s = summary.get(key, {})
        if not s.get("n"):
            continue
        rows.append(
            [
                label(key),
                str(s["n"]),
                ms(s["p50"], 2),
                ms(s["p95"], 2),
                ms(s["p99"], 2),
                ms(s["max"], 2),
                times(ratio(s["p50"], go.get("p50"))),
                times(ratio(s["p99"], go.get("p99"))),
            ]
        )
    parts.append(
        table(
            ["peer", "handoffs", "p50 ms", "p95 ms", "p99 ms", "max ms", "p50 vs Go", "p99 vs Go"],
            rows,
        )
    )
    self_rep = data.get("ours_cli_self_reported") or []
    if self_rep:
        srt = sorted(self_rep)
        parts.append(
            f"For the CLI, the `time` field that the new leader itself printed gives a median "
            f"of {ms(srt[len(srt) // 2], 2)} ms after the signal: the rest of the CLI's figure "
            "is the pipe to the harness."
        )
    split = data.get("parts_summary") or {}
    if split:
        split_rows = [
            [
                label(key),
                ms(split[key]["resign"].get("p50"), 2),
                ms(split[key]["successor"].get("p50"), 2),
                ms(split[key]["resign"].get("p99"), 2),
                ms(split[key]["successor"].get("p99"), 2),
            ]
            for key in ("ours_cli", "go_elect", "ours_inproc")
            if split.get(key, {}).get("resign", {}).get("n")
        ]
        parts.append(
            "Where the time goes: an observer watch (one per election, in the harness) stamps "
            "the deletion of the old leader's key. *Old leader* = signal → its key deleted "
            "(signal handling and the resign's delete); *successor* = deletion → the next "
            "candidate announces itself (the watch event, its reads, printing). In-process: "
            "`resign()` returning, then the rest.\n\n"
            + table(
                [
                    "peer",
                    "old leader p50 ms",
                    "successor p50 ms",
                    "old leader p99 ms",
                    "successor p99 ms",
                ],
                split_rows,
            )
        )
    parts.append(
        plot.cdf(
            {k: data["samples"].get(k, []) for k in ("ours_cli", "go_elect", "ours_inproc")},
            "handoff_cdf.png",
            "Graceful handoff latency (CDF)",
            "signal/resign → next leader announced (ms, log scale)",
        )
    )
    ours = summary.get("ours_cli", {})
    inproc = summary.get("ours_inproc", {})
    p99_ok = ours.get("p99", 1) < 0.020 and inproc.get("p99", 1) < 0.020
    go_ok = ours.get("p50", 1) <= go.get("p50", 0) and ours.get("p99", 1) <= go.get("p99", 0)
    goals.append(
        Goal(
            "Graceful handoff p99 < 20 ms",
            "p99 < 20 ms",
            f"CLI p99 {ms(ours.get('p99'), 2)} ms, in-process p99 {ms(inproc.get('p99'), 2)} ms",
            verdict(p99_ok),
        )
    )
    goals.append(
        Goal(
            "Graceful handoff no slower than Go",
            "CLI ≤ etcdctl elect (p50 and p99)",
            f"CLI/Go p50 {times(ratio(ours.get('p50'), go.get('p50')))}, "
            f"p99 {times(ratio(ours.get('p99'), go.get('p99')))}; in-process/Go p50 "
            f"{times(ratio(inproc.get('p50'), go.get('p50')))}",
            verdict(go_ok),
        )
    )
    return Section(join(parts), goals)
