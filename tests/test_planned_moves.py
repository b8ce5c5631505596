"""Planned moves with real electors on a real etcd: drain then release, handoff requests to a
named successor, ``term.hand_off``, preferred leaders (priority), pause and resume."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
from helpers.cli_process import run_cli
from helpers.election_kit import WAIT_S, namespace_of, wait_until
from helpers.security import enable_auth
from prometheus_client import CollectorRegistry

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    AsyncElector,
    Client,
    ConfigurationError,
    ElectorEvent,
    ElectorState,
    EndReason,
    HealthServer,
    MoveKind,
    PrometheusMetrics,
    Term,
    set_metrics,
)
from etcd_elector.testing import EtcdCluster

NAME = "moves"


class Tracked:
    """An elector and what happened to it: terms won (with when), events, ends."""

    def __init__(self, elector: AsyncElector) -> None:
        self.elector = elector
        self.elected: list[tuple[Term, float]] = []
        self.ended: list[tuple[Term, EndReason]] = []
        self.events: list[ElectorEvent] = []
        self.runner: asyncio.Task[object] | None = None
        self._follower: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self.elector.is_leader()

    def kinds(self) -> list[MoveKind]:
        return [e.move.kind for e in self.events if e.move is not None]

    async def _follow(self) -> None:
        async for event in self.elector.states():
            self.events.append(event)


@contextlib.asynccontextmanager
async def electors(client: AsyncClient, namespace: str) -> AsyncIterator[Callable[..., Tracked]]:
    made: list[Tracked] = []

    def make(
        value: str, work: Callable[[Term], object] | None = None, **options: object
    ) -> Tracked:
        tracked: Tracked

        def on_elected(term: Term) -> None:
            tracked.elected.append((term, time.monotonic()))

        def on_lost(term: Term, reason: EndReason) -> None:
            tracked.ended.append((term, reason))

        elector = AsyncElector(
            client,
            NAME,
            value=value,
            namespace=namespace,
            on_elected=on_elected,
            on_lost=on_lost,
            **options,  # type: ignore[arg-type]
        )
        tracked = Tracked(elector)

        async def hold(term: Term) -> None:
            await asyncio.Event().wait()

        tracked._follower = asyncio.create_task(tracked._follow())
        tracked.runner = asyncio.create_task(elector.run(work or hold))  # type: ignore[arg-type]
        made.append(tracked)
        return tracked

    try:
        yield make
    finally:
        for tracked in made:
            await tracked.elector.close()
        for tracked in made:
            assert tracked.runner is not None
            await asyncio.gather(tracked.runner, return_exceptions=True)
            if tracked._follower is not None:
                tracked._follower.cancel()
                await asyncio.gather(tracked._follower, return_exceptions=True)


async def leader_value(client: AsyncClient, namespace: str) -> bytes | None:
    leader = await client.election_view(NAME, namespace=namespace).leader()
    return None if leader is None else leader.value


async def queued(client: AsyncClient, namespace: str, count: int) -> None:
    view = client.election_view(NAME, namespace=namespace)

    async def enough() -> bool:
        return len(await view.candidates()) == count

    await wait_until(enough, f"{count} candidates queued")


# -- drain, then release ---------------------------------------------------------------------


@pytest.mark.parametrize("trial", range(3))
async def test_the_successor_is_elected_after_the_drained_works_last_action(
    etcd_endpoint: str, etcd_prefix: str, trial: int
) -> None:
    namespace = namespace_of(etcd_prefix)
    last_action: list[float] = []

    async def cooperative(term: Term) -> None:
        await term.wait_draining()
        await asyncio.sleep(0.2 + 0.1 * trial)  # D < budget: finishing the unit at hand
        assert term.is_leader()  # still the leader while draining: fenced writes commit
        last_action.append(time.monotonic())

    async with AsyncClient(etcd_endpoint) as client, electors(client, namespace) as make:
        old = make("old", cooperative, drain=5.0)
        await wait_until(lambda: old.leading, "old leads")
        new = make("new")
        await queued(client, namespace, 2)
        await old.elector.close()
        await wait_until(lambda: new.leading, "new leads")
        assert len(last_action) == 1
        assert new.elected[0][1] > last_action[0]
        assert old.ended[0][1] is EndReason.CLOSED
        assert MoveKind.DRAINING in old.kinds()


async def test_work_that_ignores_the_drain_is_cancelled_at_the_budget_before_the_successor(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    cancelled_at: list[float] = []
    drain_seen: list[float] = []

    async def stubborn(term: Term) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled_at.append(time.monotonic())
            if term.draining.is_set():
                drain_seen.append(time.monotonic())
            raise

    async with AsyncClient(etcd_endpoint) as client, electors(client, namespace) as make:
        old = make("old", stubborn, drain=0.5)
        await wait_until(lambda: old.leading, "old leads")
        new = make("new")
        await queued(client, namespace, 2)
        started = time.monotonic()
        await old.elector.close()
        await wait_until(lambda: new.leading, "new leads")
        assert cancelled_at and drain_seen  # told to stop first, then cancelled
        assert cancelled_at[0] - started >= 0.5  # the whole budget was given
        assert new.elected[0][1] > cancelled_at[0]


# -- handoff -----------------------------------------------------------------------------------


async def test_a_handoff_request_makes_the_named_candidate_lead(
    etcd_endpoint: str, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = namespace_of(etcd_prefix)
    registry = CollectorRegistry()
    previous = set_metrics(PrometheusMetrics(registry))
    caplog.set_level(logging.INFO, logger="etcd_elector")
    async with AsyncClient(etcd_endpoint) as client, electors(client, namespace) as make:
        a = make("a", drain=1.0)
        await wait_until(lambda: a.leading, "a leads")
        b, c = make("b"), make("c")
        await queued(client, namespace, 3)
        view = client.election_view(NAME, namespace=namespace)
        asked = await view.request_handoff(to="c", by="operator")
        assert asked is not None and asked.value == b"a"
        await wait_until(lambda: c.leading, "c leads")
        assert not b.leading and not a.leading
        assert a.ended[0][1] is EndReason.HANDED_OFF
        assert a.kinds()[:3] == [
            MoveKind.HANDOFF_REQUESTED,
            MoveKind.DRAINING,
            MoveKind.HANDED_OFF,
        ]
        requested = next(e.move for e in a.events if e.move is not None)
        assert requested.to == b"c" and requested.by == "operator"
        handed = [e.move for e in a.events if e.move and e.move.kind is MoveKind.HANDED_OFF]
        assert handed[0].successor == c.elector.election.key  # type: ignore[union-attr]
        # The request is carried out once: nobody hands off again.
        assert (await client.get(view.moves.request)).kv is None
        assert await leader_value(client, namespace) == b"c"
    set_metrics(previous)
    for kind in ("handoff_requested", "draining", "handed_off"):
        sample = registry.get_sample_value(
            "etcd_elector_planned_moves_total", {"election": NAME, "kind": kind}
        )
        assert sample == 1, kind
    term = a.elected[0][0]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("handed-off")]
    assert lines and f"key={term.key}" in lines[0] and f"lease={term.lease_hex}" in lines[0]


async def test_a_request_for_a_leader_that_is_gone_is_not_acted_on(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, electors(client, namespace) as make:
        view = client.election_view(NAME, namespace=namespace)
        assert await view.request_handoff(to="b") is None  # nobody leads: nothing written
        assert (await client.get(view.moves.request)).kv is None
        a = make("a")
        await wait_until(lambda: a.leading, "a leads")
        b = make("b")
        await queued(client, namespace, 2)
        await view.request_handoff(to="b")
        await wait_until(lambda: b.leading, "b leads")
        # A stale request (for a's term) written again is ignored by b's term.
        from etcd_elector._election._moves import HandoffRequest

        stale = HandoffRequest.make("a", "someone", a.elected[0][0].token)
        await client.put(view.moves.request, stale.encode())
        term = b.elected[0][0]
        await asyncio.sleep(0)  # let the watch deliver; b must keep leading regardless
        await wait_until(lambda: b.elector.moves.request is not None, "b saw the request")
        assert b.leading and b.elector.term is not None and b.elector.term.same_term(term)


async def test_term_hand_off_from_the_work_drains_and_hands_over(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    stopped: list[bool] = []

    async def handing(term: Term) -> None:
        await queued(client, namespace, 3)
        term.hand_off(to="c")
        await term.wait_draining()
        stopped.append(True)

    async with AsyncClient(etcd_endpoint) as client, electors(client, namespace) as make:
        a = make("a", handing, drain=2.0, requeue=False)
        await wait_until(lambda: a.leading, "a leads")
        b, c = make("b"), make("c")
        await wait_until(lambda: c.leading, "c leads")
        assert stopped == [True] and not b.leading
        assert a.ended[0][1] is EndReason.HANDED_OFF


async def test_term_hand_off_outside_an_elector_says_what_to_use(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, client.session(ttl=5) as session:
        term = await AsyncElection(session, NAME, namespace=namespace).campaign("x")
        with pytest.raises(RuntimeError, match="election instead"):
            term.hand_off()


# -- preferred leaders -----------------------------------------------------------------------


async def test_a_higher_priority_candidate_takes_over_and_normal_order_resumes_when_it_leaves(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, electors(client, namespace) as make:
        a = make("a", drain=1.0)
        await wait_until(lambda: a.leading, "a leads")
        b = make("b")
        standby = make("standby", priority=0)
        await queued(client, namespace, 2)
        preferred = make("preferred", priority=10)
        await wait_until(lambda: preferred.leading, "the preferred candidate leads")
        assert a.ended[0][1] is EndReason.HANDED_OFF
        assert standby.elector.state is ElectorState.STANDBY and not standby.elected
        values = [
            c.value for c in await client.election_view(NAME, namespace=namespace).candidates()
        ]
        assert b"standby" not in values and values[0] == b"preferred"
        await preferred.elector.close()
        await wait_until(lambda: a.leading or b.leading, "normal order resumes")
        assert not standby.elected


async def test_priority_is_checked_when_built() -> None:
    async with AsyncClient("127.0.0.1:1") as client:
        for bad in (-1, 2_000_000, 1.5, True):
            with pytest.raises(ConfigurationError, match="priority"):
                AsyncElector(client, NAME, priority=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="drain"):
            AsyncElector(client, NAME, drain=-1)


# -- pause and resume ------------------------------------------------------------------------


async def test_pause_leaves_no_leader_nor_candidate_key_until_resume(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client, electors(client, namespace) as make:
        a = make("a", drain=1.0)
        await wait_until(lambda: a.leading, "a leads")
        b = make("b")
        await queued(client, namespace, 2)
        view = client.election_view(NAME, namespace=namespace)
        pause = await view.pause("database migration", by="ops")
        assert pause.reason == "database migration"

        async def nobody() -> bool:
            return not await view.candidates()

        await wait_until(nobody, "no candidate key left")
        await wait_until(
            lambda: all(t.elector.state is ElectorState.PAUSED for t in (a, b)), "all paused"
        )
        assert a.ended[0][1] is EndReason.PAUSED
        found = await view.paused()
        assert found is not None and (found.by, found.reason) == ("ops", "database migration")
        status, body = HealthServer(b.elector).health()
        assert status == 200 and body["elector"] == "paused"
        assert body["paused"]["by"] == "ops" and body["paused"]["reason"] == "database migration"
        paused_events = [e.move for e in b.events if e.move and e.move.kind is MoveKind.PAUSED]
        assert paused_events and paused_events[-1].by == "ops"
        # A candidate that starts while paused holds off too.
        c = make("c")
        await wait_until(lambda: c.elector.state is ElectorState.PAUSED, "c paused")
        assert await view.leader() is None
        assert await view.resume() is True
        await wait_until(lambda: a.leading or b.leading or c.leading, "a leader again")
        assert MoveKind.RESUMED in b.kinds()
        assert await view.paused() is None
        assert await view.resume() is False


def test_threaded_work_drains_in_its_own_thread_before_the_successor(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    started = threading.Event()
    last_action: list[float] = []
    elected: list[float] = []

    def work(term: Term) -> None:
        started.set()
        term.draining.wait(WAIT_S)  # between units of work, as threaded work checks term.lost
        time.sleep(0.3)  # finishing the unit at hand
        last_action.append(time.monotonic())

    with Client(etcd_endpoint) as client:
        old = client.elector(NAME, namespace=namespace, value="old", drain=5.0)
        new = client.elector(
            NAME,
            namespace=namespace,
            value="new",
            on_elected=lambda term: elected.append(time.monotonic()),
        )
        old_thread = threading.Thread(target=old.run, args=(work,))
        old_thread.start()
        assert started.wait(WAIT_S)
        new_thread = threading.Thread(target=new.run, args=(lambda term: term.lost.wait(WAIT_S),))
        new_thread.start()
        view = client.election_view(NAME, namespace=namespace)
        deadline = time.monotonic() + WAIT_S
        while len(view.candidates()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        old.close()
        old_thread.join(WAIT_S)
        new_deadline = time.monotonic() + WAIT_S
        while not elected and time.monotonic() < new_deadline:
            time.sleep(0.02)
        new.close()
        new_thread.join(WAIT_S)
    assert last_action and elected and elected[0] > last_action[0]


async def test_a_role_on_the_election_prefix_only_still_elects_without_planned_moves(
    etcd_binary: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A least-privilege role from before planned moves (read and write on
    ``<namespace>/<name>/`` only) keeps working: the elector warns once that it cannot follow
    the moves keys, and leads as before."""
    namespace = "/apps"
    caplog.set_level(logging.WARNING, logger="etcd_elector")
    with EtcdCluster.start(1, binary=etcd_binary) as cluster:
        endpoint = cluster.endpoints[0]
        enable_auth(endpoint, {"alice": ("alice-password", f"{namespace}/{NAME}/")})
        async with (
            AsyncClient(endpoint, username="alice", password="alice-password") as client,
            electors(client, namespace) as make,
        ):
            a = make("a")
            await wait_until(lambda: a.leading, "a leads")
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any(
                "cannot follow planned moves" in line and f"{namespace}/{NAME}#moves/" in line
                for line in warnings
            ), warnings
            # status, with the same role, still lists the candidates (no pause shown).
            env = {"ETCD_USER": "alice", "ETCD_PASSWORD": "alice-password"}
            done = await asyncio.to_thread(
                run_cli, "--endpoints", endpoint, "--namespace", namespace, "status", NAME, env=env
            )
            assert done.returncode == 0, done.stderr
            assert "1 candidate(s)" in done.stdout


def test_the_blocking_view_asks_for_moves_too(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = namespace_of(etcd_prefix)
    with Client(etcd_endpoint) as client:
        view = client.election_view(NAME, namespace=namespace)
        assert view.request_handoff(to="x") is None  # nobody leads: nothing asked
        assert view.paused() is None
        pause = view.pause("maintenance", by="ops")
        found = view.paused()
        assert found is not None and (found.by, found.reason) == ("ops", "maintenance")
        assert found.at == pause.at
        assert view.resume() is True and view.paused() is None
