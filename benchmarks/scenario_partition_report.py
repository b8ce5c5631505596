"""BENCHMARKS.md's section on the partition scenario (``scenario_partition.py``)."""

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
    sec,
    skipped_note,
    table,
    verdict,
)


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the partition scenario, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 3. Partition (blackholed leader)",
        "Each candidate talks to etcd through its own TCP fault proxy; the leader's proxy "
        "stops forwarding both ways without closing anything. From that moment: *new leader* "
        "is when the standby announces it leads (etcd expired the old lease); *known lost* is "
        "when the old leader says it no longer leads (ours: the `lost` event; etcdctl lock: "
        "its `Error: session expired`; python-etcd3: a failed `refresh()`); *overlap* = known "
        "lost − new leader, positive when two processes believed they led at once. TTL "
        f"{data.get('ttl', 2) if data else 2} s.",
    ]
    failed = not_run(data, "partition")
    if failed or data is None:
        goals.append(Goal("Zero overlap", "-", failed or "", "?"))
        return Section("\n\n".join([*parts, failed or ""]), goals)
    rows = []
    new_series: dict[str, list[float]] = {}
    lost_series: dict[str, list[float]] = {}
    for peer, s in data["summary"].items():
        records = data["records"][peer]
        new_series[peer] = [r["new_leader"] for r in records]
        lost_series[peer] = [r["known_lost"] for r in records if r["known_lost"] is not None]
        never = s["trials"] - s["loss_reported"]
        lost_text = sec(s["known_lost"].get("p50")) if s["loss_reported"] else "never"
        if never and s["loss_reported"]:
            lost_text += f" ({never} never)"
        rows.append(
            [
                label(peer),
                str(s["trials"]),
                sec(s["new_leader"].get("p50")),
                sec(s["new_leader"].get("max")),
                lost_text,
                f"{s['overlap']['p50']:+.2f}" if s["loss_reported"] else "unbounded",
                f"{s['overlap']['max']:+.2f}" if s["loss_reported"] else "unbounded",
                f"{s['overlapping_trials']} + {never} never told"
                if never
                else str(s["overlapping_trials"]),
                f"{s['overlap_self_reported']['max']:+.2f}"
                if s["overlap_self_reported"].get("n")
                else "-",
            ]
        )
    parts.append(
        table(
            [
                "peer",
                "trials",
                "new leader p50 s",
                "max s",
                "known lost p50 s",
                "overlap p50 s",
                "overlap max s",
                "trials with overlap",
                "self-reported overlap max s",
            ],
            rows,
        )
        + skipped_note(data)
    )
    waited = max(
        (r.get("waited", 0) for rows_ in data["records"].values() for r in rows_), default=0
    )
    parts.append(
        f'"never" means nothing was reported within {waited} s of the blackhole (then the '
        "trial ended). The self-reported overlap compares the old leader's own `ended_at` "
        "(the local lease deadline at which it stopped believing it leads) with the new "
        "leader's own `elected_at`."
    )
    parts.append(
        plot.strips(
            [("new leader elected", new_series), ("old leader knows it lost", lost_series)],
            "partition.png",
            "Blackholed leader: seconds after the blackhole",
            "seconds",
        )
    )
    ours = data["summary"].get("ours_cli")
    if ours:
        ok = (
            ours["loss_reported"] == ours["trials"]
            and ours["overlap"].get("max", 1) <= 0
            and ours["overlap_self_reported"].get("max", 1) <= 0
        )
        goals.append(
            Goal(
                "Zero overlap",
                "old leader knows it lost before the new one is elected",
                f"{ours['trials']} trials, loss reported in {ours['loss_reported']}, overlap "
                f"max {ours['overlap'].get('max', float('nan')):+.2f} s (self-reported "
                f"{ours['overlap_self_reported'].get('max', float('nan')):+.2f} s)",
                verdict(ok),
            )
        )
    return Section(join(parts), goals)
