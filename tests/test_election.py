"""``AsyncElection`` and ``ElectionView`` against a healthy etcd: order, handover, proclaim,
no phantom leaders, fencing, clean cancellation, and an observer that misses nothing.
(One candidacy per election and session: tests/test_misuse.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, Recorder, namespace_of, wait_until

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    AsyncSession,
    AsyncWatch,
    CampaignFailed,
    Compare,
    EndReason,
    LeaderInfo,
    LeaderObserved,
    LeadershipLost,
    NotLeader,
    Op,
    SessionLost,
    Term,
)
from etcd_elector.etcd import WatchBatch
from etcd_elector.testing import EtcdMember, FaultProxy

NAME = "job"


async def candidate_count(election: AsyncElection) -> int:
    return len(await election.view.candidates())


async def wait_for_candidates(election: AsyncElection, count: int) -> None:
    async def enough() -> bool:
        return await candidate_count(election) == count

    await wait_until(enough, f"{count} candidates have written their keys")


async def finish(tasks: list[asyncio.Task[Term]]) -> None:
    """Cancel what is still running and collect every outcome (nothing left unretrieved)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- order and handover ----------------------------------------------------------------------


async def test_candidates_win_in_create_revision_order(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(client.session(ttl=10)) for _ in range(5)]
        elections = [AsyncElection(s, NAME, namespace=namespace) for s in sessions]
        first = await elections[0].campaign("c0")
        tasks: list[asyncio.Task[Term]] = []
        try:
            # Started one after the other: each key exists before the next campaign starts.
            for index, election in enumerate(elections[1:], start=1):
                tasks.append(asyncio.create_task(election.campaign(f"c{index}")))
                await wait_for_candidates(election, index + 1)
            listed = await elections[0].view.candidates()
            assert [c.value for c in listed] == [f"c{i}".encode() for i in range(5)]
            tokens = [c.token for c in listed]
            assert tokens == sorted(tokens) and len(set(tokens)) == 5
            assert first.token == tokens[0]
            assert not any(task.done() for task in tasks)

            for leader_index, task in enumerate(tasks, start=1):
                await elections[leader_index - 1].resign()
                assert not elections[leader_index - 1].is_leader()
                term = await asyncio.wait_for(task, WAIT_S)
                # Exactly the next one took over, in create-revision order.
                assert term.value == f"c{leader_index}".encode()
                assert term.token == tokens[leader_index]
                assert [e.is_leader() for e in elections] == [i == leader_index for i in range(5)]
                assert not any(t.done() for t in tasks[leader_index:])
                leader = await elections[0].leader()
                assert leader is not None and leader.token == term.token
        finally:
            await finish(tasks)


async def test_a_resign_wakes_exactly_one_of_50_waiters(
    etcd_endpoint: str, etcd_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each waiter watches only its predecessor, so a resign delivers exactly one watch event
    to all the waiters together: counted, not timed."""
    namespace = namespace_of(etcd_prefix)
    sentinel = f"{etcd_prefix}sentinel"
    prefix = f"{namespace}/{NAME}/".encode()
    delivered: list[tuple[Any, bytes, WatchBatch]] = []
    original = AsyncWatch._deliver

    def counting(watch: AsyncWatch, batch: WatchBatch) -> None:
        delivered.append((watch._hub, watch.request.key, batch))
        original(watch, batch)

    monkeypatch.setattr(AsyncWatch, "_deliver", counting)

    async with contextlib.AsyncExitStack() as stack:
        leader_client = await stack.enter_async_context(AsyncClient(etcd_endpoint))
        waiter_clients = [
            await stack.enter_async_context(AsyncClient(etcd_endpoint)) for _ in range(5)
        ]
        hubs = [c._watch_hub for c in waiter_clients]
        leader_session = await stack.enter_async_context(leader_client.session(ttl=10))
        leader = AsyncElection(leader_session, NAME, namespace=namespace)
        await leader.campaign("leader")

        sessions: list[AsyncSession] = [waiter_clients[i % 5].session(ttl=10) for i in range(50)]
        for session in sessions:
            stack.push_async_callback(session.close)
        await asyncio.gather(*(s.start() for s in sessions))
        waiters = [AsyncElection(s, NAME, namespace=namespace) for s in sessions]
        tasks = [asyncio.create_task(w.campaign(f"w{i}")) for i, w in enumerate(waiters)]
        stack.push_async_callback(finish, tasks)
        # One watch per waiter client that sees a write made after the resign: once every
        # client has it, every event of the resign has been delivered to that client.
        sentinels = [await stack.enter_async_context(c.watch(sentinel)) for c in waiter_clients]
        await wait_for_candidates(leader, 51)

        def all_waiting() -> bool:
            # Each waiter watches its predecessor's key and its own.
            active = sum(len(hub._active) for hub in hubs if hub is not None)
            return active == 2 * 50 + len(sentinels)

        await wait_until(all_waiting, "all 50 waiters watch their predecessor")
        # A watch created from a past revision starts "unsynced" at etcd and is caught up by a
        # background loop, which may deliver its events after newer ones of synced watches. A
        # probe watch from a past revision gets its event from a sync pass that catches up
        # every unsynced watch existing then: after it, every waiter's watch gets its events
        # in revision order with the barrier write below.
        probe = await leader_client.put(f"{etcd_prefix}probe", "p")
        async with waiter_clients[0].watch(
            f"{etcd_prefix}probe", start_revision=probe.revision
        ) as probe_watch:
            await asyncio.wait_for(probe_watch.__anext__(), WAIT_S)
        listed = await leader.view.candidates()
        successor = listed[1]
        assert listed[0].value == b"leader"
        before = len(delivered)

        await leader.resign()
        winner = next(i for i, w in enumerate(waiters) if w.session.lease_id == successor.lease_id)
        term = await asyncio.wait_for(tasks[winner], WAIT_S)
        assert term.token == successor.token
        await leader_client.put(sentinel, "barrier")

        def barrier_seen() -> bool:
            seen = {id(hub) for hub, key, _ in delivered[before:] if key == sentinel.encode()}
            return seen == {id(hub) for hub in hubs}

        await wait_until(barrier_seen, "every waiter client saw the barrier write")
        wakes = [
            (hub, key, batch)
            for hub, key, batch in delivered[before:]
            if key.startswith(prefix) and any(hub is h for h in hubs)
        ]
        assert len(wakes) == 1, [(key, batch) for _, key, batch in wakes]
        hub, key, batch = wakes[0]
        assert key == listed[0].key.encode()
        assert hub is waiter_clients[winner % 5]._watch_hub
        assert len(batch.events) == 1
        others = [t for i, t in enumerate(tasks) if i != winner]
        assert not any(t.done() for t in others)
        assert [w.is_leader() for w in waiters].count(True) == 1

        # Two more handovers, in create-revision order.
        current = winner
        for expected in listed[2:4]:
            await waiters[current].resign()
            nxt = next(i for i, w in enumerate(waiters) if w.session.lease_id == expected.lease_id)
            term = await asyncio.wait_for(tasks[nxt], WAIT_S)
            assert term.token == expected.token
            assert [w.is_leader() for w in waiters].count(True) == 1
            current = nxt
        assert sum(t.done() for t in tasks) == 3


# -- proclaim, resign --------------------------------------------------------------------


async def test_proclaim_and_check_need_leadership(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = namespace_of(etcd_prefix)
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=10) as session_a,
        client.session(ttl=10) as session_b,
    ):
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        with pytest.raises(NotLeader):
            await b.proclaim("never campaigned")
        with pytest.raises(NotLeader):
            await b.wait_lost()
        await a.campaign("a")
        waiting = asyncio.create_task(b.campaign("b"))
        try:
            await wait_for_candidates(a, 2)
            with pytest.raises(NotLeader):
                await b.proclaim("waiting")
            with pytest.raises(NotLeader):
                b.check()
            with pytest.raises(NotLeader):
                await b.txn([], [Op.put(f"{etcd_prefix}x", "b")])
            assert not await b.verify()
            await a.proclaim("a2")
            info = await a.leader()
            assert info is not None and info.value == b"a2"
            assert a.check().value == b"a2"

            await a.resign()
            await asyncio.wait_for(waiting, WAIT_S)
            with pytest.raises(NotLeader):
                await a.proclaim("a3")
            info = await b.leader()
            assert info is not None and info.value == b"b"
            await b.resign()
            await b.resign()  # nothing left to resign: a no-op
            assert await b.leader() is None
        finally:
            await finish([waiting])


async def test_term_end_is_signalled_with_its_reason(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, client.session(ttl=10) as session:
        election = AsyncElection(session, NAME, namespace=namespace)
        ended: list[tuple[int, str]] = []
        election.add_term_end_callback(lambda term, reason: ended.append((term.token, reason)))

        term = await election.campaign("x")
        assert term.is_leader() and not term.lost.is_set()
        await election.resign()
        assert await election.wait_lost() == EndReason.RESIGNED
        assert not term.is_leader() and term.end_reason == EndReason.RESIGNED
        assert ended == [(term.token, EndReason.RESIGNED)]

        # Someone else deletes our key: the term ends at once, without a call from us.
        term2 = await election.campaign("x")
        assert term2.token > term.token
        await client.delete(term2.key)
        reason = await asyncio.wait_for(election.wait_lost(), WAIT_S)
        assert reason == EndReason.KEY_DELETED
        assert not election.is_leader()
        assert ended[-1] == (term2.token, EndReason.KEY_DELETED)
        assert not await election.verify()

        # The session closing ends the term too.
        term3 = await election.campaign("x")
        assert await election.verify()
        await session.close()
        assert await election.wait_lost() == "closed"
        assert ended[-1] == (term3.token, "closed")
        assert len(ended) == 3


# -- no phantom leader -------------------------------------------------------------------------


async def test_revoked_waiter_raises_instead_of_leading(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with (
        AsyncClient(etcd_endpoint) as client,
        AsyncClient(etcd_endpoint) as other,
        client.session(ttl=10) as session_a,
        client.session(ttl=10) as session_b,
    ):
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        await a.campaign("a")
        waiting = asyncio.create_task(b.campaign("b"))
        try:
            await wait_for_candidates(a, 2)
            await other.lease_revoke(session_b.lease_id)
            with pytest.raises((SessionLost, CampaignFailed)):
                await asyncio.wait_for(waiting, WAIT_S)
            assert not b.is_leader()
            assert a.is_leader() and await a.verify()
            assert [c.value for c in await a.view.candidates()] == [b"a"]
        finally:
            await finish([waiting])


async def test_waiter_whose_key_vanishes_with_its_predecessor_fails_the_recheck(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """The leader's key and the waiter's key are deleted in one transaction: the waiter sees
    its predecessor go, but must not report itself leader with its own key gone."""
    namespace = namespace_of(etcd_prefix)
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=10) as session_a,
        client.session(ttl=10) as session_b,
    ):
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        term_a = await a.campaign("a")
        waiting = asyncio.create_task(b.campaign("b"))
        try:
            await wait_for_candidates(a, 2)
            b_key = f"{namespace}/{NAME}/{session_b.lease_id:x}"
            result = await client.txn([], [Op.delete(term_a.key), Op.delete(b_key)])
            assert result.succeeded
            with pytest.raises(CampaignFailed):
                await asyncio.wait_for(waiting, WAIT_S)
            assert not b.is_leader()
            assert session_b.alive  # the session is fine; only the key is gone
            assert await b.leader() is None
            # The session can campaign again and win.
            term_b = await b.campaign("b")
            assert term_b.token > term_a.token
        finally:
            await finish([waiting])


async def test_cancelled_campaign_leaves_no_key(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = namespace_of(etcd_prefix)
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=10) as session_a,
        client.session(ttl=10) as session_b,
    ):
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        await a.campaign("a")
        waiting = asyncio.create_task(b.campaign("b"))
        await wait_for_candidates(a, 2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert b.key is None
        keys = [kv.key for kv in (await client.get_prefix(etcd_prefix)).kvs]
        assert keys == [f"{namespace}/{NAME}/{session_a.lease_id:x}".encode()]
        assert session_b.alive
        # A resign now hands over to nobody; the cancelled candidate stays out.
        await a.resign()
        assert await a.leader() is None
        assert not b.is_leader()


# -- fencing -------------------------------------------------------------------------------------


async def test_tokens_strictly_increase_across_terms(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = namespace_of(etcd_prefix)
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=10) as session_a,
        client.session(ttl=10) as session_b,
    ):
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        tokens: list[int] = []
        for round_ in range(3):
            for election in (a, b):
                term = await election.campaign(f"r{round_}")
                assert election.is_leader()
                tokens.append(term.token)
                info = await election.leader()
                assert info is not None and info.token == term.token
                await election.resign()
        assert all(x < y for x, y in itertools.pairwise(tokens)), tokens


async def test_fenced_txn_fails_once_the_term_is_over_at_etcd(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: Any
) -> None:
    """A's connection is slowed down, so A has not heard yet that its key is gone when B is
    elected: A still believes it leads, and etcd itself must refuse A's fenced write."""
    namespace = namespace_of(etcd_prefix)
    fenced = f"{etcd_prefix}fenced"
    proxy: FaultProxy = fault_proxy(etcd_endpoint)
    async with (
        AsyncClient(etcd_endpoint) as direct,
        AsyncClient(proxy.endpoint, timeout=10, stream_timeout=5) as slow,
        slow.session(ttl=10) as session_a,
        direct.session(ttl=10) as session_b,
    ):
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        term_a = await a.campaign("a")
        ok = await a.txn([], [Op.put(fenced, "a1")])
        assert ok.succeeded
        waiting = asyncio.create_task(b.campaign("b"))
        try:
            await wait_for_candidates(a, 2)
            proxy.delay(0.75)
            await direct.delete(term_a.key)  # A's term is over at etcd
            term_b = await asyncio.wait_for(waiting, WAIT_S)
            assert term_b.token > term_a.token
            assert a.is_leader(), "A should not have heard of its loss yet"
            with pytest.raises(LeadershipLost) as caught:
                await a.txn([], [Op.put(fenced, "a2")])
            assert caught.value.reason == EndReason.KEY_DELETED
            assert not a.is_leader()
            assert not term_a.is_leader() and term_a.lost.is_set()
            assert term_a.end_reason == EndReason.KEY_DELETED
            with pytest.raises(LeadershipLost):
                term_a.check()
            assert term_b.is_leader()
            stored = (await direct.get(fenced)).kv
            assert stored is not None and stored.value == b"a1"

            # The new leader's fenced writes commit; its own failed compares do not end it.
            done = await b.txn([Compare.value(fenced) == b"a1"], [Op.put(fenced, "b1")])
            assert done.succeeded
            refused = await b.txn(
                [Compare.value(fenced) == b"nope"], [Op.put(fenced, "b2")], [Op.get(fenced)]
            )
            assert not refused.succeeded
            assert len(refused.responses) == 1  # only the caller's own failure ops
            assert b.is_leader()
            stored = (await direct.get(fenced)).kv
            assert stored is not None and stored.value == b"b1"
        finally:
            proxy.heal()
            await finish([waiting])


# -- observe ------------------------------------------------------------------------------------


def info(leader: LeaderInfo | None) -> tuple[bytes, int] | None:
    return None if leader is None else (leader.value, leader.token)


async def test_observe_sees_every_change_and_no_leader(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(AsyncClient(etcd_endpoint))
        watcher = await stack.enter_async_context(AsyncClient(etcd_endpoint))
        sessions = [await stack.enter_async_context(client.session(ttl=10)) for _ in range(4)]
        a, b, c, d = (AsyncElection(s, NAME, namespace=namespace) for s in sessions)
        recorder = Recorder(watcher.election_view(NAME, namespace=namespace).observe())
        stack.push_async_callback(recorder.close)
        tasks: list[asyncio.Task[Term]] = []
        stack.push_async_callback(finish, tasks)

        assert await recorder.next(0) is None  # nobody ever led
        term_a = await a.campaign("a1")
        assert info(await recorder.next(1)) == (b"a1", term_a.token)
        await a.proclaim("a2")
        assert info(await recorder.next(2)) == (b"a2", term_a.token)
        tasks.append(asyncio.create_task(b.campaign("b")))
        await wait_for_candidates(a, 2)
        tasks.append(asyncio.create_task(c.campaign("c")))
        await wait_for_candidates(a, 3)
        await a.resign()
        term_b = await asyncio.wait_for(tasks[0], WAIT_S)
        assert info(await recorder.next(3)) == (b"b", term_b.token)
        await sessions[1].close()  # B's lease revoked: its key goes, C takes over
        term_c = await asyncio.wait_for(tasks[1], WAIT_S)
        assert info(await recorder.next(4)) == (b"c", term_c.token)
        await c.resign()
        assert await recorder.next(5) is None
        term_d = await d.campaign("d")
        assert info(await recorder.next(6)) == (b"d", term_d.token)
        # Nothing in between: every change once, in order.
        assert [info(x) for x in recorder.items] == [
            None,
            (b"a1", term_a.token),
            (b"a2", term_a.token),
            (b"b", term_b.token),
            (b"c", term_c.token),
            None,
            (b"d", term_d.token),
        ]


async def test_observe_does_not_miss_a_leader_elected_while_it_starts(
    etcd_endpoint: str, etcd_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody leads when the observer first reads; a leader is elected before its watch starts.
    The observer must still report that leader (it yields None first, or directly the leader)."""
    namespace = namespace_of(etcd_prefix)
    async with (
        AsyncClient(etcd_endpoint) as client,
        AsyncClient(etcd_endpoint) as watcher,
        client.session(ttl=10) as session,
    ):
        reached, gate = asyncio.Event(), asyncio.Event()
        real_get_prefix = watcher.get_prefix

        async def gated_get_prefix(key: Any, **options: Any) -> Any:
            # The read is answered ("nobody"); the observer gets it only once a leader exists.
            result = await real_get_prefix(key, **options)
            if not gate.is_set():
                reached.set()
                await gate.wait()
            return result

        monkeypatch.setattr(watcher, "get_prefix", gated_get_prefix)
        recorder = Recorder(watcher.election_view(NAME, namespace=namespace).observe())
        try:
            await asyncio.wait_for(reached.wait(), WAIT_S)
            term = await AsyncElection(session, NAME, namespace=namespace).campaign("late")
            gate.set()
            await recorder.wait_latest(
                lambda x: info(x) == (b"late", term.token), "the observer reports the leader"
            )
            assert [info(x) for x in recorder.items] in (
                [(b"late", term.token)],
                [None, (b"late", term.token)],
            )
        finally:
            gate.set()
            await recorder.close()


async def test_observe_survives_compaction_while_behind(
    etcd_member: EtcdMember, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = etcd_member.client_endpoint
    namespace = "/compaction"
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(AsyncClient(endpoint))
        watcher = await stack.enter_async_context(AsyncClient(endpoint))
        sessions = [await stack.enter_async_context(client.session(ttl=10)) for _ in range(4)]
        a, b, c, d = (AsyncElection(s, NAME, namespace=namespace) for s in sessions)
        tasks: list[asyncio.Task[Term]] = []
        stack.push_async_callback(finish, tasks)

        # 1. The observer's watch is created, but its read (at the watch's start) is held
        # until that revision is compacted away.
        read_reached, read_gate = asyncio.Event(), asyncio.Event()
        real_get_prefix = watcher.get_prefix

        async def gated_get_prefix(prefix: Any, **options: Any) -> Any:
            if options.get("revision") and not read_gate.is_set():
                read_reached.set()
                await read_gate.wait()
            return await real_get_prefix(prefix, **options)

        monkeypatch.setattr(watcher, "get_prefix", gated_get_prefix)
        stack.callback(read_gate.set)
        events = Recorder(watcher.election_view(NAME, namespace=namespace).observe_events())
        stack.push_async_callback(events.close)
        await asyncio.wait_for(read_reached.wait(), WAIT_S)

        await a.campaign("a")
        tasks.append(asyncio.create_task(b.campaign("b")))
        await wait_for_candidates(a, 2)
        await a.resign()
        term_b = await asyncio.wait_for(tasks[0], WAIT_S)
        revision = (await client.get("/")).revision
        await client.compact(revision)
        read_gate.set()  # the read's revision is compacted now: read and watch again
        await events.wait_latest(
            lambda x: isinstance(x, LeaderObserved) and info(x.leader) == (b"b", term_b.token),
            "B after compaction",
        )
        # etcd answered all along: a compacted read is no outage, and A (gone before the
        # observer could read) is never reported.
        assert [info(x.leader) for x in events.items if isinstance(x, LeaderObserved)] == [
            (b"b", term_b.token)
        ]
        assert all(isinstance(x, LeaderObserved) for x in events.items)
        await events.close()
        recorder = Recorder(watcher.election_view(NAME, namespace=namespace).observe())
        stack.push_async_callback(recorder.close)
        await recorder.wait_latest(lambda x: info(x) == (b"b", term_b.token), "B observed")

        # 2. The observer reads the revision of a change after that revision was compacted.
        read_reached.clear()
        read_gate.clear()
        tasks.append(asyncio.create_task(c.campaign("c")))
        await wait_for_candidates(a, 2)
        await b.resign()
        await asyncio.wait_for(read_reached.wait(), WAIT_S)
        term_c = await asyncio.wait_for(tasks[1], WAIT_S)
        await c.resign()
        term_d = await d.campaign("d")
        revision = (await client.get("/")).revision
        await client.compact(revision)
        read_gate.set()
        await recorder.wait_latest(lambda x: info(x) == (b"d", term_d.token), "D after compaction")
        assert term_c.token < term_d.token
        assert [info(x) for x in recorder.items] == [(b"b", term_b.token), (b"d", term_d.token)]


async def observe_first(stream: AsyncIterator[LeaderInfo | None]) -> LeaderInfo | None:
    async for item in stream:
        return item
    raise AssertionError("observe() ended")


async def test_observe_starts_with_the_current_leader(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, client.session(ttl=10) as session:
        view = client.election_view(NAME, namespace=namespace)
        stream = view.observe()
        try:
            assert await asyncio.wait_for(observe_first(stream), WAIT_S) is None
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        term = await AsyncElection(session, NAME, namespace=namespace).campaign("x")
        stream = view.observe()
        try:
            first = await asyncio.wait_for(observe_first(stream), WAIT_S)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        assert info(first) == (b"x", term.token)
        assert first is not None and first.lease_id == session.lease_id
        assert await view.leader() == first
        assert [c.token for c in await view.candidates()] == [term.token]
