"""Scenario 4, scale.

Part A: one election with N = 10, 100, 1000 candidates (sessions spread over 4 processes, 2
clients each, so the client count does not change with N). Reports the time to get every
candidate queued, handoff latency (resign -> next elected, times reported by the workers),
and the etcd requests and watch events per handoff, from etcd's /metrics before and after H
handoffs, less the idle rate (keepalives, watch-stream probes) measured over a window of the
same length. Each handoff includes the resigned candidate campaigning again.

Part B: one process holding 1,000 elections (one shared session, and one session each) and
10,000 elections (one shared session): resident memory, idle CPU over 10 s, idle etcd
requests per second, campaign throughput.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from harness.children import Child, ChildExited, Line
from harness.etcd_metrics import is_gauge, metrics_delta, requests_by_method, scrape
from harness.layout import WORKERS
from harness.runner import Context, log, scenario_main
from harness.stats import summarize

WORKER_PROCESSES = 4
CLIENTS_PER_WORKER = 2


async def one_size(endpoint: str, url: str, n: int, handoffs: int) -> dict[str, Any]:
    election = f"scale-{n}"
    per_worker = [
        n // WORKER_PROCESSES + (1 if i < n % WORKER_PROCESSES else 0)
        for i in range(WORKER_PROCESSES)
    ]
    events: list[Line] = []
    changed = asyncio.Event()

    def on_line(line: Line) -> None:
        nonlocal changed
        events.append(line)
        old, changed = changed, asyncio.Event()
        old.set()

    async def wait_for(pred: Any, since: int, timeout: float = 60.0) -> Line:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = since
        while True:
            while index < len(events):
                if pred(events[index]):
                    return events[index]
                index += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"scale n={n}: no matching event within {timeout:g}s")
            for child in workers:
                if child.exited_at is not None:
                    raise ChildExited(child)
            await asyncio.wait({asyncio.ensure_future(changed.wait())}, timeout=remaining)

    def is_event(name: str) -> Any:
        return lambda line: (line.json or {}).get("event") == name

    workers = [
        Child(
            f"scale-{n}-w{w}",
            [
                sys.executable,
                str(WORKERS / "scale_worker.py"),
                "--endpoint",
                endpoint,
                "--election",
                election,
                "--sessions",
                str(count),
                "--clients",
                str(CLIENTS_PER_WORKER),
                "--worker",
                str(w),
                "--ttl",
                "30",
            ],
            on_line=on_line,
            stdin=True,
        )
        for w, count in enumerate(per_worker)
        if count > 0
    ]
    try:
        for child in workers:
            await child.start()
        ready_lines = []
        for child in workers:
            ready_lines.append(
                await child.wait_line(lambda x: (x.json or {}).get("event") == "ready", 120)
            )
        begins = [
            float(line.json["time"])  # type: ignore[index]
            for c in workers
            for line in c.lines
            if (line.json or {}).get("event") == "begin"
        ]
        ramp = max(float(x.json["time"]) for x in ready_lines) - min(begins)  # type: ignore[index]
        leader_line = await wait_for(is_event("elected"), 0)
        leader_worker = int(leader_line.json["worker"])  # type: ignore[index]
        await asyncio.sleep(1.0)
        latencies: list[float] = []
        before = scrape(url)
        for _ in range(handoffs):
            since = len(events)
            worker = next(c for c in workers if c.name.endswith(f"-w{leader_worker}"))
            await worker.send("resign")
            resigned = await wait_for(is_event("resigned"), since)
            elected = await wait_for(is_event("elected"), since)
            await wait_for(
                lambda x, r=resigned: (
                    (x.json or {}).get("event") == "queued" and x.child is r.child
                ),
                since,
            )
            latencies.append(float(elected.json["time"]) - float(resigned.json["t0"]))  # type: ignore[index]
            leader_worker = int(elected.json["worker"])  # type: ignore[index]
            await asyncio.sleep(0.1)
        after = scrape(url)
        window = after["_time"] - before["_time"]
        idle_before = scrape(url)
        await asyncio.sleep(window)
        idle_after = scrape(url)
        busy = metrics_delta(before, after)
        idle = metrics_delta(idle_before, idle_after)
        scale = window / max(idle["_seconds"], 1e-9)
        net: dict[str, float] = {}
        for key in set(busy) | set(idle):
            if key.startswith("_") or is_gauge(key):
                continue
            net[key] = (busy.get(key, 0.0) - idle.get(key, 0.0) * scale) / handoffs
        return {
            "candidates": n,
            "workers": len(workers),
            "clients": len(workers) * CLIENTS_PER_WORKER,
            "handoffs": handoffs,
            "queue_seconds": ramp,
            "handoff_latency": summarize(latencies),
            "latencies": latencies,
            "per_handoff_net": net,
            "per_handoff_requests_net": {
                k.split(":", 1)[1]: v
                for k, v in net.items()
                if k.startswith("grpc_server_msg_received_total:")
            },
            "per_handoff_watch_events_net": net.get("etcd_debugging_mvcc_events_total", 0.0),
            "window_seconds": window,
            "busy_delta": busy,
            "idle_delta": idle,
            "watchers": after.get("etcd_debugging_mvcc_watcher_total"),
            "watch_streams": after.get("etcd_debugging_mvcc_watch_stream_total"),
        }
    finally:
        for child in workers:
            if child.running:
                try:
                    await asyncio.wait_for(child.send("quit"), 2)
                    await asyncio.wait_for(child.wait_line(lambda x: False, 30), 30)
                except (ChildExited, TimeoutError, OSError):
                    pass
            await child.stop()


async def one_process(
    endpoint: str, url: str, elections: int, mode: str, idle: float, tag: str
) -> dict[str, Any]:
    child = Child(
        f"memory-{tag}",
        [
            sys.executable,
            str(WORKERS / "memory_worker.py"),
            "--endpoint",
            endpoint,
            "--elections",
            str(elections),
            "--mode",
            mode,
            "--idle",
            str(idle),
            "--prefix",
            tag,
            "--metrics-url",
            url,
        ],
    )
    await child.start()
    try:
        await child.wait_line(lambda x: (x.json or {}).get("event") == "idle_start", 600)
        before = scrape(url)
        end = await child.wait_line(lambda x: (x.json or {}).get("event") == "idle_end", 120)
        after = scrape(url)
        closed = await child.wait_line(lambda x: (x.json or {}).get("event") == "closed", 300)
        data = dict(end.json or {})
        delta = metrics_delta(before, after)
        seconds = delta["_seconds"]
        requests = requests_by_method(delta)
        data.update(
            mode=mode,
            rss_kib=max(data["rss_held_kib"], data["rss_after_idle_kib"]),
            rss_mib=max(data["rss_held_kib"], data["rss_after_idle_kib"]) / 1024,
            rss_growth_mib=(
                max(data["rss_held_kib"], data["rss_after_idle_kib"]) - data["rss_client_kib"]
            )
            / 1024,
            idle_cpu_percent=100 * data["idle_cpu_seconds"] / data["idle_seconds"],
            idle_requests_per_second={k: v / seconds for k, v in requests.items()},
            idle_requests_per_second_total=sum(requests.values()) / seconds,
            campaigns_per_second=elections / data["total_seconds"],
            close_seconds=(closed.json or {}).get("close_seconds"),
            watchers=after.get("etcd_debugging_mvcc_watcher_total"),
            warnings=[x.text[:300] for x in child.lines if x.stream == "err"][:20],
            warning_count=sum(1 for x in child.lines if x.stream == "err"),
        )
        return data
    finally:
        await child.stop()


async def run(ctx: Context) -> dict[str, Any]:
    from etcd_elector.testing import EtcdCluster

    sizes = [10, 100] if ctx.quick else [10, 100, 1000]
    handoffs = 3 if ctx.quick else 30
    memory_configs = (
        [(50, "shared"), (50, "per-election"), (200, "shared")]
        if ctx.quick
        else [(1000, "shared"), (1000, "per-election"), (10000, "shared")]
    )
    idle = 2.0 if ctx.quick else 10.0
    part_a = []
    part_b = []
    with EtcdCluster.start(1) as cluster:
        endpoint = cluster.endpoints[0]
        url = cluster.members[0].client_url
        for n in sizes:
            log(f"scale: one election, {n} candidates, {handoffs} handoffs")
            started = time.time()
            part_a.append(await one_size(endpoint, url, n, handoffs))
            log(f"scale: n={n} took {time.time() - started:.1f}s")
        for i, (count, mode) in enumerate(memory_configs):
            log(f"scale: one process, {count} elections, {mode} session(s)")
            try:
                part_b.append(await one_process(endpoint, url, count, mode, idle, f"mem{i}"))
            except (ChildExited, TimeoutError) as exc:
                log(f"scale: {count} elections, {mode}: FAILED: {exc}")
                part_b.append({"elections": count, "mode": mode, "error": str(exc)[-1500:]})
    return {"one_election": part_a, "one_process": part_b, "idle_window_seconds": idle}


if __name__ == "__main__":
    scenario_main("scale", run)
