"""BENCHMARKS.md's section on the scale scenario (``scenario_scale.py``)."""

# ruff: noqa: RUF001  (the report uses the real multiplication and minus signs)

from __future__ import annotations

from typing import Any

from reporting.plots import Plotter
from reporting.text import (
    Goal,
    Section,
    join,
    ms,
    not_run,
    num,
    sec,
    table,
    verdict,
)


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the scale scenario, from its JSON result."""
    goals: list[Goal] = []
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
    failed = not_run(data, "scale")
    if failed or data is None:
        goals.append(Goal("Per-handoff work constant in N", "-", failed or "", "?"))
        goals.append(Goal("10,000 elections in one process < 300 MB", "-", failed or "", "?"))
        return Section("\n\n".join([*parts, failed or ""]), goals)
    return Section(
        join([*parts, *_one_election(data, plot, goals), *_one_process(data, goals)]), goals
    )


def _one_election(data: dict[str, Any], plot: Plotter, goals: list[Goal]) -> list[str]:
    """Part A: one election with N candidates."""
    parts: list[str] = []
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
        "handoff: 2 Txn (the resign's guarded delete, the re-campaign's create) and 3 Range "
        "(the successor's linearizable read of the first candidate, which is both its "
        "predecessor check and its re-check; the re-campaign's first-candidate read and its "
        "predecessor read), about 1 watch event (the delete, to the one successor watching "
        "it). Runs between #17 and 2026-11-27 16:00 UTC sent 4 Txn and no Range: the reads "
        "were read-only transactions, which crash etcd 3.5.0 to 3.5.4 when cancelled while "
        "they run (etcd-io/etcd#14110), so they are plain ranges again."
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
            Goal(
                "Per-handoff work constant in the number of candidates",
                f"same at N={sizes[-1]} as at N={sizes[0]} (±20 % or ±1)",
                f"unary requests {num(first[0], 1)} → {num(last[0], 1)}, watch events "
                f"{num(first[1], 1)} → {num(last[1], 1)}, watch messages {num(first[2], 1)} → "
                f"{num(last[2], 1)}",
                verdict(unary_ok and events_ok),
            )
        )
    return parts


def _one_process(data: dict[str, Any], goals: list[Goal]) -> list[str]:
    """Part B: one process holding many elections."""
    parts: list[str] = []
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
            Goal(
                "10,000 elections in one process under 300 MB",
                "RSS < 300 MB",
                f"{mb:.0f} MB RSS ({big['rss_growth_mib'] * 1.048576:.0f} MB above an idle "
                f"client), {big['campaigns_per_second']:.0f} campaigns/s",
                verdict(mb < 300),
            )
        )
    return parts
