"""How late an observer reports a leader elected just after it started, while etcd moves on.

An observer reads, then watches. If etcd's revision moved between the two and the watch
starts at the read's revision + 1, etcd serves it from its catch-up loop (every 100 ms), so a
change in the watch's first 100 ms comes late. Each trial: start ``observe()``, take its
first report (nobody leads), wait 10 ms, campaign, and time the report of the new leader.
A second client writes elsewhere all along so that etcd keeps moving.

    python benchmarks/probe_watch_start.py --trials 40
    PYTHONPATH=/path/to/older/checkout/src python benchmarks/probe_watch_start.py  # before

Results go to ``benchmarks/results/watch_start_probe.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import etcd_elector
from etcd_elector import AsyncClient, AsyncElection
from etcd_elector.testing import EtcdCluster

NAMESPACE = "/probe"
DELAY_S = 0.010


async def trial(client: AsyncClient, other: AsyncClient, name: str) -> float:
    stream = client.election_view(name, namespace=NAMESPACE).observe()
    try:
        first = await asyncio.wait_for(anext(stream), 10)
        if first is not None:
            raise RuntimeError(f"{name}: someone leads already")
        await asyncio.sleep(DELAY_S)
        async with other.session(ttl=10) as session:
            await AsyncElection(session, name, namespace=NAMESPACE).campaign("v")
            elected = time.perf_counter()
            leader = await asyncio.wait_for(anext(stream), 10)
            reported = time.perf_counter()
        if leader is None:
            raise RuntimeError(f"{name}: the observer reported nobody")
        return reported - elected
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def measure(endpoint: str, trials: int) -> list[float]:
    delays: list[float] = []
    async with AsyncClient(endpoint) as client, AsyncClient(endpoint) as other:
        stop = asyncio.Event()

        async def churn() -> None:
            for _ in range(10_000_000):  # bounded; stopped long before
                if stop.is_set():
                    return
                await other.put(b"/churn", b"x")

        churner = asyncio.create_task(churn())
        try:
            for i in range(trials):
                delays.append(await trial(client, other, f"e{i}"))
        finally:
            stop.set()
            await churner
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "watch_start_probe.json",
    )
    args = parser.parse_args()
    with EtcdCluster.start(1) as cluster:
        delays = sorted(asyncio.run(measure(cluster.endpoints[0], args.trials)))
    summary: dict[str, Any] = {
        "library": str(Path(etcd_elector.__file__).parent),
        "trials": len(delays),
        "p50_ms": round(statistics.median(delays) * 1000, 2),
        "p90_ms": round(delays[int(0.9 * len(delays))] * 1000, 2),
        "max_ms": round(delays[-1] * 1000, 2),
        "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
