"""The library never sends etcd a read-only transaction of its own. etcd 3.5.0 to 3.5.4 crash
(a Go panic, the member exits) when a read-only transaction is cancelled while it runs
(etcd-io/etcd#14110), and a candidate's reads are cancelled whenever it stops or a deadline
passes: our test etcd, 3.5.1, died that way in a full test run. Its reads are plain ranges."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, namespace_of, wait_until

from etcd_elector import AsyncClient, AsyncElection
from etcd_elector.etcd import Compare, Op
from etcd_elector.etcd._client import AsyncEtcdClient
from etcd_elector.etcd._txn import build_txn_request, reads_only
from etcd_elector.testing import EtcdMember

ROUNDS = 200
ROUNDS_BUDGET_S = 60.0  # bounded however slow the machine


@pytest.fixture
def read_only_txns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read-only transaction any client sends during the test (the caller's name)."""
    sent: list[str] = []
    original = AsyncEtcdClient.txn

    async def recording(
        self: AsyncEtcdClient,
        compares: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        **options: Any,
    ) -> Any:
        request = build_txn_request(tuple(compares), tuple(success), tuple(failure))
        if reads_only(request):
            sent.append(repr(request)[:200])
        return await original(self, compares, success, failure, **options)

    monkeypatch.setattr(AsyncEtcdClient, "txn", recording)
    return sent


async def test_campaigns_handoffs_resigns_and_reads_send_no_read_only_transaction(
    etcd_endpoint: str, etcd_prefix: str, read_only_txns: list[str]
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(client.session(ttl=10)) for _ in range(4)]
        elections = [AsyncElection(s, "job", namespace=namespace) for s in sessions]
        await elections[0].campaign("c0")
        waiting = [
            asyncio.create_task(election.campaign(f"c{n}", priority=1))
            for n, election in enumerate(elections[1:], start=1)
        ]
        try:

            async def queued() -> bool:
                return len(await elections[0].view.candidates()) == 4

            await wait_until(queued, "4 candidates queued")
            assert (await elections[0].hand_off(to="c2")) is not None  # the plan, then the txn
            await asyncio.wait_for(waiting[1], WAIT_S)  # c2 read where it stands, and leads
            await elections[2].resign()
            # The next in line (the three queued in any order; a handoff requeued those ahead
            # of c2) reads where it stands and leads; the other waiting campaign is stopped.
            rest = [waiting[0], waiting[2]]
            done, _ = await asyncio.wait(rest, timeout=WAIT_S, return_when="FIRST_COMPLETED")
            assert len(done) == 1 and not done.pop().exception()
            assert (await elections[0].view.leader()) is not None
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
    assert read_only_txns == []


async def test_the_recorder_sees_a_read_only_transaction(
    etcd_endpoint: str, etcd_prefix: str, read_only_txns: list[str]
) -> None:
    """The check above can fail: a read-only transaction is seen when one is sent."""
    async with AsyncClient(etcd_endpoint) as client:
        await client.txn([], [Op.get(etcd_prefix, prefix=True)])
    assert len(read_only_txns) == 1


async def test_candidates_stopped_while_they_read_where_they_stand_leave_etcd_running(
    etcd_member: EtcdMember,
) -> None:
    """The user's path that crashed etcd 3.5.1 within about 70 rounds when the standing read
    was a read-only transaction: waiting candidates woken by a resign and stopped at once."""
    rng = random.Random(7)
    async with AsyncClient(etcd_member.client_endpoint, timeout=2) as client:
        started = time.monotonic()
        for _ in range(ROUNDS):
            if time.monotonic() - started > ROUNDS_BUDGET_S:
                break
            async with client.session(ttl=10) as leading:
                leader = AsyncElection(leading, "e", namespace="/stopped")
                await leader.campaign("leader")
                sessions = [await client.session(ttl=10).start() for _ in range(8)]
                waiting = [
                    asyncio.ensure_future(
                        AsyncElection(s, "e", namespace="/stopped").campaign(str(n))
                    )
                    for n, s in enumerate(sessions)
                ]
                await leader.resign()  # every waiter reads where it stands now
                await asyncio.sleep(rng.uniform(0, 0.003))
                for task in waiting:
                    task.cancel()  # stopped mid-read
                await asyncio.gather(*waiting, return_exceptions=True)
                for session in sessions:
                    await session.close()
            assert etcd_member.is_running, "etcd exited: see its log"
