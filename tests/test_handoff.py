"""Handing off to a chosen successor with ``AsyncElection.hand_off``: the successor leads
next, the candidates that were ahead of it queue again behind it, the lowest create revision
still leads, and with no such successor it is a plain resign (the next in line leads)."""

from __future__ import annotations

import asyncio
import contextlib

from helpers.election_kit import WAIT_S, namespace_of, wait_until

from etcd_elector import AsyncClient, AsyncElection, EndReason, NotLeader, Term

NAME = "job"


async def _queue(
    stack: contextlib.AsyncExitStack, client: AsyncClient, namespace: str, count: int
) -> tuple[list[AsyncElection], Term, list[asyncio.Task[Term]]]:
    sessions = [await stack.enter_async_context(client.session(ttl=10)) for _ in range(count)]
    elections = [AsyncElection(s, NAME, namespace=namespace) for s in sessions]
    first = await elections[0].campaign("c0")
    tasks: list[asyncio.Task[Term]] = []
    for index, election in enumerate(elections[1:], start=1):
        tasks.append(asyncio.create_task(election.campaign(f"c{index}", priority=1)))

        async def queued(n: int = index + 1) -> bool:
            return len(await elections[0].view.candidates()) == n

        await wait_until(queued, f"{index + 1} candidates queued")
    return elections, first, tasks


async def _finish(tasks: list[asyncio.Task[Term]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_hand_off_makes_the_named_candidate_lead_and_requeues_those_ahead(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, contextlib.AsyncExitStack() as stack:
        elections, first, tasks = await _queue(stack, client, namespace, 5)
        try:
            successor = await elections[0].hand_off(to="c3")
            assert successor is not None and successor.value == b"c3"
            assert first.end_reason is EndReason.HANDED_OFF and not elections[0].is_leader()
            term = await asyncio.wait_for(tasks[2], WAIT_S)
            assert term.value == b"c3"
            # c1 and c2 were ahead of c3: they queued again, behind c4 and still waiting.
            assert not tasks[0].done() and not tasks[1].done() and not tasks[3].done()

            async def requeued() -> bool:
                values = [c.value for c in await elections[0].view.candidates()]
                return values[:2] == [b"c3", b"c4"] and sorted(values[2:]) == [b"c1", b"c2"]

            await wait_until(requeued, "c1 and c2 queued again behind c4")
            listed = await elections[0].view.candidates()
            assert [c.token for c in listed] == sorted(c.token for c in listed)
            leader = await elections[0].leader()
            assert leader is not None and leader.token == term.token  # lowest create revision
            # The next plain resign goes to the next in line, c4.
            await elections[3].resign()
            assert (await asyncio.wait_for(tasks[3], WAIT_S)).value == b"c4"
        finally:
            await _finish(tasks)


async def test_hand_off_to_a_candidate_that_is_not_there_resigns_in_normal_order(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, contextlib.AsyncExitStack() as stack:
        elections, first, tasks = await _queue(stack, client, namespace, 3)
        try:
            assert await elections[0].hand_off(to="nobody") is None
            assert first.end_reason is EndReason.HANDED_OFF
            assert (await asyncio.wait_for(tasks[0], WAIT_S)).value == b"c1"
            assert not tasks[1].done()
            # Not leading: refused.
            try:
                await elections[0].hand_off()
            except NotLeader:
                pass
            else:
                raise AssertionError("hand_off() by a non-leader was not refused")
        finally:
            await _finish(tasks)


async def test_hand_off_without_a_name_prefers_the_highest_priority(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(client.session(ttl=10)) for _ in range(4)]
        elections = [AsyncElection(s, NAME, namespace=namespace) for s in sessions]
        await elections[0].campaign("c0")
        tasks = [
            asyncio.create_task(elections[1].campaign("c1", priority=1)),
            asyncio.create_task(elections[2].campaign("c2", priority=5)),
            asyncio.create_task(elections[3].campaign("c3", priority=5)),
        ]
        try:

            async def queued() -> bool:
                return len(await elections[0].view.candidates()) == 4

            await wait_until(queued, "4 candidates queued")
            order = [c.value for c in await elections[0].view.candidates()]
            successor = await elections[0].hand_off()
            # The first of the highest priority in queue order (a tie keeps queue order).
            expected = next(v for v in order if v in (b"c2", b"c3"))
            assert successor is not None and successor.value == expected
            done, _ = await asyncio.wait(tasks, timeout=WAIT_S, return_when="FIRST_COMPLETED")
            assert [t.result().value for t in done] == [expected]
        finally:
            await _finish(tasks)


async def test_a_handoff_never_passes_a_candidate_that_does_not_follow_planned_moves(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """A candidate that declared nothing (Go's recipe, or an election driven without an
    elector) would take its deleted key for a won election: the handoff resigns instead, and
    that candidate leads in the normal order, its key never touched."""
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(client.session(ttl=10)) for _ in range(3)]
        elections = [AsyncElection(s, NAME, namespace=namespace) for s in sessions]
        first = await elections[0].campaign("c0")
        tasks = [asyncio.create_task(elections[1].campaign("undeclared"))]

        async def two() -> bool:
            return len(await elections[0].view.candidates()) == 2

        await wait_until(two, "the undeclared candidate queued")
        tasks.append(asyncio.create_task(elections[2].campaign("c2", priority=1)))

        async def three() -> bool:
            return len(await elections[0].view.candidates()) == 3

        await wait_until(three, "c2 queued")
        undeclared = (await elections[0].view.candidates())[1]
        try:
            assert await elections[0].hand_off(to="c2") is None
            assert first.end_reason is EndReason.HANDED_OFF
            term = await asyncio.wait_for(tasks[0], WAIT_S)
            assert term.value == b"undeclared" and term.token == undeclared.token
            assert not tasks[1].done()
        finally:
            await _finish(tasks)
