"""BENCHMARKS.md's section on the crash failover scenario (``scenario_failover.py``)."""

# ruff: noqa: RUF001  (the report uses the real multiplication and minus signs)

from __future__ import annotations

from typing import Any

from harness.stats import ratio
from reporting.plots import Plotter
from reporting.text import (
    Goal,
    Section,
    join,
    label,
    not_run,
    sec,
    skipped_note,
    table,
    times,
    verdict,
)


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the crash failover scenario, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 2. Crash failover",
        "SIGKILL to the leader; measured until the next candidate announces it leads. "
        "`etcd-elector campaign --ttl N` vs `etcdctl lock --ttl N` (etcdctl elect has a fixed "
        "60 s TTL) vs python-etcd3 0.12 `Lock(name, ttl=N)` with a thread calling `refresh()` "
        "every N/3 s. Two waiting candidates per peer; trials alternate between peers; the kill "
        "comes at a random point of the keepalive period. Every implementation renews every "
        "TTL/3, so at the kill the lease has between 2/3 of the TTL and all of it left, and "
        "etcd looks for expired leases every 500 ms: failover − TTL is expected between about "
        "−TTL/3 and +0.5 s.",
    ]
    failed = not_run(data, "failover")
    if failed or data is None:
        goals.append(Goal("Crash failover within TTL + 0.6 s at p95", "-", failed or "", "?"))
        return Section("\n\n".join([*parts, failed or ""]), goals)
    rows = []
    panels = []
    verdicts = []
    for ttl_key, by_peer in data["summary"].items():
        ours_p50 = by_peer.get("ours_cli", {}).get("failover", {}).get("p50")
        panel = {}
        for peer, s in by_peer.items():
            f, m = s["failover"], s["minus_ttl"]
            if not f.get("n"):
                continue
            rows.append(
                [
                    f"{ttl_key} s",
                    label(peer),
                    str(f["n"]),
                    sec(f["p50"]),
                    sec(f["p95"]),
                    sec(f["max"]),
                    f"{m['p50']:+.2f}",
                    f"{m['p95']:+.2f}",
                    f"{m['max']:+.2f}",
                    times(ratio(ours_p50, f["p50"])) if peer != "ours_cli" else "1.00×",
                ]
            )
            panel[peer] = [v - float(ttl_key) for v in data["samples"][ttl_key][peer]]
        panels.append((f"TTL {ttl_key} s", panel))
        ours = by_peer.get("ours_cli", {}).get("minus_ttl", {})
        if ours.get("n"):
            verdicts.append((ttl_key, ours["p95"]))
    parts.append(
        table(
            [
                "TTL",
                "peer",
                "trials",
                "failover p50 s",
                "p95 s",
                "max s",
                "− TTL p50",
                "− TTL p95",
                "− TTL max",
                "ours p50 / peer p50",
            ],
            rows,
        )
        + skipped_note(data)
    )
    parts.append(
        plot.strips(
            panels,
            "failover.png",
            "Crash failover minus TTL (red: the TTL + 0.6 s goal)",
            "failover − TTL (s)",
            hline=0.6,
        )
    )
    ok = all(p95 <= 0.6 for _, p95 in verdicts) and bool(verdicts)
    goals.append(
        Goal(
            "Crash failover within TTL + 0.6 s at p95",
            "failover − TTL ≤ 0.6 s (p95)",
            ", ".join(f"TTL {t} s: p95 {p:+.2f} s" for t, p in verdicts),
            verdict(ok),
        )
    )
    return Section(join(parts), goals)
