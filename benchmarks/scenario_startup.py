"""Scenario 7, command start-up: the wall time of ``etcd-elector leader NAME`` against a live
etcd, next to ``etcdctl get KEY`` (a Go binary doing one read), a bare Python doing nothing
(``python -c pass``: the floor for any Python tool) and a bare Python importing what any gRPC
client needs before it sends anything (``import asyncio, grpc``; ``leader`` reads over etcd's
JSON gateway and imports neither).

Each run is a fresh process, from just before it is started to its exit; the four alternate
(A, B, C, D, A, B, C, D, ...) on one etcd that holds a leader, so the machine's load falls on
all alike; the load average is recorded before and after. The package's bytecode is compiled
first, as pip does when it installs it (a machine
with PYTHONDONTWRITEBYTECODE set would otherwise compile every module at every start).
People call ``leader`` from health checks and scripts: start-up is most of its cost.
"""

from __future__ import annotations

import asyncio
import compileall
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.machine import etcd_binaries
from harness.runner import Context, interleaved, log, scenario_main
from harness.stats import ratio, summarize

ELECTION = "startup"
PEERS = ["ours_leader", "go_get", "python_bare", "python_grpc"]


def commands(endpoint: str, key: str) -> dict[str, list[str]]:
    etcdctl = etcd_binaries()[1]
    return {
        "ours_leader": [
            sys.executable,
            "-m",
            "etcd_elector.cli",
            "--endpoints",
            endpoint,
            "leader",
            ELECTION,
        ],
        "go_get": [etcdctl, "--endpoints", endpoint, "get", key],
        "python_bare": [sys.executable, "-c", "pass"],
        "python_grpc": [sys.executable, "-c", "import asyncio, grpc"],
    }


def timed(argv: list[str]) -> float | None:
    """Seconds the command took; ``None`` if it failed (said on stderr, counted)."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        log(f"startup: {argv[:4]} exited {done.returncode}: {done.stderr.decode()[-300:]}")
        return None
    return elapsed


async def run(ctx: Context) -> dict[str, Any]:
    import etcd_elector
    from etcd_elector import AsyncClient
    from etcd_elector.testing import EtcdCluster

    compileall.compile_dir(str(Path(etcd_elector.__file__).parent), quiet=1)

    runs = 3 if ctx.quick else 60
    samples: dict[str, list[float]] = {p: [] for p in PEERS}
    failed: dict[str, int] = {p: 0 for p in PEERS}
    load_before = os.getloadavg()
    with EtcdCluster.start(1) as cluster:
        endpoint = cluster.endpoints[0]
        async with (
            AsyncClient(endpoint) as client,
            client.elector(ELECTION, value="the-leader") as elector,
        ):
            leading = asyncio.Event()
            work = asyncio.create_task(elector.run(lambda term: _hold(leading)))
            try:
                await asyncio.wait_for(leading.wait(), 30)
                leader = await client.election_view(ELECTION).leader()
                assert leader is not None
                argvs = commands(endpoint, leader.key)
                for peer in PEERS:  # warm the page cache once, outside the measurement
                    await asyncio.to_thread(timed, argvs[peer])
                log(f"startup: {runs} runs per peer, interleaved")
                for _trial, peer in interleaved(PEERS, runs):
                    seconds = await asyncio.to_thread(timed, argvs[peer])
                    if seconds is None:
                        failed[peer] += 1
                        if failed[peer] > runs // 10:
                            raise RuntimeError(f"{peer} failed {failed[peer]} of its runs")
                    else:
                        samples[peer].append(seconds)
            finally:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
    load_after = os.getloadavg()
    summaries = {p: summarize(v) for p, v in samples.items()}
    for peer, summary in summaries.items():
        log(f"startup {peer}: p50 {summary['p50'] * 1000:.0f} ms")
    return {
        "unit": "seconds",
        "runs_per_peer": runs,
        "failed_runs": failed,
        "results": summaries,
        "ratio_to_go_p50": ratio(summaries["ours_leader"]["p50"], summaries["go_get"]["p50"]),
        "above_python_floor_p50": summaries["ours_leader"]["p50"] - summaries["python_bare"]["p50"],
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
    }


async def _hold(leading: asyncio.Event) -> None:
    leading.set()
    await asyncio.Event().wait()


if __name__ == "__main__":
    scenario_main("startup", run)
