"""Waiting for a key's deletion (a candidate's predecessor, a term's own key) against real
etcd: the wait watches from etcd's current revision and reads what happened between the
caller's read and the watch, so nothing in that window is missed, a key that came back
under the same name counts as deleted, and a change elsewhere is no reason to wake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from etcd_elector import AsyncClient, WatchError
from etcd_elector._election._keywait import _first_delete_after, first_deleted
from etcd_elector.etcd import Event, EventType, KeyValue, WatchBatch

pytestmark = pytest.mark.timeout(30)

WAIT_S = 10.0


def _no_retry(error: Exception) -> None:
    raise AssertionError(f"the watch failed: {error!r}")


async def _created(client: AsyncClient, key: bytes) -> int:
    """Create ``key``; its create revision (also etcd's revision right after)."""
    return (await client.put(key, b"v")).revision


async def test_a_delete_between_the_read_and_the_wait_is_returned_at_once(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    key = f"{etcd_prefix}/pred".encode()
    async with AsyncClient(etcd_endpoint) as client:
        created = seen = await _created(client, key)
        await client.delete(key)  # before the wait's watch exists: only a read can see it
        found = await asyncio.wait_for(
            first_deleted(client, [(key, created)], seen, on_retry=_no_retry), WAIT_S
        )
        assert found == key


async def test_a_key_deleted_and_created_again_counts_as_deleted(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """A handoff's requeued candidate comes back under its old name, behind its waiter: a wait
    that took the new key for the old one would wait on a key that waits on it."""
    key = f"{etcd_prefix}/requeued".encode()
    async with AsyncClient(etcd_endpoint) as client:
        created = seen = await _created(client, key)
        await client.delete(key)
        await client.put(key, b"again")
        found = await asyncio.wait_for(
            first_deleted(client, [(key, created)], seen, on_retry=_no_retry), WAIT_S
        )
        assert found == key


async def test_changes_elsewhere_do_not_wake_it_and_the_delete_does(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    pred, own = f"{etcd_prefix}/pred".encode(), f"{etcd_prefix}/own".encode()
    async with AsyncClient(etcd_endpoint) as client:
        pred_created = await _created(client, pred)
        own_created = seen = await _created(client, own)
        await client.put(f"{etcd_prefix}/other".encode(), b"x")  # etcd moves on meanwhile
        await client.put(pred, b"new value, same key")  # a put is not a delete
        wait = asyncio.create_task(
            first_deleted(
                client, [(pred, pred_created), (own, own_created)], seen, on_retry=_no_retry
            )
        )
        for _ in range(20):  # the wait is set up and stays put through more changes
            await asyncio.sleep(0.01)
            await client.put(f"{etcd_prefix}/other".encode(), b"y")
        assert not wait.done()
        await client.delete(own)
        assert await asyncio.wait_for(wait, WAIT_S) == own


async def test_the_watch_starts_where_etcd_was_when_it_was_created(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """What the wait relies on: the created answer's revision is etcd's at the watch's start,
    and every later event (none before it) is delivered."""
    key = f"{etcd_prefix}/k".encode()
    async with AsyncClient(etcd_endpoint) as client:
        before = (await client.put(key, b"1")).revision
        async with client.watch(key) as watch:
            assert watch.created_revision == before
            after = (await client.put(key, b"2")).revision
            batch = await asyncio.wait_for(anext(watch), WAIT_S)
            assert [e.kv.mod_revision for e in batch.events] == [after]


async def _batches(*batches: WatchBatch) -> AsyncIterator[WatchBatch]:
    for batch in batches:
        yield batch


def _delete(key: bytes, revision: int) -> Event:
    return Event(EventType.DELETE, KeyValue(key, b"", 0, revision, 0, 0), None)


async def test_a_replayed_delete_the_read_covered_is_not_taken_for_a_new_one() -> None:
    """A watch on a member that lags behind the read starts earlier than the read and first
    replays older history, such as the delete of a requeued key's previous incarnation."""
    key = b"/e/pred"
    replayed = WatchBatch(events=(_delete(key, 7),), revision=7)
    fresh = WatchBatch(events=(_delete(key, 12),), revision=12)
    assert await _first_delete_after(_batches(replayed, fresh), 10) == key
    with pytest.raises(WatchError):  # ended with only the replay: nothing new was seen
        await _first_delete_after(_batches(replayed), 10)
