"""BENCHMARKS.md's section on the client overhead scenario (``scenario_overhead.py``)."""

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
    table,
    times,
    verdict,
)


def section(data: dict[str, Any] | None, plot: Plotter) -> Section:
    """BENCHMARKS.md's section on the client overhead scenario, from its JSON result."""
    goals: list[Goal] = []
    parts = [
        "## 5. Client overhead",
        "Requests per second through our transport (`AsyncClient.put`, `AsyncClient.txn` with "
        "`Compare`/`Op`, `KeepAliveStream.ping`) vs the same requests through bare `grpc.aio` "
        "stubs sending the same etcd messages (`unary_unary` on `/etcdserverpb.KV/Put` etc., "
        "a `stream_stream` for keepalives), one etcd member on "
        "loopback, all in one process and event loop, batches alternating. Sequential: one "
        "request at a time; concurrency 16: 16 tasks (16 leases and streams for keepalives). "
        "Overhead factor = bare ops/s ÷ ours ops/s (medians over the batches). The third "
        "peer is the bare stub given what our transport sends with every request by design "
        "(a deadline, and etcd's `hasleader` metadata so that a member without quorum refuses "
        "at once; for keepalives, a deadline around each exchange): the last factor is our "
        "Python code alone.",
    ]
    failed = not_run(data, "overhead")
    if failed or data is None:
        goals.append(Goal("Transport overhead < 1.2× bare grpcio", "-", failed or "", "?"))
        return Section("\n\n".join([*parts, failed or ""]), goals)
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
        Goal(
            "Transport overhead < 1.2× bare grpcio",
            "bare ops/s ÷ ours ops/s < 1.2 for every row",
            ", ".join(f"{k} {times(f)}" for k, f in factors),
            verdict(worst is not None and worst < 1.2),
        )
    )
    worst_dm = max((f for _, f in dm_factors if f is not None), default=None)
    if worst_dm is not None:
        goals.append(
            Goal(
                "... against bare stubs with the same deadline and metadata",
                "< 1.2× (our Python code alone)",
                ", ".join(f"{k} {times(f)}" for k, f in dm_factors),
                verdict(worst_dm < 1.2),
            )
        )
    return Section(join(parts), goals)
