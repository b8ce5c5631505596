"""BENCHMARKS.md's section on the steady-state cost on etcd scenario (``scenario_steady.py``)."""

# ruff: noqa: RUF001  (the report uses the real multiplication and minus signs)

from __future__ import annotations

from typing import Any

from reporting.plots import Plotter
from reporting.text import (
    Goal,
    Section,
    join,
    label,
    not_run,
    skipped_note,
    table,
)


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the steady-state cost on etcd scenario, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 6. Steady-state cost on etcd",
        "gRPC messages etcd receives per second from an idle leader, and from each idle "
        "waiting candidate: one candidate alone over a window, then four more waiting over a "
        "second window, per candidate = (second − first) ÷ 4. TTL 10 s except `etcdctl elect` "
        "(60 s, fixed). HTTP/2 pings are not gRPC messages and are not counted.",
    ]
    failed = not_run(data, "steady")
    if failed or data is None:
        return Section("\n\n".join([*parts, failed or ""]), goals)
    rows = []
    keys = []
    leader_totals = []
    waiting_totals = []
    for peer, entry in data["results"].items():
        lead = {k: v for k, v in entry["leader_per_second"].items() if not k.startswith("_")}
        wait = {
            k: v for k, v in entry["waiting_candidate_per_second"].items() if not k.startswith("_")
        }

        def fmt(rates: dict[str, float]) -> str:
            shown = [f"{k} {v:.2f}" for k, v in sorted(rates.items()) if abs(v) >= 0.005]
            return ", ".join(shown) or "none"

        rows.append(
            [
                label(peer),
                f"{entry['ttl']} s",
                f"{entry['leader_total']:.2f}",
                fmt(lead),
                f"{entry['waiting_candidate_total'] + 0.0:.2f}".replace("-0.00", "0.00"),
                fmt(wait),
            ]
        )
        keys.append(peer)
        leader_totals.append(entry["leader_total"])
        waiting_totals.append(entry["waiting_candidate_total"])
    parts.append(
        table(
            [
                "peer",
                "TTL",
                "leader req/s",
                "leader by method",
                "per waiting candidate req/s",
                "waiting candidate by method",
            ],
            rows,
        )
        + f"\n\nWindows of {data.get('window_seconds'):g} s; a keepalive every TTL/3 is "
        "0.30/s at TTL 10 s and 0.05/s at TTL 60 s." + skipped_note(data)
    )
    results = data["results"]
    if "ours_cli" in results and "go_lock" in results:
        ours, go = results["ours_cli"], results["go_lock"]
        met = all(
            ours[k] <= go[k] + 0.01 for k in ("leader_total", "waiting_candidate_total")
        )  # 0.01/s: one message over a 20 s window is within the counters' resolution
        goals.append(
            Goal(
                "Idle cost on etcd no more than `etcdctl lock`'s",
                "req/s of an idle leader and of each waiting candidate ≤ Go's",
                f"leader {ours['leader_total']:.2f} vs {go['leader_total']:.2f}, waiting "
                f"{ours['waiting_candidate_total']:.2f} vs {go['waiting_candidate_total']:.2f}",
                "met" if met else "**missed**",
            )
        )
    if plot.plt is not None and keys:
        fig, ax = plot.plt.subplots(figsize=(7.5, 4))
        xs = range(len(keys))
        ax.bar([x - 0.2 for x in xs], leader_totals, width=0.4, label="leader")
        ax.bar([x + 0.2 for x in xs], waiting_totals, width=0.4, label="each waiting candidate")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([label(k) for k in keys], fontsize=8)
        ax.set_ylabel("gRPC messages / s at etcd")
        ax.set_title("Idle cost on etcd")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend()
        parts.append(plot.save(fig, "steady.png", "Idle requests per second on etcd"))
    return Section(join(parts), goals)
