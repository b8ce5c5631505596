"""etcd members cut off from each other (peer partitions), and what etcd and the library do.

The cluster's members reach each other through the kit's peer proxies, which know which
member opened each connection; clients still reach every member directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from etcd_elector import AmbiguousResult, AsyncClient, NoLeader, RequestTimeout, Term, _clock
from etcd_elector.testing import EtcdCluster, EtcdMember

_WAIT_S = 15.0


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout} s: {what}")
        time.sleep(0.02)


def _leader_id(member: EtcdMember) -> int:
    """The raft leader ``member`` follows by its own account (0: none)."""
    return int(member.status().get("leader", 0))


def _raft_term(member: EtcdMember) -> int:
    return int(member.status()["raftTerm"])


def _leader_among(members: list[EtcdMember]) -> EtcdMember:
    """Wait until one of ``members`` leads by its own account and the others follow it."""
    found: list[EtcdMember] = []

    def agreed() -> bool:
        ids = {_leader_id(m) for m in members}
        leaders = [m for m in members if {m.member_id} == ids]
        found[:] = leaders
        return bool(leaders)

    _wait_for(agreed, _WAIT_S, f"a leader among {[m.name for m in members]}")
    return found[0]


async def _put(endpoint: str, key: str, value: str) -> None:
    async with AsyncClient(endpoint, timeout=2.0) as client:
        await client.put(key, value)


async def _get(endpoint: str, key: str) -> str | None:
    async with AsyncClient(endpoint, timeout=2.0) as client:
        kv = (await client.get(key)).kv
        return kv.value.decode() if kv is not None else None


async def _put_eventually(endpoint: str, key: str, value: str) -> None:
    """A write through ``endpoint`` that may fail while etcd settles, within a bound (the
    same put again, so an ambiguous one may be repeated)."""
    deadline = time.monotonic() + _WAIT_S
    while True:
        try:
            await _put(endpoint, key, value)
            return
        except (NoLeader, RequestTimeout, AmbiguousResult):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.1)


async def _renew_once(endpoint: str, timeout: float) -> None:
    """Grant a lease through a majority member, renew it once through ``endpoint``."""
    async with AsyncClient(endpoint, timeout=timeout) as client:
        lease = await client.lease_grant(10)
        async with client.lease_keepalive(lease.id) as keepalive:
            await keepalive.ping(timeout=timeout)


def test_each_peer_connection_is_named_by_the_member_that_opened_it(
    etcd_partitionable3: EtcdCluster,
) -> None:
    network = etcd_partitionable3.network
    names = [m.name for m in etcd_partitionable3.members]
    every_edge = {(a, b) for a in names for b in names if a != b}
    # Each member opens its own raft streams to every peer, so every edge carries some.
    _wait_for(lambda: set(network.connections()) >= every_edge, _WAIT_S, "every edge in use")
    assert all(source is not None for source, _ in network.connections()), network.connections()
    assert not any(source == target for source, target in network.connections())


def test_an_isolated_member_loses_its_leader_while_the_majority_serves(
    etcd_partitionable3: EtcdCluster,
) -> None:
    cluster = etcd_partitionable3
    # The hardest member to cut off is etcd's raft leader: it must notice and step down.
    cut_off = _leader_among(cluster.members)
    majority = [m for m in cluster.members if m is not cut_off]
    cluster.network.isolate(cut_off.name)
    # Cut at once: no connection to or from it survives the call.
    touching = [edge for edge in cluster.network.connections() if cut_off.name in edge]
    assert touching == []

    _wait_for(lambda: _leader_id(cut_off) == 0, _WAIT_S, f"{cut_off.name} drops its leader")
    assert not cut_off.health()
    with pytest.raises(NoLeader):
        asyncio.run(_put(cut_off.client_endpoint, "/partition/through-minority", "x"))
    new_leader = _leader_among(majority)
    asyncio.run(_put_eventually(new_leader.client_endpoint, "/partition/during", "majority"))
    for member in majority:
        assert member.health()

    cluster.network.heal()
    cut_off.wait_healthy(_WAIT_S)
    _wait_for(
        lambda: _leader_id(cut_off) == new_leader.member_id,
        _WAIT_S,
        f"{cut_off.name} follows {new_leader.name}",
    )
    # It caught up with what the majority wrote while it was cut off, and serves again.
    assert asyncio.run(_get(cut_off.client_endpoint, "/partition/during")) == "majority"
    asyncio.run(_put(cut_off.client_endpoint, "/partition/after", "healed"))


def test_a_one_way_cut_stops_what_only_that_member_opens(
    etcd_partitionable3: EtcdCluster,
) -> None:
    cluster = etcd_partitionable3
    network = cluster.network
    leader = _leader_among(cluster.members)
    follower = next(m for m in cluster.members if m is not leader)
    term = _raft_term(leader)

    network.cut(follower.name, leader.name)
    assert network.cut_edges() == {(follower.name, leader.name)}
    edges = network.connections()
    assert (follower.name, leader.name) not in edges
    assert edges.get((leader.name, follower.name), 0) > 0  # the other way stays up
    # Raft goes around the cut (each side opens its own streams to receive), so the follower
    # keeps its leader and serves writes...
    asyncio.run(_put_eventually(follower.client_endpoint, "/one-way/write", "ok"))
    assert _leader_id(follower) == leader.member_id
    # ...but it forwards lease renewals to the leader over connections it opens itself: a
    # client renewing through it gets no answer.
    with pytest.raises(RequestTimeout):
        asyncio.run(_renew_once(follower.client_endpoint, timeout=2.0))

    network.heal()
    network.cut(leader.name, follower.name)  # the other direction only: renewals pass
    asyncio.run(_put_eventually(follower.client_endpoint, "/one-way/reverse", "ok"))
    asyncio.run(_renew_once(follower.client_endpoint, timeout=5.0))
    # No raft election was needed for any of it.
    assert _raft_term(leader) == term
    assert _leader_id(follower) == leader.member_id


class _Candidate:
    """An elector that notes when it was elected and when it stopped believing it led."""

    def __init__(self, client: AsyncClient, prefix: str) -> None:
        self.elector = client.elector("partition", namespace=prefix, ttl=2, backoff=(0.05, 0.5))
        self.elected = asyncio.Event()
        self.lost = asyncio.Event()
        self.elected_at = 0.0
        self.stopped_at = 0.0
        self.elector.on_elected, self.elector.on_lost = self._on_elected, self._on_lost

    def _on_elected(self, term: Term) -> None:
        self.elected_at = term.elected_at
        self.elected.set()

    def _on_lost(self, term: Term, reason: str) -> None:
        # is_leader() was false from the session deadline on, however late this runs.
        stopped = term.ended_at or _clock.now()
        session = self.elector.session
        self.stopped_at = min(stopped, session.deadline) if session is not None else stopped
        self.lost.set()

    async def run(self) -> None:
        await self.elector.run(lambda term: asyncio.Event().wait())


@pytest.mark.parametrize("role", ["follower", "raft_leader"])
async def test_a_leader_on_a_cut_off_member_stops_before_a_standby_is_elected(
    etcd_partitionable3: EtcdCluster, etcd_prefix: str, role: str
) -> None:
    cluster = etcd_partitionable3
    raft_leader = await asyncio.to_thread(_leader_among, cluster.members)
    if role == "raft_leader":
        cut_off = raft_leader
    else:
        cut_off = next(m for m in cluster.members if m is not raft_leader)
    majority = ",".join(m.client_endpoint for m in cluster.members if m is not cut_off)
    prefix = etcd_prefix.rstrip("/")
    async with (
        AsyncClient(cut_off.client_endpoint, timeout=1.0, stream_timeout=1.0) as on_minority,
        AsyncClient(majority, timeout=1.0, stream_timeout=1.0) as on_majority,
    ):
        first = _Candidate(on_minority, prefix)
        standby = _Candidate(on_majority, prefix)
        async with first.elector, standby.elector:
            runs = [asyncio.create_task(first.run())]
            await asyncio.wait_for(first.elected.wait(), _WAIT_S)
            runs.append(asyncio.create_task(standby.run()))
            try:
                await asyncio.to_thread(cluster.network.isolate, cut_off.name)
                await asyncio.wait_for(standby.elected.wait(), _WAIT_S)
                assert first.lost.is_set(), "the cut-off leader never noticed its loss"
                assert first.stopped_at < standby.elected_at, (
                    f"the leader on {cut_off.name} led until {first.stopped_at:.3f}, "
                    f"the standby was elected at {standby.elected_at:.3f}"
                )
            finally:
                await asyncio.to_thread(cluster.network.heal)
                for run in runs:
                    run.cancel()
                await asyncio.gather(*runs, return_exceptions=True)
