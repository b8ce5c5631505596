"""Long-lived clients under churn leak nothing: cancelled watch registrations, elector cycles and
campaign/resign cycles leave no watch at etcd, no broken stream and no memory behind.

etcd's own count of watchers (its ``/metrics``) is the judge of leaked watches: a client may
believe it cancelled a watch that etcd still serves.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import tracemalloc

import pytest
from helpers.election_kit import namespace_of, wait_until
from helpers.etcd_metrics import watcher_count
from helpers.watch_kit import next_batch

from etcd_elector import AsyncClient, AsyncElection, Term
from etcd_elector.testing import EtcdMember

pytestmark = pytest.mark.timeout(120)

SEED = 20261113
STORM_TASKS = 300  # registrations started at once
CANCEL_SHARE = 0.8  # of them cancelled, each at a random point
ELECTOR_CYCLES = 20
HALF = 150  # campaign/resign cycles in each measured half


def _hub_is_empty(client: AsyncClient, keep: int = 0) -> bool:
    hub = client._watch_hub
    assert hub is not None
    return len(hub._active) == keep and not hub._pending


async def test_cancelling_watch_registrations_at_random_points_leaks_nothing(
    etcd_member: EtcdMember, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Hundreds of ``async with client.watch(...)`` cancelled anywhere (queued, on the wire,
    confirmed but not yet returned, in the body, while cancelling): etcd ends up holding only
    the watches still wanted, the shared stream never breaks, and every watch that lived got
    its own key's events (the matching of etcd's "created" answers never shifted)."""
    caplog.set_level(logging.INFO, logger="etcd_elector.etcd._watch")
    rng = random.Random(SEED)
    baseline = await watcher_count(etcd_member)
    mismatched: list[tuple[str, list[bytes]]] = []

    async with (
        AsyncClient(etcd_member.client_endpoint) as client,
        client.watch(etcd_prefix + "long-lived") as long_lived,
    ):

        async def watch_own_key(index: int) -> None:
            key = f"{etcd_prefix}k{index}"
            async with client.watch(key) as watch:
                await client.put(key, "x")
                batch = await next_batch(watch)
                keys = [event.kv.key for event in batch.events]
                if keys != [key.encode()]:
                    mismatched.append((key, keys))

        tasks = [asyncio.create_task(watch_own_key(i)) for i in range(STORM_TASKS)]
        for task in tasks:
            # A random point: a few turns of the loop, and now and then a little I/O time.
            for _ in range(rng.randrange(8)):
                await asyncio.sleep(0)
            if rng.random() < 0.2:
                await asyncio.sleep(rng.uniform(0, 0.003))
            if rng.random() < CANCEL_SHARE:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)

        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        failed = [r for r in results if r is not None and not isinstance(r, asyncio.CancelledError)]
        assert failed == []
        assert 0 < cancelled < STORM_TASKS  # both kinds of ending happened
        assert mismatched == []

        # etcd holds exactly the long-lived watch again (cancels of late ids are async).
        await wait_until(
            lambda: _hub_is_empty(client, keep=1), "the client forgets every dropped watch"
        )
        await wait_until(
            lambda: _etcd_watchers_are(etcd_member, baseline + 1),
            "etcd's watcher count returns to the baseline",
        )

        # The stream never broke: the watch opened before the storm still delivers.
        await client.put(etcd_prefix + "long-lived", "after the storm")
        batch = await next_batch(long_lived)
        assert [e.kv.value for e in batch.events] == [b"after the storm"]

    noisy = [r.getMessage() for r in caplog.records if r.name == "etcd_elector.etcd._watch"]
    assert noisy == []  # no "watch stream failed", no "confirmed a watch nobody asked for"


async def test_elector_cycles_on_one_client_leave_no_watch_behind(
    etcd_member: EtcdMember, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_member.client_endpoint) as client:
        baseline = await watcher_count(etcd_member)
        for _ in range(ELECTOR_CYCLES):
            async with client.elector(
                "cycles", namespace=namespace_of(etcd_prefix), ttl=5, requeue=False
            ) as elector:
                await elector.run(_return_at_once)
        await wait_until(lambda: _hub_is_empty(client), "the client holds no watch")
        await wait_until(
            lambda: _etcd_watchers_are(etcd_member, baseline),
            f"etcd holds no watch after {ELECTOR_CYCLES} elector cycles",
        )


async def test_a_long_lived_session_keeps_nothing_per_term(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client, client.session(ttl=10) as session:
        election = AsyncElection(session, "churn", namespace=namespace_of(etcd_prefix))

        async def cycles(count: int) -> None:
            for _ in range(count):
                await election.campaign("v")
                await election.resign()

        await cycles(30)  # warm up: streams, caches, first-use allocations
        marks: list[tuple[int, int]] = []
        tracemalloc.start()
        try:
            for _ in range(3):
                gc.collect()
                marks.append((tracemalloc.get_traced_memory()[0], len(gc.get_objects())))
                if len(marks) < 3:
                    await cycles(HALF)
        finally:
            tracemalloc.stop()
        # Only this test's terms: other tests' may still be held by their exceptions' frames.
        live_terms = sum(
            isinstance(o, Term) and o.key.startswith(etcd_prefix) for o in gc.get_objects()
        )

    (_, _), (bytes_1, objects_1), (bytes_2, objects_2) = marks
    # Flat: the second half adds less than one object (or 100 bytes) per term. A term that
    # stayed reachable cost a dozen objects and about 2 KB.
    assert objects_2 - objects_1 < HALF // 2, marks
    assert bytes_2 - bytes_1 < 100 * HALF, marks
    assert live_terms <= 1  # only the last term, which the election still knows


async def _return_at_once(term: Term) -> None:
    return None


async def _etcd_watchers_are(member: EtcdMember, expected: int) -> bool:
    return await watcher_count(member) == expected
