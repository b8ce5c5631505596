"""``AsyncSession``: validated timing, the granted TTL, keepalive, the local deadline that
ends a session even while etcd is unreachable, and a lease that never outlives its session."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest
from helpers.election_kit import WAIT_S, namespace_of, wait_until

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    ConfigurationError,
    EndReason,
    SessionLost,
    SessionState,
    _clock,
)
from etcd_elector._election._timing import MAX_TTL, Timing, default_margin
from etcd_elector.etcd import KeepAliveAnswer
from etcd_elector.testing import FaultProxy

ProxyFactory = Callable[[str], FaultProxy]

UNREACHABLE = "127.0.0.1:1"


# -- validation (no I/O) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        (0, "cannot be granted"),
        (-1, "cannot be granted"),
        (-0.5, "cannot be granted"),
        (0.5, "cannot be granted"),
        (1.5, "not whole"),
        (MAX_TTL + 1, "cannot be granted"),
        (1e30, "cannot be granted"),
        (math.inf, "cannot be granted"),
        (math.nan, "cannot be granted"),
        (True, "must be a number"),
        ("10", "must be a number"),
        (None, "must be a number"),
    ],
)
async def test_invalid_ttl_is_refused_before_any_io(ttl: object, message: str) -> None:
    async with AsyncClient(UNREACHABLE) as client:
        with pytest.raises(ConfigurationError, match=message):
            client.session(ttl=ttl)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ttl", "margin", "message"),
    [
        (5, 5, "margin 5s must be smaller than the ttl 5s"),
        (5, 7.5, "must be smaller than the ttl"),
        (2, 2.0, "must be smaller than the ttl"),
        (5, -0.1, "non-negative"),
        (5, math.nan, "non-negative"),
        (5, math.inf, "must be smaller than the ttl"),
        (5, "1", "non-negative"),
        (5, True, "non-negative"),
    ],
)
async def test_margin_must_be_below_the_ttl(ttl: int, margin: object, message: str) -> None:
    async with AsyncClient(UNREACHABLE) as client:
        with pytest.raises(ConfigurationError, match=message):
            client.session(ttl=ttl, margin=margin)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", [0, -1, 4.5, 5, 10, math.nan, "1", True])
async def test_keepalive_interval_must_fit_before_the_deadline(interval: object) -> None:
    async with AsyncClient(UNREACHABLE) as client:
        with pytest.raises(ConfigurationError, match="keepalive_interval"):
            client.session(ttl=5, margin=1, keepalive_interval=interval)  # type: ignore[arg-type]


def test_valid_timing_and_default_margin() -> None:
    assert (Timing(5).ttl, Timing(5).margin) == (5, default_margin(5))
    assert Timing(5.0, 1, 2) == Timing(5, 1.0, 2.0)
    assert (Timing(5.0, 1, 2).ttl, Timing(5.0, 1, 2).margin) == (5, 1.0)
    assert (Timing(MAX_TTL, 0).ttl, Timing(MAX_TTL, 0).margin) == (MAX_TTL, 0.0)
    assert default_margin(2) == 0.5
    assert default_margin(10) == pytest.approx(1.5)
    assert default_margin(1) == pytest.approx(1 / 3)
    for ttl in (1, 2, 3, 10, 60, 3600):
        assert 0 < default_margin(ttl) < ttl


# -- lifecycle against etcd --------------------------------------------------------------------


async def test_granted_ttl_is_reported_and_close_revokes(etcd_endpoint: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        session = client.session(ttl=3, margin=0.5)
        assert session.state is SessionState.STARTING
        assert not session.alive
        reasons: list[str] = []
        await session.start()
        session.add_loss_callback(reasons.append)
        assert session.alive and session.state is SessionState.ALIVE
        info = await client.lease_time_to_live(session.lease_id)
        assert session.ttl == info.granted_ttl >= 3
        assert 0 < info.ttl <= session.ttl
        assert session.requested_ttl == 3
        # The deadline counts from the grant's send time: a little less than ttl - margin left.
        assert 0 < session.remaining() <= session.ttl - session.margin
        assert session.deadline == pytest.approx(_clock.now() + session.remaining(), abs=0.05)
        assert session.lease_id in await client.lease_list()

        await session.close()
        assert session.state is SessionState.CLOSED
        assert not session.alive
        assert session.remaining() == 0.0
        assert await session.wait_lost() == EndReason.CLOSED
        assert reasons == [EndReason.CLOSED]
        assert (await client.lease_time_to_live(session.lease_id)).ttl == -1
        assert session.lease_id not in await client.lease_list()
        with pytest.raises(SessionLost) as caught:
            session.check()
        assert caught.value.reason == EndReason.CLOSED
        await session.close()  # idempotent
        assert reasons == [EndReason.CLOSED]
        late: list[str] = []
        session.add_loss_callback(late.append)  # after the loss: called at once
        assert late == [EndReason.CLOSED]


async def test_closing_a_session_deletes_its_keys(etcd_endpoint: str, etcd_prefix: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        async with client.session(ttl=5) as session:
            election = AsyncElection(session, "job", namespace=namespace_of(etcd_prefix))
            await election.campaign("me")
            assert len(await election.view.candidates()) == 1
        assert (await client.get_prefix(etcd_prefix)).kvs == ()
        assert not election.is_leader()


async def test_keepalive_keeps_the_lease_past_its_ttl(etcd_endpoint: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        session = client.session(ttl=1, margin=0.3, keepalive_interval=0.2)
        answers: list[KeepAliveAnswer] = []
        dead_at_answer: list[float] = []

        def seen(answer: KeepAliveAnswer) -> None:
            answers.append(answer)
            if not session.alive:
                dead_at_answer.append(answer.received_at)

        session.add_keepalive_observer(seen)
        async with session:
            started = _clock.now()
            await wait_until(
                lambda: len(answers) >= 5 and _clock.now() - started > 2.5 * session.ttl,
                "keepalive answers for longer than the TTL",
            )
            assert session.alive, session.loss_reason
            assert dead_at_answer == []
            assert all(a.ttl == session.ttl for a in answers)
            assert all(a.sent_at <= a.received_at for a in answers)
            # etcd rounds the remaining TTL down to whole seconds: -1 only when gone.
            assert (await client.lease_time_to_live(session.lease_id)).ttl >= 0


async def test_orphan_leaves_the_lease_to_expire(etcd_endpoint: str, etcd_prefix: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        session = await client.session(ttl=1, margin=0.3).start()
        election = AsyncElection(session, "job", namespace=namespace_of(etcd_prefix))
        await election.campaign("me")
        await session.orphan()
        assert not session.alive
        assert not election.is_leader()
        assert await session.wait_lost() == EndReason.ORPHANED
        # Not revoked: the lease and the key stay until etcd expires them.
        assert (await client.lease_time_to_live(session.lease_id)).ttl >= 0
        assert len((await client.get_prefix(etcd_prefix)).kvs) == 1

        async def expired() -> bool:
            return (await client.lease_time_to_live(session.lease_id)).ttl == -1

        await wait_until(expired, "the orphaned lease expires", timeout=session.ttl + WAIT_S)
        assert (await client.get_prefix(etcd_prefix)).kvs == ()


async def test_revoked_lease_ends_the_session(etcd_endpoint: str) -> None:
    async with AsyncClient(etcd_endpoint) as client, client.session(ttl=5) as session:
        await client.lease_revoke(session.lease_id)
        reason = await asyncio.wait_for(session.wait_lost(), WAIT_S)
        assert reason == EndReason.EXPIRED
        assert not session.alive
        assert session.state is SessionState.LOST
        with pytest.raises(SessionLost):
            await AsyncElection(session, "job").campaign("x")


async def test_deadline_ends_the_session_while_etcd_is_unreachable_then_revokes(
    etcd_endpoint: str, fault_proxy: ProxyFactory
) -> None:
    """With every keepalive blackholed, ``alive`` turns False at the local deadline, while etcd
    still holds the lease; once etcd can be reached again the session revokes the lease."""
    proxy = fault_proxy(etcd_endpoint)
    async with (
        AsyncClient(etcd_endpoint) as direct,
        AsyncClient(proxy.endpoint, timeout=2, connect_timeout=0.5, stream_timeout=1) as client,
    ):
        # A wide margin: at our deadline etcd has at least 2.5 s of the lease left.
        session = client.session(ttl=4, margin=2.5, keepalive_interval=0.5)
        answered = asyncio.Event()
        session.add_keepalive_observer(lambda _answer: answered.set())
        lost_at: list[float] = []
        session.add_loss_callback(lambda _reason: lost_at.append(_clock.now()))
        async with session:
            await asyncio.wait_for(answered.wait(), WAIT_S)
            proxy.blackhole()
            blackholed_at = _clock.now()

            await wait_until(lambda: not session.alive, "the session's deadline passes", 10, 0.01)
            flipped_at = _clock.now()
            info = await direct.lease_time_to_live(session.lease_id)
            # The lease was still alive at etcd when we stopped believing in it.
            assert info.ttl > 0, info
            deadline = session.deadline
            assert blackholed_at < deadline <= flipped_at
            assert flipped_at - deadline < 1.0
            assert session.remaining() == 0.0
            assert session.loss_reason == EndReason.DEADLINE
            with pytest.raises(SessionLost):
                session.check()

            proxy.heal()
            assert await asyncio.wait_for(session.wait_lost(), WAIT_S) == EndReason.DEADLINE
            assert lost_at and lost_at[0] >= deadline

            async def gone() -> bool:
                return (await direct.lease_time_to_live(session.lease_id)).ttl == -1

            await wait_until(gone, "the lost session's lease is revoked after the heal")
            gone_at = _clock.now()
            # etcd expires the lease at the earliest at deadline + margin (the send time of
            # the last answered keepalive plus the granted TTL): gone sooner means revoked.
            assert gone_at < deadline + session.margin, (gone_at - deadline, session.margin)


def test_timing_owns_the_keepalive_rule() -> None:
    """A third of the granted TTL (of the TTL asked for, before etcd answered), unless set;
    the bounds check-config prints follow from it."""
    assert Timing(9).interval(9) == 3.0
    assert Timing(9).interval(12) == 4.0  # etcd granted more than was asked
    assert Timing(9).interval(0) == 3.0  # not granted yet
    assert Timing(9, keepalive_interval=2).interval(12) == 2.0
    assert Timing(10).leader_stops_after(10) == 8.5
    assert Timing(10).renewal_headroom(10) == pytest.approx(10 - 1.5 - 10 / 3)
    with pytest.raises(AttributeError):
        Timing(10).ttl = 5  # type: ignore[misc]


async def test_the_elector_checks_its_timing_once_and_its_sessions_reuse_it(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        with pytest.raises(ConfigurationError, match="margin 3s must be smaller than the ttl 3s"):
            client.elector("timed", ttl=3, margin=3)
        elector = client.elector("timed", ttl=3, margin=0.5, namespace=namespace_of(etcd_prefix))
        assert elector.timing == Timing(3, 0.5)
        async with elector:
            session = await elector._live_session()
            assert session is not None and session.timing is elector.timing
            assert session.margin == 0.5 and session.keepalive_interval == session.ttl / 3
