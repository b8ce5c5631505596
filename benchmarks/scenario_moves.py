"""Scenario 7, planned moves: a handoff to a chosen successor next to a plain resign, a
candidate of higher priority joining, a pause and a resume.

Five ``AsyncElector`` candidates in this process (asyncio tasks, one session each), on one
etcd. Trials alternate between:

- ``resign``: the leader's work returns, the elector resigns (the next in line leads);
  measured from the work returning to the next ``on_elected``;
- ``handoff``: ``view.request_handoff(to=X)``, X chosen at random among the waiting four;
  measured from the request to X's ``on_elected``.

For both, the leaderless gap is the old term's end (``term.ended_at``) to the new term's
start (``term.elected_at``), on the same clock. Then a few trials of a priority-5 candidate
joining (from ``run()`` to its ``on_elected``), and of ``pause`` (to no candidate key left)
and ``resume`` (to the next ``on_elected``).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from harness.runner import Context, interleaved, log, scenario_main
from harness.stats import summarize

CANDIDATES = 5
NAME = "moves"


class Bench:
    def __init__(self, client: Any) -> None:
        from etcd_elector import AsyncElector, Term

        self.client = client
        self.view = client.election_view(NAME)
        self.elected: asyncio.Queue[tuple[float, Term, str]] = asyncio.Queue()
        self.leader: str | None = None
        self.term: Term | None = None
        self.release: dict[str, asyncio.Event] = {}
        self.electors: dict[str, AsyncElector] = {}
        self.runners: list[asyncio.Task[Any]] = []

    def add(self, value: str, priority: int = 1) -> None:
        from etcd_elector import AsyncElector, Term

        release = asyncio.Event()
        self.release[value] = release

        def on_elected(term: Term) -> None:
            self.elected.put_nowait((time.perf_counter(), term, value))

        async def work(term: Term) -> None:
            await release.wait()
            release.clear()

        elector = AsyncElector(
            self.client, NAME, value=value, on_elected=on_elected, priority=priority
        )
        self.electors[value] = elector
        self.runners.append(asyncio.create_task(elector.run(work)))

    async def next_elected(self) -> tuple[float, Any, str]:
        at, term, value = await asyncio.wait_for(self.elected.get(), 15)
        self.leader, self.term = value, term
        return at, term, value

    async def queued(self, count: int) -> None:
        for _ in range(3000):
            if len(await self.view.candidates()) == count:
                return
            await asyncio.sleep(0.005)
        raise TimeoutError(f"{count} candidates never queued")

    async def close(self) -> None:
        for elector in self.electors.values():
            await elector.close()
        await asyncio.gather(*self.runners, return_exceptions=True)


async def run(ctx: Context) -> dict[str, Any]:
    from etcd_elector import AsyncClient
    from etcd_elector.testing import EtcdCluster

    rng = random.Random(ctx.seed)
    trials = 4 if ctx.quick else 220
    few = 2 if ctx.quick else 20
    samples: dict[str, list[float]] = {
        k: []
        for k in ("resign", "handoff", "gap_resign", "gap_handoff", "priority", "pause", "resume")
    }
    with EtcdCluster.start(1) as cluster:
        async with AsyncClient(cluster.endpoints[0]) as client:
            bench = Bench(client)
            try:
                bench.add("c0")
                await bench.next_elected()
                for index in range(1, CANDIDATES):
                    bench.add(f"c{index}")
                await bench.queued(CANDIDATES)
                log(f"moves: {trials} handoffs and {trials} resigns, interleaved")
                for trial, kind in interleaved(["resign", "handoff"], trials):
                    old = bench.term
                    assert old is not None and bench.leader is not None
                    if kind == "resign":
                        t0 = time.perf_counter()
                        bench.release[bench.leader].set()
                        at, term, _ = await bench.next_elected()
                    else:
                        waiting = [v for v in bench.release if v != bench.leader]
                        target = rng.choice(waiting)
                        t0 = time.perf_counter()
                        await bench.view.request_handoff(to=target)
                        at, term, value = await bench.next_elected()
                        assert value == target, (value, target)
                    samples[kind].append(at - t0)
                    if old.ended_at is not None:
                        samples[f"gap_{kind}"].append(term.elected_at - old.ended_at)
                    await bench.queued(CANDIDATES)
                    if trial % 50 == 0 and kind == "handoff":
                        log(f"moves: {trial}/{trials}")
                log(f"moves: {few} priority joins, pauses and resumes")
                for index in range(few):
                    value = f"p{index}"
                    t0 = time.perf_counter()
                    bench.add(value, priority=5)
                    at, _, elected = await bench.next_elected()
                    assert elected == value, (elected, value)
                    samples["priority"].append(at - t0)
                    await bench.electors.pop(value).close()
                    await bench.next_elected()
                    await bench.queued(CANDIDATES)
                    t0 = time.perf_counter()
                    await bench.view.pause("benchmark")
                    await bench.queued(0)
                    samples["pause"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    await bench.view.resume()
                    at, _, _ = await bench.next_elected()
                    samples["resume"].append(at - t0)
                    await bench.queued(CANDIDATES)
            finally:
                await bench.close()
    return {
        "unit": "seconds",
        "candidates": CANDIDATES,
        "trials": trials,
        "drain": 0.0,
        "samples": samples,
        "summary": {k: summarize(v) for k, v in samples.items()},
    }


if __name__ == "__main__":
    scenario_main("moves", run)
