"""The one fan-out behind the elector's ``states()`` and a shard group's ``events()``: every
follower gets every event from when it began following, and its stream ends after the final
one, also when it begins after the final one was published (a follower would otherwise wait
forever, as ``elector.states()`` called after ``close()`` once did)."""

from __future__ import annotations

import asyncio

from etcd_elector import AsyncClient
from etcd_elector._broadcast import Broadcast


def is_end(event: str) -> bool:
    return event == "end"


async def collect(broadcast: Broadcast[str]) -> list[str]:
    return [event async for event in broadcast.follow()]


async def test_each_follower_gets_every_event_from_when_it_began_until_the_final_one() -> None:
    broadcast: Broadcast[str] = Broadcast(is_end)
    early = asyncio.ensure_future(collect(broadcast))
    await asyncio.sleep(0)  # it starts following
    broadcast.publish("a")
    late = asyncio.ensure_future(collect(broadcast))
    await asyncio.sleep(0)
    broadcast.publish("b")
    broadcast.publish("end")
    assert await early == ["a", "b", "end"]
    assert await late == ["b", "end"]


async def test_a_follower_that_begins_after_the_final_event_ends_at_once() -> None:
    broadcast: Broadcast[str] = Broadcast(is_end)
    broadcast.publish("end")
    assert await asyncio.wait_for(collect(broadcast), 5) == []


async def test_states_of_a_closed_elector_end_at_once(etcd_endpoint: str, etcd_prefix: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector("closed", namespace=etcd_prefix.rstrip("/"), ttl=5)
        async with elector:
            pass
        states = [event.state async for event in elector.states()]
    assert states == []
