"""BENCHMARKS.md's section on shard groups (``scenario_shards.py``)."""

# ruff: noqa: RUF001  (the report uses the real multiplication and minus signs)

from __future__ import annotations

import math
from typing import Any

from reporting.plots import Plotter
from reporting.text import Goal, Section, join, not_run, sec, table, verdict


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """The shard-group section, from the scenario's JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 7. Shard groups: balance, movement, cost",
        "R replica processes of one shard group with P shards (`etcd_elector.testing."
        "_shard_replica`, no writes) on a fresh etcd per (R, P), TTL 3 s, the library's default "
        "client timeouts. R − 1 replicas "
        "settle, the R-th joins, one leaves gracefully (SIGTERM), one rejoins, then a replica "
        "is SIGKILLed (twice in a full run, each time replaced). Times run from the newcomer's "
        "membership (its member key written), or the harness's signal, to the replicas' own "
        "reports of when they started owning a shard (one clock, "
        "CLOCK_BOOTTIME); *balanced* means every shard owned and max − min owned ≤ 1 among "
        "the replicas that stay. After a crash the membership changes when etcd expires the "
        "dead replica's lease, so its time to balanced counts from the first reassignment.",
    ]
    failed = not_run(data, "shards")
    if failed or data is None:
        return Section(join([*parts, failed or ""]), goals)
    ttl = data["ttl"]
    rows = []
    worst_balance = 0.0
    worst_leave = 0.0
    worst_crash_p95 = 0.0
    join_excess = -math.inf
    for c in data["configs"]:
        r, p = c["replicas"], c["shards"]
        join_ = c["join"]
        leave = c["leave"]
        balance_times = [
            join_["seconds_to_balance"],
            leave["seconds_to_balance"],
            *(x["seconds_to_balance"] for x in c["crashes"]),
        ]
        # Balance after a crash counts from the moment the dead replica's shards were free.
        crash_p95 = c["crash_reassign"].get("p95", float("nan"))
        worst_balance = max(worst_balance, join_["seconds_to_balance"], leave["seconds_to_balance"])
        for crash in c["crashes"]:
            first = min(crash["reassign_seconds"], default=0.0)
            worst_balance = max(worst_balance, crash["seconds_to_balance"] - first)
        worst_leave = max(worst_leave, leave["seconds_to_move"])
        worst_crash_p95 = max(worst_crash_p95, crash_p95)
        join_excess = max(join_excess, join_["acquisitions"] - join_["bound_moves"])
        rows.append(
            [
                str(r),
                str(p),
                f"{join_['acquisitions']} (≤ {join_['bound_moves']})",
                sec(join_["seconds_to_balance"]),
                f"{leave['leaver_owned']} / {leave['moved_others']}",
                sec(leave["seconds_to_move"]),
                sec(crash_p95),
                str(sum(x["moved_others"] for x in c["crashes"])),
                sec(max(balance_times)),
            ]
        )
    parts.append(
        table(
            [
                "R",
                "P",
                "join: shards moved (bound)",
                "join: s to balanced",
                "leave: leaver's / others' moved",
                "leave: s to moved",
                "crash: p95 s to new owner",
                "crash: others' moved",
                "worst s to balanced",
            ],
            rows,
        )
    )
    cost_rows = []
    for c in data["configs"]:
        idle = c["idle"]
        by_method = ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(idle["by_method_per_replica"].items()) if v >= 0.005
        )
        cost_rows.append(
            [
                str(c["replicas"]),
                str(c["shards"]),
                f"{idle['requests_per_second_per_replica']:.2f}",
                by_method or "none",
                f"{idle['watchers_per_replica']:.1f}",
                f"{idle['leases_holding_group_keys']} for {idle['replicas']} replicas",
            ]
        )
    parts.append(
        "Idle cost from etcd's /metrics over a window with nothing changing (gRPC messages "
        "received, per replica; the watcher gauge divided by the replicas), and the leases "
        "that hold the group's keys:\n\n"
        + table(
            ["R", "P", "req/s per replica", "by method", "watchers per replica", "leases"],
            cost_rows,
        )
    )
    by_r: dict[int, dict[int, dict[str, Any]]] = {}
    for c in data["configs"]:
        by_r.setdefault(c["replicas"], {})[c["shards"]] = c["idle"]
    same_cost = True
    for sizes in by_r.values():
        rates = [v["requests_per_second_per_replica"] for v in sizes.values()]
        watchers = {v["watchers_per_replica"] for v in sizes.values()}
        if len(rates) > 1 and (max(rates) - min(rates) > 0.25 * max(rates) or len(watchers) > 1):
            same_cost = False
    measured_both = any(len(sizes) > 1 for sizes in by_r.values())
    one_lease = all(
        c["idle"]["leases_holding_group_keys"] == c["idle"]["replicas"] for c in data["configs"]
    )
    goals += [
        Goal("shards: balanced after a membership change", f"≤ 2 × TTL = {2 * ttl} s",
             f"worst {worst_balance:.2f} s", verdict(worst_balance <= 2 * ttl)),
        Goal("shards: moved by a join", "≤ ⌈P/R⌉ + 1",
             f"worst {join_excess:+.0f} against the bound", verdict(join_excess <= 0)),
        Goal("shards: graceful leave finishes moving", "≤ 1 s",
             f"worst {worst_leave:.2f} s", verdict(worst_leave <= 1.0)),
        Goal("shards: crash reassignment (p95)", f"≤ TTL + 0.6 s = {ttl + 0.6:.1f} s",
             f"worst {worst_crash_p95:.2f} s", verdict(worst_crash_p95 <= ttl + 0.6)),
        Goal("shards: idle cost per replica, P = 64 vs 1,000", "same within noise; 1 lease",
             ("same" if same_cost else "differs") if measured_both else "one P only",
             verdict(same_cost and one_lease) if measured_both else "-"),
    ]  # fmt: skip
    return Section(join(parts), goals)
