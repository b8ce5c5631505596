"""Shard groups against real etcd: balance, movement, drain, fencing, loss, cost.

Each replica records, on the library's clock, when it acquired a shard, when its work saw the
stop and returned, and when the ownership ended; assertions are about the order of those
moments and about what etcd holds, never about how fast anything was.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from etcd_elector import (
    AsyncClient,
    Client,
    ConfigurationError,
    EndReason,
    LeadershipError,
    NotLeader,
    Op,
    _clock,
)
from etcd_elector.shards import (
    AsyncShardGroup,
    AsyncShardView,
    GroupKeys,
    MemberInfo,
    OwnedShard,
    ShardEventKind,
    ShardGroup,
    ShardView,
)
from etcd_elector.shards._owned import new_owned
from etcd_elector.shards._writes import Releaser, claim
from etcd_elector.testing import FaultProxy, dies_with_parent

TTL = 2
WAIT = 30.0  # generous bound for any single condition on a loaded machine


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Replica:
    """One in-process replica: its group, its run task, and what its works saw."""

    group: AsyncShardGroup
    task: asyncio.Task[None] | None = None
    acquired: list[OwnedShard] = field(default_factory=list)
    work_returned: dict[tuple[str, int], float] = field(default_factory=dict)
    work_cancelled: dict[tuple[str, int], float] = field(default_factory=dict)
    ignore_stop: bool = False

    async def work(self, shard: OwnedShard) -> None:
        self.acquired.append(shard)
        try:
            if self.ignore_stop:
                await asyncio.Event().wait()
            await shard.wait_stopping()
            self.work_returned[(shard.shard, shard.token)] = _clock.now()
        except asyncio.CancelledError:
            self.work_cancelled[(shard.shard, shard.token)] = _clock.now()
            raise

    def start(self) -> Replica:
        self.task = asyncio.create_task(self.group.run(self.work))
        return self

    def owned(self) -> set[str]:
        return set(self.group.owned())

    def working(self) -> set[str]:
        """Owned shards whose work has started."""
        return {s.shard for s in self.acquired if s.is_owned()}

    async def close(self) -> None:
        await self.group.close()
        if self.task is not None:
            await self.task


@pytest.fixture
async def client(etcd_endpoint: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(etcd_endpoint) as opened:
        yield opened


@pytest.fixture
def namespace(etcd_prefix: str) -> str:
    return etcd_prefix.rstrip("/")


@pytest.fixture
async def replicas(client: AsyncClient, namespace: str) -> AsyncIterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(shards: Any = 12, *, c: AsyncClient | None = None, **options: Any) -> Replica:
        ignore_stop = options.pop("ignore_stop", False)
        options.setdefault("ttl", TTL)
        options.setdefault("drain", 5.0)
        group = AsyncShardGroup(
            c or client, "orders", shards=shards, namespace=namespace, **options
        )
        replica = Replica(group, ignore_stop=ignore_stop).start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        with contextlib.suppress(Exception):
            await replica.close()


async def etcd_owners(client: AsyncClient, namespace: str) -> dict[str, tuple[int, int]]:
    """shard -> (owner lease, token) as etcd holds them."""
    keys = GroupKeys(namespace, "orders")
    result = await client.get_prefix(keys.owners)
    start = len(keys.owners)
    return {kv.key.decode()[start:]: (kv.lease, kv.create_revision) for kv in result.kvs}


def settled(replicas: list[Replica], total: int, sizes: list[int]) -> Callable[[], bool]:
    def check() -> bool:
        owned = [r.owned() for r in replicas]
        return sorted(len(o) for o in owned) == sorted(sizes) and len(set().union(*owned)) == total

    return check


async def test_replicas_share_the_shards_evenly_and_each_shard_has_one_owner(
    client: AsyncClient, namespace: str, replicas: Callable[..., Replica]
) -> None:
    group = [replicas(), replicas(), replicas()]
    await until(settled(group, 12, [4, 4, 4]), "a balanced group")
    owners = await etcd_owners(client, namespace)
    assert sorted(owners, key=int) == [str(i) for i in range(12)]
    for replica in group:
        session = replica.group.session
        assert session is not None
        for name, owned in replica.group.owned().items():
            assert owners[name] == (session.lease_id, owned.token)
            assert (await replica.group.owner(name)) is not None


async def test_a_join_moves_only_the_newcomers_share_and_interrupts_nothing_else(
    replicas: Callable[..., Replica],
) -> None:
    first, second = replicas(), replicas()
    await until(lambda: len(first.working()) == len(second.working()) == 6, "two balanced replicas")
    before = {**first.group.owned(), **second.group.owned()}
    acquisitions = len(first.acquired + second.acquired)
    third = replicas()
    await until(settled([first, second, third], 12, [4, 4, 4]), "three balanced replicas")
    after = {**first.group.owned(), **second.group.owned()}
    moved = set(before) - set(after)
    assert moved == third.owned()
    assert len(moved) == 4
    for name, owned in after.items():
        assert owned is before[name]  # the same ownership, never stopped
        assert not owned.stopping.is_set()
    assert len(first.acquired + second.acquired) == acquisitions


async def test_a_graceful_leave_drains_first_and_moves_only_the_leavers_shards(
    replicas: Callable[..., Replica],
) -> None:
    stayer, leaver = replicas(), replicas()
    await until(settled([stayer, leaver], 12, [6, 6]), "two balanced replicas")
    kept = stayer.group.owned()
    leaving = leaver.group.owned()
    await leaver.close()
    await until(lambda: len(stayer.working()) == 12, "the stayer working on every shard")
    for name, owned in kept.items():
        assert stayer.group.owned()[name] is owned and not owned.stopping.is_set()
    successors = {s.shard: s for s in stayer.acquired if s.shard in leaving}
    for name, old in leaving.items():
        returned = leaver.work_returned[(name, old.token)]
        assert old.ended_at is not None and old.end_reason == EndReason.CLOSED
        assert returned <= old.ended_at < successors[name].acquired_at
        assert successors[name].token > old.token


async def test_work_that_ignores_the_stop_is_cancelled_after_the_drain_budget(
    replicas: Callable[..., Replica],
) -> None:
    stubborn = replicas(ignore_stop=True, drain=0.3)
    await until(lambda: len(stubborn.owned()) == 12, "the first replica owning everything")
    newcomer = replicas()
    await until(lambda: len(newcomer.working()) == 6, "a balanced group")
    assert not stubborn.work_returned
    for shard in newcomer.acquired:
        old = next(s for s in stubborn.acquired if s.shard == shard.shard)
        cancelled = stubborn.work_cancelled[(old.shard, old.token)]
        assert old.end_reason == EndReason.MOVED
        assert cancelled < shard.acquired_at


async def test_a_replica_past_its_deadline_owns_nothing_before_anyone_else_owns(
    etcd_endpoint: str,
    fault_proxy: Callable[[str], FaultProxy],
    replicas: Callable[..., Replica],
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    async with AsyncClient(proxy.endpoint, timeout=1.0, stream_timeout=1.0) as cut_client:
        cut = replicas(c=cut_client)
        await until(lambda: len(cut.owned()) == 12, "the replica owning everything")
        other = replicas()
        await until(settled([cut, other], 12, [6, 6]), "a balanced group")
        held = cut.group.owned()
        session = cut.group.session
        assert session is not None
        proxy.blackhole()
        # Freeze this process's loop past the deadline, as a paused process would be: nothing
        # in the group runs, so only the clock can say that the shards are no longer ours.
        time.sleep(session.remaining() + 0.05)  # noqa: ASYNC251 - the fault, not a wait
        assert cut.group.owned() == {} and not any(o.is_owned() for o in held.values())
        await until(lambda: len(other.working()) == 12, "the other replica owning everything")
        for name, old in held.items():
            assert not old.is_owned()
            assert old.end_reason in ("deadline", "expired")
            assert old.ended_at is not None and old.ended_at <= session.deadline
            new = other.group.owned()[name]
            assert old.ended_at < new.acquired_at and new.token > old.token
        proxy.heal()
        await until(settled([cut, other], 12, [6, 6]), "the replica rejoining")


async def test_fenced_transactions_commit_only_while_the_shard_is_owned(
    client: AsyncClient, namespace: str, replicas: Callable[..., Replica]
) -> None:
    owner = replicas(shards=2)
    await until(lambda: len(owner.owned()) == 2, "ownership of both shards")
    shard = owner.group.owned()["0"]
    counter = f"{namespace}/counter-0"
    result = await owner.group.txn("0", [], [Op.put(counter, "1")])
    assert result.succeeded
    # Someone deletes the owner key behind our back: the next fenced write is refused (by
    # etcd, or locally if the watch told us first) and the ownership ends; then the shard is
    # claimed again with a larger token.
    await client.delete(shard.key)
    with pytest.raises(LeadershipError):
        await owner.group.txn("0", [], [Op.put(counter, "2")])
    assert shard.end_reason == EndReason.KEY_DELETED and not shard.is_owned()
    assert (await client.get(counter)).kv.value == b"1"  # type: ignore[union-attr]
    await until(lambda: "0" in owner.owned(), "the shard claimed again")
    assert owner.group.owned()["0"].token > shard.token
    # Work left over from the first ownership cannot write under the second one.
    with pytest.raises(NotLeader):
        await owner.group.txn(shard, [], [Op.put(counter, "stale")])
    assert (await owner.group.txn(owner.group.owned()["0"], [], [Op.put(counter, "3")])).succeeded
    with pytest.raises(NotLeader):
        await owner.group.txn("nope", [], [Op.put(counter, "3")])


async def test_a_crashed_replica_loses_only_its_shards(
    etcd_endpoint: str, namespace: str, replicas: Callable[..., Replica]
) -> None:
    survivor = replicas()
    await until(lambda: len(survivor.owned()) == 12, "the survivor owning everything")
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on here
        dies_with_parent(
            [
                sys.executable,
                "-m",
                "etcd_elector.testing._shard_replica",
                "--endpoints",
                etcd_endpoint,
                "--group",
                "orders",
                "--namespace",
                namespace,
                "--ttl",
                str(TTL),
                "--shards",
                "12",
                "--id",
                "doomed",
                "--write-every",
                "0",
            ]
        ),
        stdout=subprocess.DEVNULL,
    )
    try:
        await until(lambda: len(survivor.owned()) == 6, "the process taking half")
        kept = survivor.group.owned()
        process.send_signal(signal.SIGKILL)
        process.wait()
        await until(lambda: len(survivor.owned()) == 12, "the dead replica's shards moving")
        for name, owned in kept.items():
            assert survivor.group.owned()[name] is owned and not owned.stopping.is_set()
    finally:
        process.kill()
        process.wait()


async def test_one_lease_per_replica_whatever_the_shard_count(
    client: AsyncClient, namespace: str, replicas: Callable[..., Replica]
) -> None:
    group = [replicas(shards=300), replicas(shards=300)]
    await until(settled(group, 300, [150, 150]), "a balanced group of 300 shards")
    keys = GroupKeys(namespace, "orders")
    leases = {kv.lease for kv in (await client.get_prefix(keys.base)).kvs}
    sessions = {r.group.session.lease_id for r in group if r.group.session is not None}
    assert leases == sessions and len(leases) == 2


async def test_replicas_with_another_shard_list_are_refused(
    replicas: Callable[..., Replica],
) -> None:
    first = replicas(shards=8)
    await until(lambda: len(first.owned()) == 8, "the first replica owning everything")
    other = replicas(shards=9)
    assert other.task is not None
    with pytest.raises(ConfigurationError, match="another shard list"):
        await other.task
    assert len(first.owned()) == 8


async def test_a_failing_work_releases_every_shard_and_is_raised(
    replicas: Callable[..., Replica], client: AsyncClient, namespace: str
) -> None:
    steady = replicas(shards=4)
    await until(lambda: len(steady.owned()) == 4, "the steady replica owning everything")

    async def failing(shard: OwnedShard) -> None:
        if shard.shard == "3":
            raise RuntimeError("poison message")
        await shard.wait_stopping()

    group = AsyncShardGroup(client, "orders", shards=4, namespace=namespace, ttl=TTL)
    async with group:
        with pytest.raises(RuntimeError, match="poison message"):
            await group.run(failing)
    await until(lambda: len(steady.owned()) == 4, "the steady replica owning everything again")


async def test_group_keys_are_not_candidates_of_an_election_of_the_same_name(
    client: AsyncClient, namespace: str, replicas: Callable[..., Replica]
) -> None:
    replica = replicas(shards=3)
    await until(lambda: len(replica.owned()) == 3, "ownership")
    view = client.election_view("orders", namespace=namespace)
    assert await view.candidates() == ()
    assert (await client.get_prefix(f"{namespace}/orders/")).kvs == ()


async def test_foreign_keys_under_the_group_are_ignored(
    client: AsyncClient, namespace: str, replicas: Callable[..., Replica]
) -> None:
    keys = GroupKeys(namespace, "orders")
    await client.put(keys.member(0x1234), b"not json")  # no lease: not a member
    await client.put(keys.owners + "3", b"squatter")  # on no lease: it blocks the shard
    await client.put(keys.base + "other/thing", b"x")
    replica = replicas(shards=4)
    await until(lambda: len(replica.owned()) == 3, "the free shards owned")
    snapshot = await AsyncShardView(client, "orders", namespace=namespace).snapshot()
    assert len(snapshot.members) == 1 and snapshot.owners["3"].lease == 0
    assert snapshot.pending() == {"3": replica.group.session.lease_id}  # type: ignore[union-attr]
    await client.delete(keys.owners + "3")
    await until(lambda: len(replica.owned()) == 4, "the last shard owned once free")


def test_the_sync_twin_runs_work_in_threads(etcd_endpoint: str, namespace: str) -> None:
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()
    with Client(etcd_endpoint) as client:
        group = ShardGroup(client, "orders", shards=3, namespace=namespace, ttl=TTL, drain=2)

        def work(shard: OwnedShard) -> None:
            assert threading.current_thread() is not threading.main_thread()
            result = group.txn(shard.shard, [], [Op.put(f"{namespace}/w/{shard.shard}", "x")])
            with lock:
                seen.append((shard.shard, int(result.succeeded)))
            shard.stopping.wait()

        with group:
            events = group.events(timeout=WAIT)
            runner = threading.Thread(target=group.run, args=(work,))
            runner.start()
            kinds = [next(events).kind for _ in range(4)]
            assert kinds[0] is ShardEventKind.JOINED
            assert kinds[1:] == [ShardEventKind.ACQUIRED] * 3
            deadline = time.monotonic() + WAIT
            while len(seen) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sorted(seen) == [("0", 1), ("1", 1), ("2", 1)]
            assert set(group.owned()) == {"0", "1", "2"}
            assert group.owner("1") is not None
            view = ShardView(client, "orders", namespace=namespace)
            lease = group.owned()["1"].lease_id
            assert {o.lease for o in view.snapshot().owners.values()} == {lease}
            assert view.owner("2") == group.owner("2")
        runner.join(WAIT)
        assert not runner.is_alive()
        assert group.owned() == {}
        assert not group.read().owners
        events.close()


BLOCKING_REPLICA = """
import sys, threading
from etcd_elector import Client, ShardGroup

said = threading.Lock()

def say(line):  # works run in threads of their own: one whole line at a time
    with said:
        print(line, flush=True)

def work(shard):
    say(f"owned {shard.shard}")
    shard.stopping.wait()
    say(f"drained {shard.shard}")

endpoint, namespace = sys.argv[1:3]
with Client(endpoint) as client:
    with ShardGroup(client, "orders", shards=2, namespace=namespace, ttl=2) as group:
        group.stop_on_signals()
        group.run(work)
    print("left", flush=True)
"""


def test_the_sync_twin_stopped_by_sigterm_drains_and_hands_every_shard_back(
    etcd_endpoint: str, namespace: str
) -> None:
    """A threaded program, stopped the way a service manager stops it: the signal reaches a
    main thread blocked in run(); every work sees ``stopping`` and returns, every key goes."""
    process = subprocess.Popen(
        dies_with_parent([sys.executable, "-c", BLOCKING_REPLICA, etcd_endpoint, namespace]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        owned = [process.stdout.readline().split() for _ in range(2)]
        assert sorted(owned) == [["owned", "0"], ["owned", "1"]]
        with Client(etcd_endpoint) as client:
            assert len(client.get_prefix(namespace + "/").kvs) == 3  # a member, two owners
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=WAIT)
            assert process.returncode == 0 and "Traceback" not in err, err
            assert sorted(out.split("\n")[:-2]) == ["drained 0", "drained 1"]
            assert out.split("\n")[-2] == "left"
            # Deleted and revoked on the way out, not left to expire with a 2 s lease.
            assert client.get_prefix(namespace + "/").kvs == ()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_a_catching_up_watch_claims_no_more_than_its_events_show(
    client: AsyncClient, namespace: str
) -> None:
    """etcd stamps a watch batch with its current revision, ahead of the batch's events while
    the watcher catches up; a view that took that stamp as "known up to" would judge keys
    created in between as deleted (and end ownerships that hold)."""
    keys = GroupKeys(namespace, "orders")
    view = AsyncShardView(client, "orders", namespace=namespace)
    follower = view.follow()
    first = await anext(follower)  # suspended before its watch exists
    lease = (await client.lease_grant(30)).id
    created = (await client.put(keys.owners + "1", "x", lease=lease)).revision
    later = (await client.put(f"{namespace}/elsewhere", "y")).revision  # outside the group
    second = await anext(follower)
    await follower.aclose()
    assert first.revision < created <= second.revision < later
    assert second.owners["1"].token == created
    await client.lease_revoke(lease)


async def test_a_claim_never_overwrites_an_owner_and_a_release_never_deletes_a_newer_one(
    client: AsyncClient, namespace: str
) -> None:
    """The two compare-and-swaps the exclusivity rests on, exercised directly: the plan
    never asks a replica to claim an owned shard, so nothing else would notice them gone."""
    keys = GroupKeys(namespace, "orders")
    other = (await client.lease_grant(30)).id
    await client.put(keys.owners + "1", "someone else", lease=other)
    async with client.session(ttl=TTL) as session:
        member = MemberInfo(session.lease_id, "me", 1, ("0", "1", "2"), 0)
        await client.put(keys.member(session.lease_id), member.encode(), lease=session.lease_id)
        tokens = await claim(client, keys, session, "me", ["0", "1", "2"])
        assert set(tokens) == {"0", "2"}  # the batch was refused; each shard tried alone
        taken = (await client.get(keys.owners + "1")).kv
        assert taken is not None and taken.lease == other and taken.value == b"someone else"

        first = (await client.get(keys.owners + "0")).kv
        assert first is not None and first.create_revision == tokens["0"]
        stale = new_owned("orders", "0", keys.owner("0"), session.lease_id, tokens["0"],
                          lambda: True, lambda: session.deadline)  # fmt: skip
        await client.delete(keys.owner("0"))
        renewed = await claim(client, keys, session, "me", ["0"])
        releaser = Releaser(client, "orders")
        await releaser.delete(session, stale)  # the ownership before the renewed one
        current = (await client.get(keys.owners + "0")).kv
        assert current is not None and current.create_revision == renewed["0"]
        await releaser.close()
    await client.lease_revoke(other)
