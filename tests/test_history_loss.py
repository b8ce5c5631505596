"""etcd loses history under a running election: its data dir wiped, or an older snapshot
restored. Real etcd processes, really wiped and restored; the library in this process.

What must hold: the term ends with its own reason (``etcd_history_lost``), through the term's
callbacks, the session, exceptions, metrics and an ERROR log line naming revisions and cluster
ids; no term is announced with a token at or below the highest revision seen before; fenced
writes that vanished are reported; a leader whose key came back from the snapshot stops, and
its key is removed; the override and the token file work. And on a healthy 3-member cluster,
with members killed, frozen and restarted under load, not one false alarm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.election_kit import namespace_of, wait_until
from prometheus_client import CollectorRegistry

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    EndReason,
    HistoryLoss,
    Op,
    PrometheusMetrics,
    SessionLost,
    Term,
    TokenRegressed,
    TransportError,
    set_metrics,
)
from etcd_elector.testing import EtcdCluster, EtcdMember

pytestmark = pytest.mark.timeout(120)

NAME = "job"
FILLER = 30  # writes before the election, so that a wiped etcd starts well below its token
# Long enough for etcd to be wiped or restored and started again before the term's deadline:
# an outage longer than that ends the term at its deadline first (the loss is reported after).
TTL, MARGIN = 5, 1.0
GUARD_LOGGER = "etcd_elector.etcd._history_guard"


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    fresh = CollectorRegistry()
    previous = set_metrics(PrometheusMetrics(fresh))
    yield fresh
    set_metrics(previous)


def fast_client(endpoints: str | list[str], **options: object) -> AsyncClient:
    return AsyncClient(
        endpoints,
        timeout=2,
        connect_timeout=0.5,
        stream_timeout=1,
        **options,  # type: ignore[arg-type]
    )


async def fill(client: AsyncClient, prefix: str, count: int) -> int:
    """``count`` writes; returns etcd's revision after them."""
    revision = 0
    for index in range(count):
        revision = (await client.put(f"{prefix}fill/{index}", "x")).revision
    return revision


async def fill_through_faults(client: AsyncClient, prefix: str, count: int) -> None:
    """``count`` writes that may fail (a frozen member): each is tried again, bounded."""
    done = 0
    for _attempt in range(count * 20):
        if done == count:
            return
        try:
            await client.put(f"{prefix}load/{done}", "x")
            done += 1
        except TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"only {done} of {count} writes went through")


class Ended:
    """Every term end seen by an election's callback."""

    def __init__(self, election: AsyncElection) -> None:
        self.reasons: list[tuple[int, str]] = []
        election.add_term_end_callback(
            lambda term, reason: self.reasons.append((term.token, reason))
        )


def guard_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == GUARD_LOGGER and r.levelno == logging.ERROR
    ]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def campaign_refused(election: AsyncElection) -> TokenRegressed:
    """A campaign refused for its token; the election stays usable (a session has one
    election per name: campaign on it again)."""
    with pytest.raises(TokenRegressed) as refused:
        await election.campaign("again")
    assert election.key is None
    return refused.value


# -- a wiped data dir ------------------------------------------------------------------------------


async def test_wiped_etcd_ends_the_term_reports_lost_writes_and_refuses_lower_tokens(
    etcd_member: EtcdMember,
    etcd_prefix: str,
    caplog: pytest.LogCaptureFixture,
    registry: CollectorRegistry,
) -> None:
    caplog.set_level(logging.INFO, logger="etcd_elector")
    namespace = namespace_of(etcd_prefix)
    async with fast_client(etcd_member.client_endpoint) as client:
        await fill(client, etcd_prefix, FILLER)
        session = await client.session(ttl=TTL, margin=MARGIN).start()
        election = AsyncElection(session, NAME, namespace=namespace)
        ended = Ended(election)
        term = await election.campaign("leader")
        fenced = [
            (await election.txn(success=[Op.put(f"{etcd_prefix}fenced/{i}", "v")])).revision
            for i in range(5)
        ]
        cluster_before = client.history.cluster_id

        await asyncio.to_thread(etcd_member.wipe_and_restart)

        await wait_until(lambda: bool(ended.reasons), "the term ended", timeout=30)
        assert ended.reasons == [(term.token, EndReason.HISTORY_LOST)]
        assert term.end_reason == EndReason.HISTORY_LOST and term.lost.is_set()
        assert not election.is_leader()
        assert session.loss_reason == EndReason.HISTORY_LOST
        with pytest.raises(SessionLost) as lost:
            session.check()
        assert lost.value.reason == EndReason.HISTORY_LOST

        loss = client.history.last_loss
        assert loss is not None
        assert loss.kind == HistoryLoss.REVISION_WENT_BACK
        assert loss.previous_revision >= fenced[-1] > term.token
        assert loss.revision < term.token
        assert loss.cluster_id == loss.previous_cluster_id == cluster_before  # a wipe keeps it
        (error,) = guard_errors(caplog)
        assert f" previous_revision={loss.previous_revision} " in error
        assert f" revision={loss.revision} " in error and "went back" in error
        assert f" cluster_id={loss.cluster_id:x} " in error and "--bump-revision" in error
        lost_writes = [r.getMessage() for r in caplog.records if "fenced writes" in r.getMessage()]
        assert len(lost_writes) == 1
        assert " fenced_writes=5 " in lost_writes[0]
        assert f" first_revision={fenced[0]} last_revision={fenced[-1]} " in lost_writes[0]

        # A new session wins in the new history with a token at or below the floor: refused.
        async with client.session(ttl=TTL, margin=MARGIN) as again:
            retry = AsyncElection(again, NAME, namespace=namespace)
            refused = await campaign_refused(retry)
            assert refused.token <= refused.floor == client.history.floor
            assert client.history.floor >= fenced[-1]
            assert await election.view.candidates() == ()  # the refused key was deleted
            # Once etcd's revisions pass the floor, leadership resumes above it.
            await fill(client, etcd_prefix, client.history.floor - refused.token)
            resumed = await retry.campaign("again")
            assert resumed.token > client.history.floor

        assert sample(registry, "etcd_elector_history_losses_total", kind=loss.kind) == 1
        assert (
            sample(
                registry,
                "etcd_elector_terms_ended_total",
                election=NAME,
                reason=EndReason.HISTORY_LOST,
            )
            == 1
        )
        assert sample(registry, "etcd_elector_leadership_refusals_total", election=NAME) == 1
        await session.close()


async def test_a_session_alone_tells_a_wiped_etcd_from_an_expired_lease(
    etcd_member: EtcdMember, etcd_prefix: str
) -> None:
    """A wiped etcd answers a keepalive as if the lease had expired: with no election around
    to read anything, the session asks etcd once more before calling it an expiry."""
    async with fast_client(etcd_member.client_endpoint) as client:
        await fill(client, etcd_prefix, FILLER)
        async with client.session(ttl=TTL, margin=MARGIN) as session:
            await asyncio.to_thread(etcd_member.wipe_and_restart)
            reason = await asyncio.wait_for(session.wait_lost(), 30)
            assert reason == EndReason.HISTORY_LOST
        # A lease that really expires is still an expiry, not a false alarm.
        async with client.session(ttl=TTL, margin=MARGIN) as session:
            await client.lease_revoke(session.lease_id)
            assert await asyncio.wait_for(session.wait_lost(), 30) == EndReason.EXPIRED
        assert client.history.last_loss is not None
        assert client.history.last_loss.revision < FILLER


async def test_the_override_lets_the_new_history_lead(
    etcd_member: EtcdMember, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with fast_client(etcd_member.client_endpoint) as client:
        await fill(client, etcd_prefix, FILLER)
        async with client.session(ttl=TTL, margin=MARGIN) as session:
            first = await AsyncElection(session, NAME, namespace=namespace).campaign("leader")
            await asyncio.to_thread(etcd_member.wipe_and_restart)
            await wait_until(lambda: not session.alive, "the session ended", timeout=30)
        async with client.session(ttl=TTL, margin=MARGIN) as session:
            retry = AsyncElection(session, NAME, namespace=namespace)
            await campaign_refused(retry)
            assert client.history.accept_reset() >= first.token
            term = await retry.campaign("accepted")
            assert term.token <= first.token  # accepted on purpose: the new history leads


# -- a restored snapshot ---------------------------------------------------------------------------


async def test_restored_snapshot_stops_the_leader_whose_key_came_back(
    etcd_member: EtcdMember,
    etcd_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="etcd_elector")
    namespace = namespace_of(etcd_prefix)
    snapshot = tmp_path / "backup.db"
    async with fast_client(etcd_member.client_endpoint) as client:
        await fill(client, etcd_prefix, FILLER)
        session = await client.session(ttl=TTL, margin=MARGIN).start()
        election = AsyncElection(session, NAME, namespace=namespace)
        ended = Ended(election)
        term: Term = await election.campaign("leader")
        # The backup holds our key and lease: after the restore, both come back.
        await asyncio.to_thread(etcd_member.snapshot_save, snapshot)
        fenced = [
            (await election.txn(success=[Op.put(f"{etcd_prefix}fenced/{i}", "v")])).revision
            for i in range(37)
        ]
        cluster_before = client.history.cluster_id

        await asyncio.to_thread(etcd_member.cluster.restore_snapshot, snapshot)

        await wait_until(lambda: bool(ended.reasons), "the term ended", timeout=30)
        assert ended.reasons == [(term.token, EndReason.HISTORY_LOST)]
        loss = client.history.last_loss
        assert loss is not None
        assert loss.kind == HistoryLoss.REVISION_WENT_BACK
        assert loss.cluster_changed and loss.previous_cluster_id == cluster_before
        assert loss.revision < fenced[-1] <= loss.previous_revision
        (error,) = guard_errors(caplog)
        assert f" cluster_id={loss.cluster_id:x} " in error
        assert f" previous_cluster_id={loss.previous_cluster_id:x} " in error
        (lost_writes,) = [
            r.getMessage() for r in caplog.records if "fenced writes" in r.getMessage()
        ]
        assert " fenced_writes=37 " in lost_writes
        assert f" first_revision={fenced[0]} last_revision={fenced[-1]} " in lost_writes
        assert f" revision={loss.revision}: those above the revision etcd is at now" in lost_writes

        # The key came back with the snapshot; the lost session revokes its lease, so the
        # ghost leader vanishes and cannot block the election.
        async def key_gone() -> bool:
            return (await client.get(term.key)).kv is None

        await wait_until(key_gone, "the restored key of the lost term is deleted", timeout=30)
        await session.close()


async def test_a_token_file_makes_a_restarted_process_refuse_too(
    etcd_member: EtcdMember, etcd_prefix: str, tmp_path: Path
) -> None:
    namespace = namespace_of(etcd_prefix)
    token_file = tmp_path / "token.json"
    async with fast_client(etcd_member.client_endpoint, token_file=token_file) as client:
        await fill(client, etcd_prefix, FILLER)
        async with client.session(ttl=TTL, margin=MARGIN) as session:
            first = await AsyncElection(session, NAME, namespace=namespace).campaign("leader")
    # The process "restarts" (a new client knows nothing) after etcd lost its data.
    await asyncio.to_thread(etcd_member.wipe_and_restart)
    async with fast_client(etcd_member.client_endpoint, token_file=token_file) as client:
        assert client.history.floor >= first.token
        async with client.session(ttl=TTL, margin=MARGIN) as session:
            retry = AsyncElection(session, NAME, namespace=namespace)
            refused = await campaign_refused(retry)
            assert refused.floor >= first.token
            loss = client.history.last_loss
            assert loss is not None and loss.from_token_file
            client.history.accept_reset()
            term = await retry.campaign("accepted")
            assert term.token < first.token


# -- no false alarm on a healthy cluster -----------------------------------------------------------


@pytest.mark.cluster
async def test_no_false_alarm_with_members_killed_frozen_and_restarted_under_load(
    etcd_cluster3: EtcdCluster, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Leaders, waiting candidates and an observer fail over between endpoints while members
    are killed, frozen and restarted, and fenced writes, reads and watches run all along:
    lagging members answer, answers cross, and not one history loss may be reported."""
    caplog.set_level(logging.WARNING, logger="etcd_elector")
    namespace = namespace_of(etcd_prefix)
    endpoints = etcd_cluster3.endpoints
    clients = [fast_client(endpoints[i:] + endpoints[:i]) for i in range(3)]
    stop = asyncio.Event()
    reasons: list[str] = []
    writes = 0

    async def candidate(client: AsyncClient, value: str) -> None:
        nonlocal writes
        async with client.elector(
            NAME, value=value, ttl=2, namespace=namespace, on_lost=lambda t, r: reasons.append(r)
        ) as elector:

            async def work(term: Term) -> None:
                nonlocal writes
                election = elector.election
                assert election is not None
                while not stop.is_set() and term.is_leader():
                    try:
                        await election.txn(success=[Op.put(f"{etcd_prefix}work", value)])
                        writes += 1
                    except Exception:
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.01)

            runner = asyncio.ensure_future(elector.run(work))
            await stop.wait()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def observer(client: AsyncClient) -> None:
        async for _event in client.election_view(NAME, namespace=namespace).observe_events():
            pass

    async def writes_go_on(when: str) -> None:
        before = writes
        await wait_until(lambda: writes > before + 5, f"fenced writes go on {when}", timeout=30)

    for client in clients:
        await client.open()
    tasks = [
        asyncio.ensure_future(candidate(clients[0], "a")),
        asyncio.ensure_future(candidate(clients[1], "b")),
        asyncio.ensure_future(observer(clients[2])),
    ]
    try:
        await wait_until(lambda: writes > 20, "fenced writes flow", timeout=30)
        for round_ in range(6):
            member = etcd_cluster3.members[round_ % 3]
            if round_ == 3:
                member = await asyncio.to_thread(etcd_cluster3.wait_for_leader)
            if round_ % 2 == 0:
                await asyncio.to_thread(member.kill)
            else:
                await asyncio.to_thread(member.stop)
            await fill_through_faults(clients[2], etcd_prefix, 20)  # the others move on
            await writes_go_on("while a member is down")
            if member.is_stopped:
                await asyncio.to_thread(member.cont)
            else:
                await asyncio.to_thread(member.restart)
            await writes_go_on("after it is back")
    finally:
        stop.set()
        tasks[-1].cancel()  # the observer runs until cancelled
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.close()
    assert [client.history.last_loss for client in clients] == [None, None, None]
    assert EndReason.HISTORY_LOST not in reasons
    assert not [r for r in caplog.records if r.name == GUARD_LOGGER]
