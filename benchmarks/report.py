"""Render BENCHMARKS.md (tables, goals) and PNG plots from the scenarios' JSON results.

Only reads the JSON files, so ``python benchmarks/run.py --render-only`` re-renders a report
without running anything. Without matplotlib the report is written with tables only and says so.
"""

# ruff: noqa: RUF001  (the report uses the real multiplication and minus signs)

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

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
COLORS = {
    "ours_cli": "#1f77b4",
    "ours_inproc": "#17becf",
    "go_elect": "#2ca02c",
    "go_lock": "#2ca02c",
    "py_etcd3": "#ff7f0e",
    "ours": "#1f77b4",
    "bare": "#7f7f7f",
    "bare_dm": "#bcbd22",
}


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def ms(seconds: float | None, digits: int = 1) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    return f"{seconds * 1000:.{digits}f}"


def sec(seconds: float | None, digits: int = 2) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    return f"{seconds:.{digits}f}"


def times(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}×"


def num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def label(key: str) -> str:
    return LABELS.get(key, key)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


class Plotter:
    """matplotlib if available; every method returns a Markdown image line or ''."""

    def __init__(self, out: Path, report_path: Path) -> None:
        self.out = out
        self.report_dir = report_path.parent
        self.note: str | None = None
        self.plt: Any = None
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            self.plt = plt
        except ImportError:
            self.note = (
                "matplotlib is not installed, so the plots were skipped "
                "(`pip install matplotlib` and re-run, or `run.py --render-only`)."
            )

    def save(self, fig: Any, name: str, alt: str) -> str:
        path = self.out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        self.plt.close(fig)
        rel = os.path.relpath(path, self.report_dir)
        return f"![{alt}]({rel})"

    def cdf(self, series: dict[str, list[float]], name: str, title: str, xlabel: str) -> str:
        if self.plt is None or not any(series.values()):
            return ""
        fig, ax = self.plt.subplots(figsize=(7.5, 4))
        for key, values in series.items():
            if not values:
                continue
            data = sorted(v * 1000 for v in values)
            ys = [(i + 1) / len(data) for i in range(len(data))]
            ax.step(
                data, ys, where="post", label=f"{label(key)} (n={len(data)})", color=COLORS.get(key)
            )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of trials ≤ x")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        return self.save(fig, name, title)

    def strips(
        self,
        panels: list[tuple[str, dict[str, list[float]]]],
        name: str,
        title: str,
        ylabel: str,
        hline: float | None = None,
    ) -> str:
        if self.plt is None or not any(any(p.values()) for _, p in panels):
            return ""
        import random

        rng = random.Random(1)
        fig, axes = self.plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
        for ax, (panel_title, series) in zip(axes[0], panels, strict=True):
            keys = [k for k, v in series.items() if v]
            data = [series[k] for k in keys]
            if data:
                ax.boxplot(data, showfliers=False, widths=0.5)
                for i, values in enumerate(data, start=1):
                    xs = [i + rng.uniform(-0.15, 0.15) for _ in values]
                    ax.scatter(xs, values, s=12, alpha=0.6, color=COLORS.get(keys[i - 1]))
                ax.set_xticks(range(1, len(keys) + 1))
                ax.set_xticklabels([label(k).replace(" (", "\n(") for k in keys], fontsize=8)
            if hline is not None:
                ax.axhline(hline, color="red", linestyle="--", linewidth=1)
            ax.set_title(panel_title)
            ax.set_ylabel(ylabel)
            ax.grid(True, axis="y", alpha=0.3)
        fig.suptitle(title)
        return self.save(fig, name, title)

    def bars(
        self,
        groups: list[str],
        series: dict[str, list[float]],
        name: str,
        title: str,
        ylabel: str,
        log: bool = False,
    ) -> str:
        if self.plt is None or not groups:
            return ""
        fig, ax = self.plt.subplots(figsize=(max(6.0, 1.3 * len(groups) + 2), 4))
        width = 0.8 / max(1, len(series))
        for i, (key, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, values, width=width, label=label(key), color=COLORS.get(key))
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=8)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        return self.save(fig, name, title)


# -- sections ---------------------------------------------------------------------------------


def _failed(data: dict[str, Any] | None, name: str) -> str | None:
    if data is None:
        return f"_Not run: no `{name}.json` in the results._"
    if not data.get("ok", False):
        return f"_This scenario failed: `{data.get('error', 'unknown error')}`._"
    return None


def _skipped(data: dict[str, Any]) -> str:
    skipped = data.get("skipped") or {}
    if not skipped:
        return ""
    return "\n\nSkipped: " + "; ".join(f"{label(k)}: {v}" for k, v in skipped.items()) + "."


def section_handoff(data: dict[str, Any] | None, plot: Plotter, goals: list[list[str]]) -> str:
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
    failed = _failed(data, "handoff")
    if failed or data is None:
        goals.append(["Graceful handoff p99 < 20 ms, no slower than Go", "-", failed or "", "?"])
        return "\n\n".join([*parts, failed or ""])
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
                times(_ratio(s["p50"], go.get("p50"))),
                times(_ratio(s["p99"], go.get("p99"))),
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
        [
            "Graceful handoff p99 < 20 ms",
            "p99 < 20 ms",
            f"CLI p99 {ms(ours.get('p99'), 2)} ms, in-process p99 {ms(inproc.get('p99'), 2)} ms",
            "met" if p99_ok else "**missed**",
        ]
    )
    goals.append(
        [
            "Graceful handoff no slower than Go",
            "CLI ≤ etcdctl elect (p50 and p99)",
            f"CLI/Go p50 {times(_ratio(ours.get('p50'), go.get('p50')))}, "
            f"p99 {times(_ratio(ours.get('p99'), go.get('p99')))}; in-process/Go p50 "
            f"{times(_ratio(inproc.get('p50'), go.get('p50')))}",
            "met" if go_ok else "**missed**",
        ]
    )
    return "\n\n".join(p for p in parts if p)


def section_failover(data: dict[str, Any] | None, plot: Plotter, goals: list[list[str]]) -> str:
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
    failed = _failed(data, "failover")
    if failed or data is None:
        goals.append(["Crash failover within TTL + 0.6 s at p95", "-", failed or "", "?"])
        return "\n\n".join([*parts, failed or ""])
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
                    times(_ratio(ours_p50, f["p50"])) if peer != "ours_cli" else "1.00×",
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
        + _skipped(data)
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
        [
            "Crash failover within TTL + 0.6 s at p95",
            "failover − TTL ≤ 0.6 s (p95)",
            ", ".join(f"TTL {t} s: p95 {p:+.2f} s" for t, p in verdicts),
            "met" if ok else "**missed**",
        ]
    )
    return "\n\n".join(p for p in parts if p)


def section_partition(data: dict[str, Any] | None, plot: Plotter, goals: list[list[str]]) -> str:
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
    failed = _failed(data, "partition")
    if failed or data is None:
        goals.append(["Zero overlap", "-", failed or "", "?"])
        return "\n\n".join([*parts, failed or ""])
    rows = []
    new_series: dict[str, list[float]] = {}
    lost_series: dict[str, list[float]] = {}
    for peer, s in data["summary"].items():
        records = data["records"][peer]
        new_series[peer] = [r["new_leader"] for r in records]
        lost_series[peer] = [r["known_lost"] for r in records if r["known_lost"] is not None]
        never = s["trials"] - s["loss_reported"]
        waited = max((r.get("waited", 0) for r in records), default=0)
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
        del waited
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
        + _skipped(data)
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
            [
                "Zero overlap",
                "old leader knows it lost before the new one is elected",
                f"{ours['trials']} trials, loss reported in {ours['loss_reported']}, overlap "
                f"max {ours['overlap'].get('max', float('nan')):+.2f} s (self-reported "
                f"{ours['overlap_self_reported'].get('max', float('nan')):+.2f} s)",
                "met" if ok else "**missed**",
            ]
        )
    return "\n\n".join(p for p in parts if p)


_METHODS = ("Txn", "Range", "DeleteRange", "LeaseGrant", "LeaseRevoke", "LeaseKeepAlive", "Watch")


def section_scale(data: dict[str, Any] | None, plot: Plotter, goals: list[list[str]]) -> str:
    parts = [
        "## 4. Scale",
        "### One election, many candidates",
        "N candidates (sessions) in one election, spread over 4 processes with 2 clients each "
        "(the number of clients does not change with N); TTL 30 s. *Queued* is the time from "
        "the workers starting their sessions to every candidate's key being written. Handoff "
        "latency is from just before the leader's `resign()` to the next candidate's "
        "`campaign()` returning, as the workers report it. Requests per handoff come from "
        "etcd's `/metrics` (`grpc_server_msg_received_total` by method, "
        "`etcd_debugging_mvcc_events_total` for watch events sent) over H handoffs, less the "
        "idle rate measured over a window of the same length (keepalives, watch-stream "
        "probes); each handoff includes the resigned candidate campaigning again at the back "
        "of the queue.",
    ]
    failed = _failed(data, "scale")
    if failed or data is None:
        goals.append(["Per-handoff work constant in N", "-", failed or "", "?"])
        goals.append(["10,000 elections in one process < 300 MB", "-", failed or "", "?"])
        return "\n\n".join([*parts, failed or ""])
    rows = []
    sizes = []
    totals = []
    for entry in data["one_election"]:
        req = entry["per_handoff_requests_net"]
        lat = entry["handoff_latency"]
        unary = sum(req.get(m, 0.0) for m in ("Txn", "Range", "DeleteRange"))
        sizes.append(entry["candidates"])
        totals.append((unary, entry["per_handoff_watch_events_net"], req.get("Watch", 0.0)))
        rows.append(
            [
                str(entry["candidates"]),
                str(entry["handoffs"]),
                sec(entry["queue_seconds"]),
                ms(lat.get("p50"), 2),
                ms(lat.get("p95"), 2),
                num(req.get("Txn", 0.0), 1),
                num(req.get("Range", 0.0), 1),
                num(req.get("DeleteRange", 0.0), 1),
                num(req.get("Watch", 0.0), 1),
                num(entry["per_handoff_watch_events_net"], 1),
                str(int(entry.get("watchers") or 0)),
            ]
        )
    parts.append(
        table(
            [
                "candidates",
                "handoffs",
                "queued in s",
                "handoff p50 ms",
                "p95 ms",
                "Txn / handoff",
                "Range / handoff",
                "DeleteRange / handoff",
                "Watch msgs / handoff",
                "watch events / handoff",
                "watchers at etcd",
            ],
            rows,
        )
    )
    parts.append(
        "Watch messages are the create and cancel requests on the shared watch streams "
        "(two watches per waiting candidate: its predecessor and its own key). Expected per "
        "handoff: 2 Txn (the resign's guarded delete, the re-campaign's create), 3 Range (the "
        "successor's predecessor check and linearizable re-check, the re-campaign's "
        "predecessor lookup), about 1 watch event (the delete, to the one successor watching it)."
    )
    if plot.plt is not None and sizes:
        plt = plot.plt
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for idx, name in enumerate(("unary requests", "watch events", "watch messages")):
            ax1.plot(sizes, [t[idx] for t in totals], marker="o", label=name)
        ax1.set_xscale("log")
        ax1.set_xlabel("candidates in the election")
        ax1.set_ylabel("per handoff")
        ax1.set_title("etcd work per handoff")
        ax1.set_ylim(bottom=0)
        ax1.grid(True, alpha=0.3)
        ax1.legend()
        lat_data = [[x * 1000 for x in e["latencies"]] for e in data["one_election"]]
        ax2.boxplot(lat_data, showfliers=True, widths=0.5)
        ax2.set_xticks(range(1, len(sizes) + 1))
        ax2.set_xticklabels([str(n) for n in sizes])
        ax2.set_xlabel("candidates in the election")
        ax2.set_ylabel("resign → next elected (ms)")
        ax2.set_title("Handoff latency")
        ax2.grid(True, axis="y", alpha=0.3)
        parts.append(plot.save(fig, "scale.png", "Work and latency per handoff vs candidates"))
    if len(totals) >= 2:
        first, last = totals[0], totals[-1]
        unary_ok = abs(last[0] - first[0]) <= max(1.0, 0.2 * first[0])
        events_ok = abs(last[1] - first[1]) <= max(1.0, 0.2 * first[1])
        goals.append(
            [
                "Per-handoff work constant in the number of candidates",
                f"same at N={sizes[-1]} as at N={sizes[0]} (±20 % or ±1)",
                f"unary requests {num(first[0], 1)} → {num(last[0], 1)}, watch events "
                f"{num(first[1], 1)} → {num(last[1], 1)}, watch messages {num(first[2], 1)} → "
                f"{num(last[2], 1)}",
                "met" if unary_ok and events_ok else "**missed**",
            ]
        )
    parts.append("### One process, many elections")
    parts.append(
        "One process campaigns in K elections (each with this one candidate, so each is won) "
        "with at most 200 campaigns in flight, either on one shared session (one lease) or one "
        "session per election; TTL 10 s. Each won term starts a guard watch on its own key "
        "after `campaign()` returns; the column *guard watches all in place* is how long after "
        "the last campaign returned etcd counted them all. Then, once the keepalive streams "
        "are open (after TTL/3), resident memory (`VmRSS` from /proc/self/status, the larger "
        "of the readings before and after the idle window) is taken; *growth* is over the "
        "same process with its client connected and nothing else. Idle CPU is the process's "
        "CPU time over "
        f"{data.get('idle_window_seconds', 10):g} s of holding everything; idle etcd requests "
        "are etcd's gRPC messages received over the same window."
    )
    rows = []
    big = None
    errors = []
    for entry in data["one_process"]:
        if "error" in entry:
            rows.append([f"{entry['elections']:,}", entry["mode"], *["-"] * 7, "failed"])
            errors.append(entry)
            continue
        idle = entry["idle_requests_per_second"]
        breakdown = ", ".join(f"{k} {v:.1f}" for k, v in sorted(idle.items()) if v >= 0.05)
        rows.append(
            [
                f"{entry['elections']:,}",
                entry["mode"],
                f"{entry['sessions']:,}",
                f"{entry['leaders']:,}",
                f"{entry.get('rss_kib', entry['rss_held_kib']) * 1024 / 1e6:.0f}",
                f"{entry['rss_growth_mib'] * 1.048576:.0f}",
                sec(entry.get("guards_settled_seconds"), 1),
                f"{entry['idle_cpu_percent']:.1f}",
                f"{entry['idle_requests_per_second_total']:.1f} ({breakdown})",
                f"{entry['campaigns_per_second']:.0f}"
                + (
                    f" ({sum(entry['campaign_failures'].values())} failed attempts, retried)"
                    if entry.get("campaign_failures")
                    else ""
                ),
            ]
        )
        if entry["elections"] >= 10000:
            big = entry
    parts.append(
        table(
            [
                "elections",
                "sessions",
                "leases",
                "won",
                "RSS MB",
                "growth MB",
                "guard watches all in place after s",
                "idle CPU %",
                "idle etcd req/s (by method)",
                "campaigns/s",
            ],
            rows,
        )
    )
    for entry in errors:
        parts.append(
            f"The {entry['elections']:,}-election ({entry['mode']}) process failed: "
            f"`{entry['error'][-400:]}`"
        )
    failures = {
        f"{e['elections']:,} {e['mode']}": e["campaign_failures"]
        for e in data["one_process"]
        if e.get("campaign_failures")
    }
    for config, kinds in failures.items():
        listed = "; ".join(f"{n} × `{k}`" for k, n in kinds.items())
        parts.append(
            f"Failed campaign attempts ({config}), each retried as the elector would: {listed}."
        )
    if big is not None:
        mb = big.get("rss_kib", big["rss_held_kib"]) * 1024 / 1e6
        goals.append(
            [
                "10,000 elections in one process under 300 MB",
                "RSS < 300 MB",
                f"{mb:.0f} MB RSS ({big['rss_growth_mib'] * 1.048576:.0f} MB above an idle "
                f"client), {big['campaigns_per_second']:.0f} campaigns/s",
                "met" if mb < 300 else "**missed**",
            ]
        )
    return "\n\n".join(p for p in parts if p)


def section_overhead(data: dict[str, Any] | None, plot: Plotter, goals: list[list[str]]) -> str:
    parts = [
        "## 5. Client overhead",
        "Requests per second through our transport (`AsyncClient.put`, `AsyncClient.txn` with "
        "`Compare`/`Op`, `KeepAliveStream.ping`) vs the same requests through bare `grpc.aio` "
        "stubs on the same protos (`etcd_elector._proto.rpc_pb2`, `unary_unary` on "
        "`/etcdserverpb.KV/Put` etc., a `stream_stream` for keepalives), one etcd member on "
        "loopback, all in one process and event loop, batches alternating. Sequential: one "
        "request at a time; concurrency 16: 16 tasks (16 leases and streams for keepalives). "
        "Overhead factor = bare ops/s ÷ ours ops/s (medians over the batches). The third "
        "peer is the bare stub given what our transport sends with every request by design "
        "(a deadline, and etcd's `hasleader` metadata so that a member without quorum refuses "
        "at once; for keepalives, a deadline around each exchange): the last factor is our "
        "Python code alone.",
    ]
    failed = _failed(data, "overhead")
    if failed or data is None:
        goals.append(["Transport overhead < 1.2× bare grpcio", "-", failed or "", "?"])
        return "\n\n".join([*parts, failed or ""])
    rows = []
    groups = []
    ours_rates = []
    bare_rates = []
    factors = []
    dm_rates: list[float] = []
    dm_factors: list[tuple[str, float | None]] = []
    for key, entry in data["results"].items():
        op, mode = key.split("/")
        o, b = entry["ours"], entry["bare"]
        factor = entry.get("overhead_factor")
        factors.append((key, factor))
        groups.append(f"{op}\n{mode.replace('concurrency', 'conc. ')}")
        ours_rates.append(o["ops_per_second"]["p50"])
        bare_rates.append(b["ops_per_second"]["p50"])
        dm_rates.append(entry.get("bare_dm", b)["ops_per_second"]["p50"])
        dm_factors.append((key, entry.get("overhead_vs_bare_dm")))
        rows.append(
            [
                op,
                mode.replace("concurrency16", "concurrency 16"),
                f"{o['ops_per_second']['p50']:.0f}",
                f"{b['ops_per_second']['p50']:.0f}",
                times(factor),
                f"{entry['bare_dm']['ops_per_second']['p50']:.0f}" if "bare_dm" in entry else "-",
                times(entry.get("overhead_vs_bare_dm")),
                ms(o["latency"]["p50"], 3) if o.get("latency") else "-",
                ms(b["latency"]["p50"], 3) if b.get("latency") else "-",
                ms(o["latency"]["p99"], 3) if o.get("latency") else "-",
                ms(b["latency"]["p99"], 3) if b.get("latency") else "-",
            ]
        )
    parts.append(
        table(
            [
                "operation",
                "mode",
                "ours ops/s",
                "bare ops/s",
                "overhead",
                "bare + deadline + metadata ops/s",
                "overhead vs that",
                "ours p50 ms",
                "bare p50 ms",
                "ours p99 ms",
                "bare p99 ms",
            ],
            rows,
        )
        + f"\n\n{data.get('trials_per_peer')} batches of {data.get('ops_per_batch')} requests "
        "per peer and row."
    )
    parts.append(
        plot.bars(
            groups,
            {"ours": ours_rates, "bare": bare_rates, "bare_dm": dm_rates},
            "overhead.png",
            "Requests per second: our transport vs bare grpc.aio",
            "requests per second (median batch)",
        )
    )
    worst = max((f for _, f in factors if f is not None), default=None)
    goals.append(
        [
            "Transport overhead < 1.2× bare grpcio",
            "bare ops/s ÷ ours ops/s < 1.2 for every row",
            ", ".join(f"{k} {times(f)}" for k, f in factors),
            "met" if worst is not None and worst < 1.2 else "**missed**",
        ]
    )
    worst_dm = max((f for _, f in dm_factors if f is not None), default=None)
    if worst_dm is not None:
        goals.append(
            [
                "... against bare stubs with the same deadline and metadata",
                "< 1.2× (our Python code alone)",
                ", ".join(f"{k} {times(f)}" for k, f in dm_factors),
                "met" if worst_dm < 1.2 else "**missed**",
            ]
        )
    return "\n\n".join(p for p in parts if p)


def section_steady(data: dict[str, Any] | None, plot: Plotter, goals: list[list[str]]) -> str:
    parts = [
        "## 6. Steady-state cost on etcd",
        "gRPC messages etcd receives per second from an idle leader, and from each idle "
        "waiting candidate: one candidate alone over a window, then four more waiting over a "
        "second window, per candidate = (second − first) ÷ 4. TTL 10 s except `etcdctl elect` "
        "(60 s, fixed). HTTP/2 pings are not gRPC messages and are not counted.",
    ]
    failed = _failed(data, "steady")
    if failed or data is None:
        return "\n\n".join([*parts, failed or ""])
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
        "0.30/s at TTL 10 s and 0.05/s at TTL 60 s." + _skipped(data)
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
    return "\n\n".join(p for p in parts if p)


def _machine(meta: dict[str, Any] | None) -> str:
    if meta is None:
        return "_No machine.json: the run did not record the machine._"
    m = meta["machine"]
    rows = [
        ["CPU", f"{m['cpu_count']} × {m['cpu_model']}"],
        ["memory", f"{m.get('mem_gib')} GiB"],
        ["kernel", m.get("kernel", "?")],
        ["Python", f"{m['python']} ({m.get('python_impl', '')})"],
        ["grpcio / protobuf", f"{m['grpcio']} / {m['protobuf']}"],
        [
            "etcd-elector",
            f"{m.get('etcd_elector', '?')} at commit {m.get('git', {}).get('head', '?')}"
            + (
                f" with {m['git']['uncommitted_src_files']} uncommitted files under src/ "
                "(other work in progress)"
                if m.get("git", {}).get("uncommitted_src_files")
                else ""
            ),
        ],
        ["etcd", m["etcd"]],
        ["etcdctl", m["etcdctl"]],
        ["python-etcd3", m.get("python_etcd3") or (meta.get("etcd3_note") or "not used")],
        ["load average at start", ", ".join(f"{x:.2f}" for x in m.get("loadavg", []))],
        [
            "load average at end",
            ", ".join(f"{x:.2f}" for x in meta.get("loadavg_end", [])) or "-",
        ],
    ]
    return table(["", ""], rows)


def render(out: Path, report_path: Path) -> None:
    meta = _load(out, "machine")
    plot = Plotter(out, report_path)
    goals: list[list[str]] = []
    sections = [
        section_handoff(_load(out, "handoff"), plot, goals),
        section_failover(_load(out, "failover"), plot, goals),
        section_partition(_load(out, "partition"), plot, goals),
        section_scale(_load(out, "scale"), plot, goals),
        section_overhead(_load(out, "overhead"), plot, goals),
        section_steady(_load(out, "steady"), plot, goals),
    ]
    quick = bool(meta and meta.get("quick"))
    when = meta.get("started_text", "?") if meta else "?"
    took = f"{meta['seconds'] / 60:.1f} min" if meta and meta.get("seconds") else "?"
    head = [
        "# Benchmarks",
        "<!-- Generated by benchmarks/run.py (benchmarks/report.py) from "
        "benchmarks/results/*.json; edit those, not this file. -->",
        "etcd-elector side by side with etcd's own Go recipe (`etcdctl elect` / `etcdctl lock`, "
        "i.e. `clientv3/concurrency`) and python-etcd3, on one etcd 3.5 member on 127.0.0.1 "
        "started by the library's test kit (50 ms heartbeat, `--unsafe-no-fsync`: this "
        "measures the clients, not disk). Every comparison runs its peers in the same run on "
        "the same etcd with trials alternating between them (A, B, A, B, ...).",
        "```sh\n"
        "pip install -e . matplotlib\n"
        "python benchmarks/run.py          # the full run, ~20 min; rewrites this file\n"
        "python benchmarks/run.py --quick  # smoke test for CI, < 60 s, "
        "writes benchmarks/results-quick/\n"
        "```",
        f"This report: run started {when}, took {took}"
        + (" — **a --quick run: the counts are tiny, the numbers mean nothing**" if quick else "")
        + f"; raw results in `{os.path.relpath(out, report_path.parent)}/*.json`.",
        "The machine is shared with other work, so absolute numbers move from run to run "
        "(see the load averages); ratios between peers measured in alternation are steadier.",
        _machine(meta),
    ]
    if plot.note:
        head.append(f"**Plots skipped:** {plot.note}")
    for rerun in (meta or {}).get("reruns", []):
        head.append(
            f"Re-run on {rerun['started_text']} (after the full run, same machine and etcd "
            f"build, commit {rerun.get('git', {}).get('head', '?')}): "
            f"{', '.join(rerun['scenarios'])} (`{rerun['command']}`), load average at its "
            f"start {', '.join(f'{x:.2f}' for x in rerun.get('loadavg', []))}."
        )
    digests = []
    changed = []
    for name in ("overhead", "handoff", "failover", "partition", "scale", "steady"):
        data = _load(out, name)
        if data and data.get("src_digest_start"):
            digests += [data["src_digest_start"], data["src_digest_end"]]
            if data["src_digest_start"] != data["src_digest_end"]:
                changed.append(name)
    if digests:
        distinct = list(dict.fromkeys(digests))
        text = (
            f"Library source (digest of src/**/*.py): {', '.join(f'`{d}`' for d in distinct)}"
            + (
                " — other work edited src/ during this run"
                + (f", within the {', '.join(changed)} scenario(s)" if changed else "")
                + "."
                if len(distinct) > 1
                else ", unchanged throughout the run."
            )
        )
        head.append(text)
    failed = meta.get("failed") if meta else None
    if failed:
        head.append(f"**Failed scenarios in this run:** {', '.join(failed)}.")
    goal_table = "## Goals\n\n" + table(["goal", "target", "measured", "verdict"], goals)
    findings = FINDINGS_PATH.read_text() if FINDINGS_PATH.exists() else ""
    text = "\n\n".join([*head, goal_table, *sections, findings]).rstrip() + "\n"
    report_path.write_text(text)


FINDINGS_PATH = Path(__file__).resolve().parent / "findings.md"


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results")
    render(target, target / "BENCHMARKS.md")
    print(time.strftime("%H:%M:%S"), "rendered", target / "BENCHMARKS.md")
