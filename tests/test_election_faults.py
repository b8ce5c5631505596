"""Elections under faults: a blackholed leader (zombie), a paused leader process, etcd member
restarts and a dead etcd leader, compaction and network partitions under an observer.

The guarantee under test everywhere: never two leaders at once, and every loss is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, Recorder, namespace_of, wait_until

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    EndReason,
    Term,
    TransportError,
    _clock,
    check_timing,
)
from etcd_elector._keys import as_bytes
from etcd_elector.etcd import GetResult, KeepAliveAnswer
from etcd_elector.testing import EtcdCluster, EtcdMember, FaultProxy

ProxyFactory = Callable[[str], FaultProxy]

NAME = "job"
CANDIDATE_SCRIPT = Path(__file__).parent / "helpers" / "candidate.py"


def fast_client(endpoints: str | list[str]) -> AsyncClient:
    """A client that gives up on a silent or dead endpoint quickly."""
    return AsyncClient(endpoints, timeout=2, connect_timeout=0.5, stream_timeout=1)


async def finish(tasks: list[asyncio.Task[Term]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_for_candidates(election: AsyncElection, count: int) -> None:
    async def enough() -> bool:
        return len(await election.view.candidates()) == count

    await wait_until(enough, f"{count} candidates have written their keys")


# -- zombie: a leader cut off from etcd -----------------------------------------------------------


async def zombie_trial(
    trial: int, etcd_endpoint: str, namespace: str, proxy: FaultProxy, direct: AsyncClient
) -> tuple[float, float]:
    """One trial: the leader's connection is blackholed at a random phase of its keepalive
    cycle. Returns (leader's loss stamp, successor's election stamp)."""
    name = f"zombie{trial}"
    async with (
        AsyncClient(proxy.endpoint, timeout=2, connect_timeout=0.5, stream_timeout=1) as cut,
        cut.session(ttl=2, margin=0.5) as zombie_session,
        direct.session(ttl=10) as successor_session,
    ):
        zombie = AsyncElection(zombie_session, name, namespace=namespace)
        successor = AsyncElection(successor_session, name, namespace=namespace)
        loss_stamps: list[float] = []
        zombie.add_term_end_callback(lambda _term, _reason: loss_stamps.append(_clock.now()))
        answered = asyncio.Event()

        def on_answer(_answer: KeepAliveAnswer) -> None:
            answered.set()

        zombie_session.add_keepalive_observer(on_answer)
        await zombie.campaign("zombie")

        async def stamp_wait_lost() -> float:
            await zombie.wait_lost()
            return _clock.now()

        waited = asyncio.create_task(stamp_wait_lost())
        waiting = asyncio.create_task(successor.campaign("successor"))
        try:
            await wait_for_candidates(successor, 2)
            answered.clear()
            await asyncio.wait_for(answered.wait(), WAIT_S)  # just after a renewal...
            await asyncio.sleep(random.uniform(0, zombie_session.keepalive_interval))
            assert zombie.is_leader(), f"trial {trial}: lost before the fault"
            proxy.blackhole()

            term = await asyncio.wait_for(waiting, WAIT_S)
            elected_seen = _clock.now()
            # The zombie computes its own state: no I/O, no timer needed.
            assert not zombie.is_leader(), f"trial {trial}: two leaders"
            assert not zombie_session.alive
            assert loss_stamps, f"trial {trial}: the zombie's loss was never signalled"
            assert loss_stamps[0] < term.elected_at <= elected_seen, (
                f"trial {trial}: loss signalled {loss_stamps[0] - term.elected_at:+.3f}s "
                "after the successor's election"
            )
            assert waited.done(), f"trial {trial}: wait_lost() still waiting"
            assert waited.result() < term.elected_at
            assert zombie_session.loss_reason == EndReason.DEADLINE
            assert successor.is_leader()
            return loss_stamps[0], term.elected_at
        finally:
            proxy.heal()
            await finish([waiting])
            waited.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waited


async def test_zombie_leader_knows_it_lost_before_anyone_else_is_elected(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    namespace = namespace_of(etcd_prefix)
    trials = 10
    proxies = [fault_proxy(etcd_endpoint) for _ in range(trials)]
    async with AsyncClient(etcd_endpoint) as direct:
        results: list[tuple[float, float]] = []
        for batch in range(0, trials, 5):  # five at once, each in its own election
            results += await asyncio.gather(
                *(
                    zombie_trial(i, etcd_endpoint, namespace, proxies[i], direct)
                    for i in range(batch, batch + 5)
                )
            )
    assert len(results) == trials
    assert all(lost < elected for lost, elected in results)


# -- pause: a leader process frozen past its TTL --------------------------------------------------


def proc_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0]


async def test_paused_leader_process_sees_it_is_not_leader_first_thing_after_resume(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    lines: list[str] = []
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CANDIDATE_SCRIPT),
        "--endpoint",
        etcd_endpoint,
        "--namespace",
        namespace,
        "--name",
        NAME,
        "--ttl",
        "2",
        "--margin",
        "0.5",
        "--max-seconds",
        "60",
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    stdout = child.stdout

    async def read_lines() -> None:
        for _ in range(200_000):
            line = await stdout.readline()
            if not line:
                return
            lines.append(line.decode().strip())

    reader = asyncio.create_task(read_lines())
    stopped = False
    try:
        await wait_until(
            lambda: (
                any(line.startswith("CHECK") and line.endswith(" 1") for line in lines)
                or reader.done()
            ),
            "the child is elected and checking",
            timeout=30,
        )
        elected = [line for line in lines if line.startswith("ELECTED")]
        assert elected, lines
        child_token = int(elected[0].split()[1])

        async with AsyncClient(etcd_endpoint) as client, client.session(ttl=10) as session:
            other = AsyncElection(session, NAME, namespace=namespace)
            waiting = asyncio.create_task(other.campaign("test-process"))
            try:
                await wait_for_candidates(other, 2)
                os.kill(child.pid, signal.SIGSTOP)
                stopped = True
                await wait_until(lambda: proc_state(child.pid) in ("T", "t"), "child stops", 5)
                stopped_at = _clock.now()

                term = await asyncio.wait_for(waiting, WAIT_S)
                assert term.token > child_token
                resumed_at = _clock.now()  # just before the resume: no check can start sooner
                os.kill(child.pid, signal.SIGCONT)
                stopped = False
                assert term.elected_at < resumed_at

                await wait_until(
                    lambda: any(line.startswith("LOST") for line in lines) or reader.done(),
                    "the child reports its loss",
                )
                assert other.is_leader()
                assert await other.verify()
                assert await asyncio.wait_for(child.wait(), WAIT_S) == 0
                await asyncio.wait_for(reader, WAIT_S)
            finally:
                await finish([waiting])
    finally:
        if stopped:
            os.kill(child.pid, signal.SIGCONT)
        if child.returncode is None:
            child.kill()
            await child.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    checks = [line.split() for line in lines if line.startswith("CHECK")]
    parsed = [(float(before), float(after), value == "1") for _, before, after, value in checks]
    before_stop = [c for c in parsed if c[1] < stopped_at]
    after_resume = [c for c in parsed if c[0] > stopped_at]
    assert before_stop and all(leader for _, _, leader in before_stop[:1])
    # Every check begun after the freeze ran after the resume, and none of them said True.
    assert after_resume, lines[-5:]
    assert all(before >= resumed_at for before, _, _ in after_resume)
    assert not any(leader for _, _, leader in after_resume), after_resume[:3]
    # A check straddling the freeze may have read the clock before it: at most one.
    straddling = [c for c in parsed if c[0] <= stopped_at < c[1]]
    assert len(straddling) <= 1
    lost = next(line for line in lines if line.startswith("LOST"))
    assert lost.split()[1] in (EndReason.DEADLINE, EndReason.EXPIRED)


# -- etcd member restart --------------------------------------------------------------------------


async def test_leader_waiter_and_observer_survive_a_member_restart(
    etcd_member: EtcdMember,
) -> None:
    """After etcd restarts (same data), the leader still notices its key being deleted, the
    waiting candidate still takes over, and the observer still reports every leader."""
    endpoint = etcd_member.client_endpoint
    namespace = "/restart"
    async with contextlib.AsyncExitStack() as stack:
        ca = await stack.enter_async_context(fast_client(endpoint))
        cb = await stack.enter_async_context(fast_client(endpoint))
        watcher = await stack.enter_async_context(fast_client(endpoint))
        session_a = await stack.enter_async_context(ca.session(ttl=10))
        session_b = await stack.enter_async_context(cb.session(ttl=10))
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        recorder = Recorder(watcher.election_view(NAME, namespace=namespace).observe())
        stack.push_async_callback(recorder.close)
        tasks: list[asyncio.Task[Term]] = []
        stack.push_async_callback(finish, tasks)

        assert await recorder.next(0) is None
        term_a = await a.campaign("a")
        assert (await recorder.next(1)) is not None
        tasks.append(asyncio.create_task(b.campaign("b")))
        await wait_for_candidates(a, 2)

        await asyncio.to_thread(etcd_member.kill)
        await asyncio.to_thread(etcd_member.restart)

        async with fast_client(endpoint) as admin:
            await admin.delete(term_a.key)
        # A's guard must still be watching, B must still be waiting.
        assert await asyncio.wait_for(a.wait_lost(), WAIT_S) == EndReason.KEY_DELETED
        term_b = await asyncio.wait_for(tasks[0], WAIT_S)
        assert term_b.token > term_a.token
        assert b.is_leader() and not a.is_leader()
        await recorder.wait_latest(
            lambda x: x is not None and x.token == term_b.token, "the observer reports B"
        )
        assert recorder.items[0] is None
        assert recorder.items[1] is not None and recorder.items[1].token == term_a.token


async def test_waiter_sees_its_predecessor_go_between_its_re_reads(
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B's watch breaks; B re-reads its predecessor's key and then its own, and the predecessor
    is deleted between those two reads. B must still see it go, and lead."""
    namespace = namespace_of(etcd_prefix)
    proxy = fault_proxy(etcd_endpoint)
    async with (
        AsyncClient(etcd_endpoint) as direct,
        fast_client(proxy.endpoint) as cut,
        direct.session(ttl=10) as session_a,
        cut.session(ttl=10) as session_b,
    ):
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        term_a = await a.campaign("a")
        waiting = asyncio.create_task(b.campaign("b"))
        try:
            await wait_for_candidates(a, 2)
            hub = cut._watch_hub
            assert hub is not None
            await wait_until(lambda: len(hub._active) == 2, "B watches its predecessor")
            own_key = f"{namespace}/{NAME}/{session_b.lease_id:x}".encode()
            real_get = cut.get
            deleted = asyncio.Event()

            async def racing_get(key: str | bytes, **options: Any) -> GetResult:
                if as_bytes(key) == own_key and not deleted.is_set():
                    await direct.delete(term_a.key)  # between B's read of A's key and its own
                    deleted.set()
                return await real_get(key, **options)

            monkeypatch.setattr(cut, "get", racing_get)
            proxy.drop()  # B's watch stream breaks: B re-reads both keys
            await asyncio.wait_for(deleted.wait(), WAIT_S)
            term_b = await asyncio.wait_for(waiting, WAIT_S)
            assert term_b.token > term_a.token
            assert b.is_leader()
        finally:
            await finish([waiting])


# -- observer through a network partition ---------------------------------------------------------


async def test_observer_survives_a_blackhole_and_heal(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    namespace = namespace_of(etcd_prefix)
    proxy = fault_proxy(etcd_endpoint)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(AsyncClient(etcd_endpoint))
        watcher = await stack.enter_async_context(
            AsyncClient(proxy.endpoint, timeout=2, connect_timeout=0.5, stream_timeout=0.5)
        )
        session_a = await stack.enter_async_context(client.session(ttl=10))
        session_b = await stack.enter_async_context(client.session(ttl=10))
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        recorder = Recorder(watcher.election_view(NAME, namespace=namespace).observe())
        stack.push_async_callback(recorder.close)
        tasks: list[asyncio.Task[Term]] = []
        stack.push_async_callback(finish, tasks)

        assert await recorder.next(0) is None
        term_a = await a.campaign("a")
        first = await recorder.next(1)
        assert first is not None and first.token == term_a.token
        tasks.append(asyncio.create_task(b.campaign("b")))
        await wait_for_candidates(a, 2)

        proxy.blackhole()
        hub = watcher._watch_hub
        assert hub is not None
        # The silent stream is found dead (no error arrives by itself on a blackhole).
        await wait_until(lambda: hub._call is None, "the observer's watch stream is declared dead")
        await a.resign()
        term_b = await asyncio.wait_for(tasks[0], WAIT_S)
        await b.proclaim("b2")
        assert len(recorder.items) == 2  # cut off: it cannot have seen anything yet
        proxy.heal()
        await recorder.wait_latest(
            lambda x: x is not None and (x.token, x.value) == (term_b.token, b"b2"),
            "the observer reports B after the heal",
        )
        tokens = [None if x is None else (x.token, x.value) for x in recorder.items]
        assert tokens == [None, (term_a.token, b"a"), (term_b.token, b"b2")]


# -- a 3-member cluster loses its raft leader -----------------------------------------------------


async def test_killing_the_etcd_leader_never_makes_two_leaders(
    etcd_cluster3: EtcdCluster,
) -> None:
    cluster = etcd_cluster3
    raft_leader = cluster.wait_for_leader()
    # Both candidates prefer the member about to die, so their streams ride on it.
    endpoints = [raft_leader.client_endpoint] + [
        m.client_endpoint for m in cluster.members if m is not raft_leader
    ]
    namespace = "/cluster"
    async with contextlib.AsyncExitStack() as stack:
        # A's lease is too short to ride out the etcd leader change (check_timing warns), so
        # its term may end and B take over: the failover this test is about. B's renewal
        # headroom covers a raft election, so someone always leads in the end; with both
        # leases lost (an AsyncElection does not campaign again) nobody could.
        raft = {
            "election_timeout": cluster.election_timeout_ms / 1000,
            "heartbeat": cluster.heartbeat_ms / 1000,
        }
        assert check_timing(ttl=2, margin=0.5, **raft).warnings
        assert not check_timing(ttl=4, margin=0.5, **raft).warnings
        ca = await stack.enter_async_context(fast_client(endpoints))
        cb = await stack.enter_async_context(fast_client(endpoints))
        session_a = await stack.enter_async_context(ca.session(ttl=2, margin=0.5))
        session_b = await stack.enter_async_context(cb.session(ttl=4, margin=0.5))
        a = AsyncElection(session_a, NAME, namespace=namespace)
        b = AsyncElection(session_b, NAME, namespace=namespace)
        await a.campaign("a")
        tasks = [asyncio.create_task(b.campaign("b"))]
        stack.push_async_callback(finish, tasks)
        await wait_for_candidates(a, 2)

        both: list[float] = []
        intervals: dict[str, list[list[float]]] = {"a": [], "b": []}
        stop = asyncio.Event()

        async def poll() -> None:
            was = {"a": False, "b": False}
            for _ in range(100_000):
                if stop.is_set():
                    return
                now = _clock.now()
                state = {"a": a.is_leader(), "b": b.is_leader()}
                if state["a"] and state["b"]:
                    both.append(now)
                for who, leading in state.items():
                    if leading and not was[who]:
                        intervals[who].append([now, now])
                    elif leading:
                        intervals[who][-1][1] = now
                was = state
                await asyncio.sleep(0.005)

        poller = asyncio.create_task(poll())
        try:
            await wait_until(lambda: bool(intervals["a"]), "the poller sees A lead")
            killed_at = _clock.now()
            await asyncio.to_thread(raft_leader.kill)
            await asyncio.to_thread(cluster.wait_for_leader, 15.0)

            # Wait until the election has settled: someone leads and has renewed its lease
            # since the kill (answers from a surviving member).
            renewed = {"a": 0, "b": 0}

            def note(who: str) -> Callable[[KeepAliveAnswer], None]:
                def observer(answer: KeepAliveAnswer) -> None:
                    if answer.sent_at > killed_at:
                        renewed[who] += 1

                return observer

            session_a.add_keepalive_observer(note("a"))
            session_b.add_keepalive_observer(note("b"))

            async def settled() -> bool:
                if not (a.is_leader() or b.is_leader()):
                    return False
                holder, who = (a, "a") if a.is_leader() else (b, "b")
                try:
                    return renewed[who] >= 3 and await holder.verify()
                except TransportError:
                    return False  # the cluster is still settling: ask again

            await wait_until(settled, "one candidate leads after the etcd leader died", 30)
        finally:
            stop.set()
            await asyncio.wait_for(poller, WAIT_S)
        assert both == [], f"two leaders at once at {both[:5]}"
        # Term intervals never overlap either (same clock, one poller).
        for start_a, end_a in intervals["a"]:
            for start_b, end_b in intervals["b"]:
                assert end_a < start_b or end_b < start_a
        assert a.is_leader() != b.is_leader()
