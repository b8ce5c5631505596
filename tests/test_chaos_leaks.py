"""The chaos runner's leak check: a key or lease that a cleanly exited candidate left is a
leak at once; a key a killed candidate left is one only if it outlives its lease."""

from __future__ import annotations

from etcd_elector import AsyncClient
from etcd_elector.testing._chaos_leaks import find_leaks
from etcd_elector.testing._history import Record, RecordKind


def exited(candidate: str, *leases: int) -> Record:
    return Record(RecordKind.EXITED, 0.0, candidate=candidate, leases=leases)


async def test_a_key_and_lease_left_by_a_clean_exit_are_leaks(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        lease = (await client.lease_grant(30)).id
        await client.put(f"{etcd_prefix}{lease:x}", "c1", lease=lease)
        try:
            found = await find_leaks(etcd_endpoint, etcd_prefix, [exited("c1", lease)], lapse=1)
        finally:
            await client.lease_revoke(lease)
    messages = [v.message for v in found]
    assert any("c1 exited cleanly but its key" in m for m in messages), messages
    assert any(f"c1 exited cleanly but lease {lease:x} lives" in m for m in messages), messages


async def test_a_killed_candidates_key_is_no_leak_once_it_lapses_with_its_lease(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        lease = (await client.lease_grant(1)).id  # nobody keeps it alive: a killed candidate
        await client.put(f"{etcd_prefix}{lease:x}", "c2", lease=lease)
        found = await find_leaks(etcd_endpoint, etcd_prefix, [exited("c1")], lapse=15)
        assert found == []
        assert (await client.get_prefix(etcd_prefix)).kvs == ()


async def test_a_key_that_outlives_the_lapse_is_a_leak(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        await client.put(f"{etcd_prefix}stray", "no lease")
        found = await find_leaks(etcd_endpoint, etcd_prefix, [], lapse=0.5)
        await client.delete(f"{etcd_prefix}stray")
    assert [v.kind for v in found] == ["leak"]
    assert "keys outlived their leases" in found[0].message
    assert f"{etcd_prefix}stray" in found[0].message
