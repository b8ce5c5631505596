"""The etcd transport (``AsyncClient``) against one real etcd member, healthy and faulty."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest
from helpers.watch_kit import drain_until_error, next_batch

from etcd_elector import (
    AmbiguousResult,
    AsyncClient,
    ClientClosed,
    Compare,
    ConfigurationError,
    ConnectionFailed,
    EtcdServerError,
    LeaseNotFound,
    Op,
    RequestTimeout,
    TransportError,
    TxnResult,
    WatchCompacted,
    _clock,
)
from etcd_elector.etcd import DeleteResult, Event, EventType, PutResult, RangeResult
from etcd_elector.testing import EtcdMember, FaultProxy, free_port

ProxyFactory = Callable[[str], FaultProxy]

# Generous bounds: the machine running these may be loaded. Never a tight upper bound.
WAIT_S = 10.0
STREAM_TIMEOUT_S = 1.0
FAULT_BOUND_S = 5 * STREAM_TIMEOUT_S + 2.0


def fast_client(endpoints: str | list[str]) -> AsyncClient:
    return AsyncClient(
        endpoints, timeout=WAIT_S / 2, connect_timeout=2.0, stream_timeout=STREAM_TIMEOUT_S
    )


# -- KV ------------------------------------------------------------------------------------------


async def test_put_and_get(etcd_endpoint: str, etcd_prefix: str) -> None:
    key = etcd_prefix + "k"
    async with AsyncClient(etcd_endpoint) as client:
        missing = await client.get(key)
        assert missing.kv is None
        assert missing.revision > 0

        first = await client.put(key, "v1")
        assert isinstance(first, PutResult)
        assert first.prev_kv is None
        second = await client.put(key, b"v2", prev_kv=True)
        assert second.revision == first.revision + 1
        assert second.prev_kv is not None and second.prev_kv.value == b"v1"

        got = await client.get(key)
        assert got.kv is not None
        assert got.kv.key == key.encode()
        assert got.kv.value == b"v2"
        assert got.kv.create_revision == first.revision
        assert got.kv.mod_revision == second.revision
        assert got.kv.version == 2
        assert got.kv.lease == 0
        assert got.revision >= second.revision

        # Reads at an older revision, and serializable reads, see what they should.
        old = await client.get(key, revision=first.revision)
        assert old.kv is not None and old.kv.value == b"v1"
        local = await client.get(key, serializable=True, timeout=3.0)
        assert local.kv is not None and local.kv.value == b"v2"


async def test_get_prefix_options(etcd_endpoint: str, etcd_prefix: str) -> None:
    outside = etcd_prefix + "px"  # shares the text "p" but not the prefix "p/"
    etcd_prefix += "p/"
    async with AsyncClient(etcd_endpoint) as client:
        # Created in the order c, a, b: key order and create order differ.
        revisions = {}
        for name in ("c", "a", "b"):
            revisions[name] = (await client.put(etcd_prefix + name, name.upper())).revision
        await client.put(outside, "outside the prefix")

        by_key = await client.get_prefix(etcd_prefix)
        assert isinstance(by_key, RangeResult)
        assert [kv.key for kv in by_key.kvs] == [(etcd_prefix + n).encode() for n in "abc"]
        assert by_key.count == 3 and not by_key.more

        by_create = await client.get_prefix(etcd_prefix, sort_by_create_revision=True)
        assert [kv.value for kv in by_create.kvs] == [b"C", b"A", b"B"]
        newest_first = await client.get_prefix(
            etcd_prefix, sort_by_create_revision=True, descending=True
        )
        assert [kv.value for kv in newest_first.kvs] == [b"B", b"A", b"C"]

        first = await client.get_prefix(etcd_prefix, sort_by_create_revision=True, limit=1)
        assert [kv.value for kv in first.kvs] == [b"C"]
        assert first.more and first.count == 3

        keys = await client.get_prefix(etcd_prefix, keys_only=True)
        assert [kv.value for kv in keys.kvs] == [b"", b"", b""]
        counted = await client.get_prefix(etcd_prefix, count_only=True)
        assert counted.kvs == () and counted.count == 3

        early = await client.get_prefix(etcd_prefix, max_create_revision=revisions["a"])
        assert sorted(kv.value for kv in early.kvs) == [b"A", b"C"]
        past = await client.get_prefix(etcd_prefix, revision=revisions["a"])
        assert sorted(kv.value for kv in past.kvs) == [b"A", b"C"]
        local = await client.get_prefix(etcd_prefix, serializable=True)
        assert local.count == 3


async def test_delete(etcd_endpoint: str, etcd_prefix: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        for name in ("a", "b", "c"):
            await client.put(etcd_prefix + "dir/" + name, name)
        await client.put(etcd_prefix + "single", "s")

        one = await client.delete(etcd_prefix + "single", prev_kv=True)
        assert isinstance(one, DeleteResult)
        assert one.deleted == 1
        assert [kv.value for kv in one.prev_kvs] == [b"s"]
        none = await client.delete(etcd_prefix + "single")
        assert none.deleted == 0 and none.prev_kvs == ()

        many = await client.delete(etcd_prefix + "dir/", prefix=True)
        assert many.deleted == 3
        assert many.revision > one.revision
        assert (await client.get_prefix(etcd_prefix)).count == 0


async def test_txn_branches_and_results(etcd_endpoint: str, etcd_prefix: str) -> None:
    key = etcd_prefix + "cas"
    async with AsyncClient(etcd_endpoint) as client:
        created = await client.txn(
            [Compare.create_revision(key) == 0],
            [Op.put(key, "mine"), Op.get(key)],
            [Op.get(key)],
        )
        assert isinstance(created, TxnResult)
        assert created.succeeded
        put_result, range_result = created.responses
        assert isinstance(put_result, PutResult)
        assert isinstance(range_result, RangeResult)
        assert range_result.kvs[0].value == b"mine"
        create_revision = range_result.kvs[0].create_revision

        # The same compare-and-swap again fails, and the failure branch reports the holder.
        again = await client.txn(
            [Compare.create_revision(key) == 0], [Op.put(key, "theirs")], [Op.get(key)]
        )
        assert not again.succeeded
        (holder,) = again.responses
        assert isinstance(holder, RangeResult)
        assert holder.kvs[0].value == b"mine"
        assert (await client.get(key)).kv is not None

        # Every compare target, with every operator, evaluated by etcd.
        guarded = await client.txn(
            [
                Compare.value(key) == "mine",
                Compare.value(key) != b"other",
                Compare.version(key) == 1,
                Compare.create_revision(key) == create_revision,
                Compare.mod_revision(key) < create_revision + 1,
                Compare.mod_revision(key) > 0,
                Compare.lease(key) == 0,
            ],
            [
                Op.put(key, "updated", prev_kv=True),
                Op.delete(etcd_prefix + "nothing"),
                Op.txn([Compare.version(key) > 0], [Op.get(etcd_prefix, prefix=True)], []),
            ],
        )
        assert guarded.succeeded
        updated, deleted, nested = guarded.responses
        assert isinstance(updated, PutResult)
        assert updated.prev_kv is not None and updated.prev_kv.value == b"mine"
        assert isinstance(deleted, DeleteResult) and deleted.deleted == 0
        assert isinstance(nested, TxnResult) and nested.succeeded
        (listing,) = nested.responses
        assert isinstance(listing, RangeResult)
        assert [kv.value for kv in listing.kvs] == [b"updated"]

        # An empty branch and a failing compare: nothing happens.
        failed = await client.txn([Compare.value(key) == "mine"], [Op.delete(key)])
        assert not failed.succeeded and failed.responses == ()
        await client.txn([], [Op.delete(etcd_prefix, prefix=True)])
        assert (await client.get(key)).kv is None


async def test_compact_and_watch_from_a_compacted_revision(etcd_member: EtcdMember) -> None:
    # A fresh member, so the compaction cannot disturb tests sharing the session's server.
    async with AsyncClient(etcd_member.client_endpoint) as client:
        first = await client.put("/compact/k", "1")
        for value in ("2", "3"):
            await client.put("/compact/k", value)
        last = await client.put("/compact/k", "4")
        await client.compact(last.revision)

        with pytest.raises(EtcdServerError, match="compacted"):
            await client.get("/compact/k", revision=first.revision)
        with pytest.raises(EtcdServerError, match="compacted"):
            await client.compact(first.revision)

        async with client.watch("/compact/k", start_revision=first.revision) as watch:
            error = await drain_until_error(watch, WAIT_S)
        assert isinstance(error, WatchCompacted), error
        assert error.compact_revision == last.revision
        assert str(last.revision) in str(error)

        # Watching from the compaction point itself still works.
        async with client.watch("/compact/k", start_revision=last.revision) as watch:
            batch = await next_batch(watch)
            assert [e.kv.value for e in batch.events] == [b"4"]


# -- watches -------------------------------------------------------------------------------------


async def test_watch_events(etcd_endpoint: str, etcd_prefix: str) -> None:
    key = etcd_prefix + "w"
    async with AsyncClient(etcd_endpoint) as client:
        async with client.watch(key, prev_kv=True) as watch:
            assert watch.watch_id is not None
            await client.put(key, "a")
            await client.put(key, "b")
            await client.delete(key)
            events: list[Event] = []
            while len(events) < 3:
                events.extend((await next_batch(watch)).events)
        assert [e.type for e in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
        assert [e.kv.value for e in events[:2]] == [b"a", b"b"]
        assert events[0].prev_kv is None
        assert events[1].prev_kv is not None and events[1].prev_kv.value == b"a"
        assert events[2].kv.key == key.encode()
        assert events[2].prev_kv is not None and events[2].prev_kv.value == b"b"

        # Replay from a revision: the history arrives, in order, with its revision.
        start = events[0].kv.mod_revision
        async with client.watch(key, start_revision=start) as replay:
            replayed: list[Event] = []
            while len(replayed) < 3:
                batch = await next_batch(replay)
                assert all(e.kv.mod_revision <= batch.revision for e in batch.events)
                replayed.extend(batch.events)
        assert [e.type for e in replayed] == [e.type for e in events]

        # Prefix watches and filters.
        async with (
            client.watch(etcd_prefix + "dir/", prefix=True, no_delete=True) as puts_only,
            client.watch(etcd_prefix + "dir/", prefix=True, no_put=True) as deletes_only,
        ):
            await client.put(etcd_prefix + "dir/x", "1")
            await client.put(etcd_prefix + "dirty", "not in the prefix")
            await client.delete(etcd_prefix + "dir/x")
            put_batch = await next_batch(puts_only)
            delete_batch = await next_batch(deletes_only)
        assert [(e.type, e.kv.key) for e in put_batch.events] == [
            (EventType.PUT, (etcd_prefix + "dir/x").encode())
        ]
        assert [(e.type, e.kv.key) for e in delete_batch.events] == [
            (EventType.DELETE, (etcd_prefix + "dir/x").encode())
        ]


async def test_cancelled_watch_stops_and_others_continue(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client, client.watch(etcd_prefix + "a") as kept:
        gone = client.watch(etcd_prefix + "b")
        await gone.__aenter__()
        await gone.cancel()
        await gone.cancel()  # idempotent
        async with asyncio.timeout(WAIT_S):
            assert [batch async for batch in gone] == []
        await client.put(etcd_prefix + "b", "x")
        await client.put(etcd_prefix + "a", "y")
        batch = await next_batch(kept)
        assert [e.kv.value for e in batch.events] == [b"y"]
        await gone.__aexit__(None, None, None)


async def test_many_watches_share_one_stream(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    count = 50
    async with AsyncClient(proxy.endpoint) as client, contextlib.AsyncExitStack() as stack:
        watches = await asyncio.gather(
            *(stack.enter_async_context(client.watch(f"{etcd_prefix}{i}")) for i in range(count))
        )
        assert len({w.watch_id for w in watches}) == count
        await client.txn([], [Op.put(f"{etcd_prefix}{i}", str(i)) for i in range(count)])
        for i, watch in enumerate(watches):
            batch = await next_batch(watch)
            assert [(e.kv.key, e.kv.value) for e in batch.events] == [
                (f"{etcd_prefix}{i}".encode(), str(i).encode())
            ]
        # One TCP connection carried all of it: the watches multiplex one gRPC stream.
        assert proxy.accepted_count == 1
        hub = client._watch_hub
        assert hub is not None
        assert len(hub._active) == count


async def test_watch_on_a_blackholed_connection_times_out(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    key = etcd_prefix + "w"
    async with fast_client(proxy.endpoint) as client:
        async with client.watch(key) as watch:
            await client.put(key, "before")
            assert (await next_batch(watch)).events[0].kv.value == b"before"
            proxy.blackhole()
            started = time.monotonic()
            error = await drain_until_error(watch, FAULT_BOUND_S + WAIT_S)
            elapsed = time.monotonic() - started
        assert isinstance(error, RequestTimeout), error
        assert proxy.endpoint in str(error)
        assert elapsed < FAULT_BOUND_S, elapsed

        # Healed, the client connects afresh and watching works again.
        proxy.heal()
        async with client.watch(key) as watch:
            await client.put(key, "after")
            assert (await next_batch(watch)).events[0].kv.value == b"after"


async def test_watch_on_a_dropped_connection_fails(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    key = etcd_prefix + "w"
    async with fast_client(proxy.endpoint) as client:
        async with client.watch(key) as first, client.watch(key + "2") as second:
            await client.put(key, "before")
            last_seen = (await next_batch(first)).revision
            proxy.drop()
            started = time.monotonic()
            errors = [
                await drain_until_error(first, FAULT_BOUND_S + WAIT_S),
                await drain_until_error(second, FAULT_BOUND_S + WAIT_S),
            ]
            elapsed = time.monotonic() - started
        for error in errors:
            assert isinstance(error, ConnectionFailed), error
        assert elapsed < FAULT_BOUND_S, elapsed

        # The caller re-watches from its last revision and misses nothing. The first write
        # after a reset may be ambiguous (sent as the connection went): re-read, as documented.
        try:
            await client.put(key, "after")
        except AmbiguousResult:
            if (await client.get(key)).kv.value != b"after":  # type: ignore[union-attr]
                await client.put(key, "after")
        async with client.watch(key, start_revision=last_seen + 1) as watch:
            assert (await next_batch(watch)).events[0].kv.value == b"after"


# -- leases and keepalives -------------------------------------------------------------------


async def test_lease_lifecycle(etcd_endpoint: str, etcd_prefix: str) -> None:
    key = etcd_prefix + "leased"
    async with AsyncClient(etcd_endpoint) as client:
        lease = await client.lease_grant(30)
        assert lease.id > 0 and lease.ttl == 30
        assert str(lease) == f"{lease.id:x}"
        chosen = await client.lease_grant(30, lease_id=lease.id + 1)
        assert chosen.id == lease.id + 1

        await client.put(key, "v", lease=lease.id)
        got = await client.get(key)
        assert got.kv is not None and got.kv.lease == lease.id

        info = await client.lease_time_to_live(lease.id, keys=True)
        assert info.id == lease.id
        assert info.granted_ttl == 30
        assert 0 < info.ttl <= 30
        assert info.keys == (key.encode(),)
        assert (await client.lease_time_to_live(lease.id)).keys == ()

        listed = await client.lease_list()
        assert lease.id in listed and chosen.id in listed

        await client.lease_revoke(lease.id)
        await client.lease_revoke(chosen.id)
        assert (await client.get(key)).kv is None
        assert (await client.lease_time_to_live(lease.id)).ttl == -1
        assert lease.id not in await client.lease_list()
        with pytest.raises(LeaseNotFound):
            await client.lease_revoke(lease.id)


async def test_keepalive_answers_carry_the_send_time(
    etcd_endpoint: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    async with AsyncClient(proxy.endpoint, stream_timeout=5.0) as client:
        lease = await client.lease_grant(20)
        async with client.lease_keepalive(lease.id) as stream:
            before = _clock.now()
            answer = await stream.ping()
            after = _clock.now()
            assert answer.lease_id == lease.id
            assert answer.ttl == 20
            assert answer.revision > 0
            assert before <= answer.sent_at <= answer.received_at <= after
            assert stream.endpoint is not None and str(stream.endpoint) == proxy.endpoint

            # Each way takes 0.2 s more: the stamp must be from before the request left.
            proxy.delay(0.2)
            slow = await stream.ping()
            assert slow.round_trip >= 0.2, slow
            assert slow.sent_at >= answer.received_at
            proxy.pass_through()
            assert (await stream.ping()).ttl == 20
        await client.lease_revoke(lease.id)


async def test_keepalive_of_a_revoked_lease_reports_no_ttl(etcd_endpoint: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        lease = await client.lease_grant(20)
        async with client.lease_keepalive(lease.id) as stream:
            assert (await stream.ping()).ttl > 0
            await client.lease_revoke(lease.id)
            assert (await stream.ping()).ttl <= 0
        # A stream opened for a lease that no longer exists says the same.
        async with client.lease_keepalive(lease.id) as fresh:
            assert (await fresh.ping()).ttl <= 0


async def test_keepalive_through_a_blackhole_times_out_then_recovers(
    etcd_endpoint: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    async with AsyncClient(etcd_endpoint) as direct:
        lease = await direct.lease_grant(30)
    # connect_timeout outlasts the blackhole, so the attempt made during it survives the heal.
    async with AsyncClient(proxy.endpoint, connect_timeout=WAIT_S) as client:
        stream = client.lease_keepalive(lease.id)
        try:
            assert (await stream.ping()).ttl == 30
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(RequestTimeout) as info:
                await stream.ping(timeout=1.0)
            elapsed = time.monotonic() - started
            assert 1.0 <= elapsed < 1.0 + FAULT_BOUND_S, elapsed
            assert proxy.endpoint in str(info.value)
            assert stream.endpoint is None  # dropped, to be reopened on the next ping

            # Still blackholed: a fresh connection cannot be made either.
            with pytest.raises((RequestTimeout, ConnectionFailed)):
                await stream.ping(timeout=1.0)

            proxy.heal()
            answer = await stream.ping(timeout=WAIT_S)
            assert answer.ttl == 30
            assert proxy.accepted_count >= 2  # a new connection, not the silent one
        finally:
            await stream.close()
            await stream.close()  # idempotent
    async with AsyncClient(etcd_endpoint) as direct:
        await direct.lease_revoke(lease.id)


# -- ambiguous outcomes ------------------------------------------------------------------------


async def test_txn_on_a_blackholed_connection_is_ambiguous(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    key = etcd_prefix + "cas"
    # The blackholed proxy comes first, a healthy endpoint second: a retry would succeed there.
    async with fast_client([proxy.endpoint, etcd_endpoint]) as client:
        await client.get(key)  # connected through the proxy
        assert proxy.accepted_count == 1
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(AmbiguousResult) as info:
            await client.txn(
                [Compare.create_revision(key) == 0], [Op.put(key, "mine")], timeout=1.0
            )
        assert time.monotonic() - started < FAULT_BOUND_S
        assert proxy.endpoint in str(info.value)
        assert info.value.endpoint == proxy.endpoint
        # It was not retried on the healthy endpoint: the key is still absent there.
        async with AsyncClient(etcd_endpoint) as direct:
            assert (await direct.get(key)).kv is None


async def test_read_on_a_blackholed_connection_times_out(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    async with fast_client(proxy.endpoint) as client:
        await client.get(etcd_prefix)
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises((RequestTimeout, ConnectionFailed)) as info:
            await client.get(etcd_prefix, timeout=1.0)
        assert time.monotonic() - started < FAULT_BOUND_S
        assert not isinstance(info.value, AmbiguousResult)
        proxy.heal()
        assert (await client.get(etcd_prefix)).kv is None


async def test_write_fails_over_when_it_was_never_sent(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    key = etcd_prefix + "k"
    async with AsyncClient([dead, etcd_endpoint], timeout=WAIT_S) as client:
        result = await client.txn([Compare.create_revision(key) == 0], [Op.put(key, "v")])
        assert result.succeeded
        assert (await client.put(key, "w")).revision > result.revision
        assert (await client.status()).endpoint == etcd_endpoint


async def test_write_to_an_unreachable_endpoint_is_not_ambiguous(etcd_prefix: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with AsyncClient(dead, timeout=WAIT_S) as client:
        with pytest.raises(ConnectionFailed) as info:
            await client.put(etcd_prefix + "k", "v")
    assert not isinstance(info.value, AmbiguousResult)
    assert dead in str(info.value)


# -- cluster calls on one member, lifecycle ----------------------------------------------------


async def test_status_and_member_list(etcd_endpoint: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        status = await client.status()
        assert status.endpoint == etcd_endpoint
        assert status.is_leader
        assert status.member_id != 0
        assert status.version.startswith("3.")
        assert status.revision > 0 and status.raft_term > 0 and status.raft_index > 0
        assert status.db_size > 0
        assert status.errors == ()
        assert (await client.status(etcd_endpoint)).member_id == status.member_id
        with pytest.raises(ConfigurationError, match="not one of this client's endpoints"):
            await client.status("127.0.0.1:1")

        (member,) = await client.member_list()
        assert member.id == status.member_id
        assert member.name
        assert f"http://{etcd_endpoint}" in member.client_urls
        assert member.peer_urls
        assert not member.is_learner


async def test_client_lifecycle(etcd_endpoint: str, etcd_prefix: str) -> None:
    client = AsyncClient(etcd_endpoint)
    assert etcd_endpoint in repr(client)
    with pytest.raises(ClientClosed, match="async with"):
        await client.get(etcd_prefix)
    with pytest.raises(ClientClosed, match="async with"):
        client.watch(etcd_prefix)
    assert issubclass(ClientClosed, RuntimeError)
    await client.close()  # closing an unopened client is harmless
    async with client:
        watch = client.watch(etcd_prefix)
        await watch.__aenter__()
        assert (await client.get(etcd_prefix)).kv is None
    # Closing the client ends its watches with a typed error.
    with pytest.raises(ClientClosed, match="the client was closed"):
        async with asyncio.timeout(WAIT_S):
            await anext(watch)
    await client.close()  # idempotent
    with pytest.raises(ClientClosed, match="client is closed"):
        await client.get(etcd_prefix)


async def test_call_timeouts_are_validated(etcd_endpoint: str, etcd_prefix: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        for bad in (0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ConfigurationError, match="timeout"):
                await client.get(etcd_prefix, timeout=bad)
            with pytest.raises(ConfigurationError, match="timeout"):
                await client.lease_keepalive(1).ping(timeout=bad)
        with pytest.raises(ConfigurationError, match="TTL"):
            await client.lease_grant(0)


async def test_errors_keep_their_grpc_cause(etcd_endpoint: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        with pytest.raises(LeaseNotFound) as info:
            await client.lease_revoke(0x7FFF_FFFF_0000_0001)
    assert isinstance(info.value, TransportError)
    assert info.value.endpoint == etcd_endpoint
    assert info.value.__cause__ is not None
