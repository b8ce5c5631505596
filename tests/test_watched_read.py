"""``watched_read``: a watch from etcd's current revision, and a read at the revision it starts
after (what the observer, the moves watch and the shard view follow keys with), on real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest
from helpers.election_kit import WAIT_S, namespace_of

from etcd_elector import AsyncClient
from etcd_elector._election._moves import MoveKeys
from etcd_elector._election._movewatch import MovesWatch
from etcd_elector.etcd import RangeResult
from etcd_elector.etcd._watched_read import watched_read
from etcd_elector.shards import AsyncShardView


async def test_changes_after_the_watch_starts_come_from_the_watch_alone(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """A change made between the watch's start and the read is not in the read (it is at the
    watch's revision) and the watch delivers it: nothing is missed, nothing comes twice."""
    prefix = f"{etcd_prefix}/w/".encode()
    async with AsyncClient(etcd_endpoint) as client:
        before = (await client.put(prefix + b"a", b"1")).revision
        await client.put(f"{etcd_prefix}/elsewhere".encode(), b"x")  # etcd moves on
        meanwhile: list[int] = []
        read_at: list[int] = []

        async def read(revision: int) -> RangeResult:
            read_at.append(revision)
            meanwhile.append((await client.put(prefix + b"b", b"2")).revision)
            return await client.get_prefix(prefix, revision=revision)

        async with watched_read(client, prefix, read) as (found, watch):
            # Read at etcd's revision when the watch was created.
            assert read_at == [watch.created_revision] == [before + 1]
            assert [(kv.key, kv.value) for kv in found.kvs] == [(prefix + b"a", b"1")]
            batch = await asyncio.wait_for(anext(watch), WAIT_S)
            assert [(e.kv.key, e.kv.mod_revision) for e in batch.events] == [
                (prefix + b"b", meanwhile[0])
            ]


async def test_the_watch_follows_the_prefix_only(etcd_endpoint: str, etcd_prefix: str) -> None:
    prefix = f"{etcd_prefix}/w/".encode()
    async with AsyncClient(etcd_endpoint) as client:

        async def read(revision: int) -> RangeResult:
            return await client.get_prefix(prefix, revision=revision)

        async with watched_read(client, prefix, read) as (found, watch):
            assert found.kvs == ()
            await client.put(f"{etcd_prefix}/x".encode(), b"outside")
            inside = (await client.put(prefix + b"k", b"inside")).revision
            batch = await asyncio.wait_for(anext(watch), WAIT_S)
            assert [e.kv.mod_revision for e in batch.events] == [inside]


async def test_every_follower_watches_from_etcd_s_current_revision(
    etcd_endpoint: str, etcd_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The observer, an elector's moves watch and a shard group's view: none starts its watch
    at a past revision (etcd would serve it from its 100 ms catch-up loop), and each reads at
    the revision its watch starts after."""
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client:
        watched: list[int] = []
        read_at: list[int] = []
        real_watch, real_get_prefix = client.watch, client.get_prefix

        def watch(key: Any, **options: Any) -> Any:
            watched.append(options.get("start_revision", 0))
            return real_watch(key, **options)

        async def get_prefix(prefix: Any, **options: Any) -> Any:
            read_at.append(options.get("revision", 0))
            return await real_get_prefix(prefix, **options)

        monkeypatch.setattr(client, "watch", watch)
        monkeypatch.setattr(client, "get_prefix", get_prefix)
        await client.put(f"{etcd_prefix}/elsewhere".encode(), b"x")
        now = (await client.get(b"/")).revision

        observe = cast(
            AsyncGenerator[Any, None], client.election_view("job", namespace=namespace).observe()
        )
        assert await asyncio.wait_for(anext(observe), WAIT_S) is None
        await observe.aclose()

        moves = MovesWatch(client, MoveKeys(namespace, "job"), lambda *a, **k: None)
        following = asyncio.create_task(moves.run())
        await asyncio.wait_for(moves.ready.wait(), WAIT_S)
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)

        shards = AsyncShardView(client, "orders", namespace=namespace).follow()
        assert (await asyncio.wait_for(anext(shards), WAIT_S)).revision == now
        await shards.aclose()

        assert watched == [0, 0, 0]
        assert read_at == [now, now, now]
