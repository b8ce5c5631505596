"""The elector, through the async API and its sync twin: one set of scenarios, two drivers.

Every candidate records what happened with stamps on the library's clock, so assertions are
about the order of events, never about wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from etcd_elector import (
    AsyncClient,
    Client,
    ConnectionFailed,
    LeadershipLost,
    PermissionDenied,
    RequestTimeout,
    Term,
    _clock,
)
from etcd_elector._identity import default_identity
from etcd_elector.testing import EtcdMember, FaultProxy

TTL = 2
WAIT = 30.0  # generous bound for any single condition on a loaded machine


@dataclass
class Recorder:
    """Thread-safe list of (kind, stamp, token, reason)."""

    events: list[tuple[str, float, int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # When each term ended locally (token -> Term.ended_at): before its key went, so before
    # any successor could be elected; on_lost itself is called after the resign.
    ended_at: dict[int, float | None] = field(default_factory=dict)

    def lost(self, term: Term, reason: str) -> None:
        self.ended_at[term.token] = term.ended_at
        self.add("lost", term.token, reason)

    def add(self, kind: str, token: int = 0, reason: str | None = None) -> None:
        with self.lock:
            self.events.append((kind, _clock.now(), token, reason))

    def of(self, kind: str) -> list[tuple[str, float, int, str | None]]:
        with self.lock:
            return [e for e in self.events if e[0] == kind]

    def count(self, kind: str) -> int:
        return len(self.of(kind))


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` (cheap, local) until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def until_async(
    read: Callable[[], Any], check: Callable[[Any], bool], what: str, timeout: float = WAIT
) -> None:
    """Like :func:`until`, for a condition that needs an etcd read."""
    deadline = time.monotonic() + timeout
    while not check(await read()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Candidate(Protocol):
    record: Recorder

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def is_leader(self) -> bool: ...
    def lease_id(self) -> int: ...


class AsyncCandidate:
    def __init__(
        self,
        endpoint: str,
        name: str,
        namespace: str,
        *,
        finish_first: threading.Event | None = None,
        **options: Any,
    ) -> None:
        self.record = Recorder()
        self.endpoint, self.name, self.namespace, self.options = endpoint, name, namespace, options
        self.finish_first = finish_first  # first term's work returns once this is set
        self.result: Any = None
        self.error: BaseException | None = None

    async def start(self) -> None:
        self.client = AsyncClient(self.endpoint, timeout=2, stream_timeout=1)
        await self.client.open()
        self.elector = self.client.elector(
            self.name,
            namespace=self.namespace,
            ttl=TTL,
            on_elected=lambda term: self.record.add("elected", term.token),
            on_lost=self.record.lost,
            backoff=(0.05, 0.5),
            **self.options,
        )
        await self.elector.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            self.result = await self.elector.run(self.work)
        except Exception as exc:
            self.error = exc

    async def work(self, term: Term) -> Any:
        self.record.add("work_start", term.token)
        try:
            if self.finish_first is not None and self.record.count("work_start") == 1:
                await asyncio.to_thread(self.finish_first.wait, WAIT)
                return term.token
            if self.options.get("requeue") is False:
                return term.token
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.record.add("work_stopped", term.token)
            raise

    async def close(self) -> None:
        await self.elector.close()
        await self.task
        await self.client.close()
        self.closed = True

    def is_leader(self) -> bool:
        return self.elector.is_leader()

    def lease_id(self) -> int:
        session = self.elector.session
        return session.lease_id if session else 0


class SyncCandidate:
    """The same candidate on the blocking API: work runs in its own thread."""

    def __init__(
        self,
        endpoint: str,
        name: str,
        namespace: str,
        *,
        finish_first: threading.Event | None = None,
        **options: Any,
    ) -> None:
        self.record = Recorder()
        self.endpoint, self.name, self.namespace, self.options = endpoint, name, namespace, options
        self.finish_first = finish_first  # first term's work returns once this is set
        self.result: Any = None
        self.error: BaseException | None = None

    async def start(self) -> None:
        self.client = Client(self.endpoint, timeout=2, stream_timeout=1)
        self.elector = self.client.elector(
            self.name,
            namespace=self.namespace,
            ttl=TTL,
            on_elected=lambda term: self.record.add("elected", term.token),
            on_lost=self.record.lost,
            backoff=(0.05, 0.5),
            **self.options,
        )
        self.elector.__enter__()
        self.thread = threading.Thread(target=self._run, name=f"work-{self.name}")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.elector.run(self.work)
        except Exception as exc:
            self.error = exc

    def work(self, term: Term) -> Any:
        self.record.add("work_start", term.token)
        if self.finish_first is not None and self.record.count("work_start") == 1:
            self.finish_first.wait(WAIT)
            return term.token
        if self.options.get("requeue") is False:
            return term.token
        while not term.lost.wait(0.005):
            pass
        self.record.add("work_stopped", term.token)
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self.elector.close)
        await asyncio.to_thread(self.thread.join, WAIT)
        assert not self.thread.is_alive()
        await asyncio.to_thread(self.client.close)
        self.closed = True

    def is_leader(self) -> bool:
        return self.elector.is_leader()

    def lease_id(self) -> int:
        session = self.elector.aio.session
        return session.lease_id if session else 0


DRIVERS = {"async": AsyncCandidate, "sync": SyncCandidate}


@pytest.fixture(params=sorted(DRIVERS))
async def make(
    request: pytest.FixtureRequest, etcd_prefix: str
) -> AsyncIterator[Callable[..., Candidate]]:
    started: list[Candidate] = []
    namespace = etcd_prefix.rstrip("/")

    def factory(endpoint: str, name: str = "job", **options: Any) -> Candidate:
        driver: Any = DRIVERS[request.param]
        candidate: Candidate = driver(endpoint, name, namespace, **options)
        started.append(candidate)
        return candidate

    yield factory
    for candidate in started:
        if hasattr(candidate, "elector") and not getattr(candidate, "closed", False):
            await candidate.close()


def assert_on_lost_once_per_term(candidate: Candidate) -> None:
    elected = [e[2] for e in candidate.record.of("elected")]
    lost = [e[2] for e in candidate.record.of("lost")]
    assert sorted(elected) == sorted(lost), (elected, lost)
    assert len(set(lost)) == len(lost), f"on_lost called twice for a term: {lost}"


async def test_work_returning_hands_over_while_old_lease_is_alive(
    make: Callable[..., Candidate], etcd_endpoint: str
) -> None:
    release = threading.Event()
    first = make(etcd_endpoint, finish_first=release)
    await first.start()
    await until(lambda: first.record.count("elected") >= 1, "first elected")
    second = make(etcd_endpoint)
    await second.start()
    async with AsyncClient(etcd_endpoint) as observer:
        view = observer.election_view("job", namespace=second.namespace)  # type: ignore[attr-defined]
        await until_async(lambda: view.candidates(), lambda c: len(c) == 2, "second queued")
    release.set()
    await until(lambda: second.record.count("elected") == 1, "second elected")
    await until(lambda: first.record.count("lost") >= 1, "first's term recorded as over")
    # The first resigned when its work returned; its lease is still alive, so the handoff came
    # from the resign (one round trip), not from waiting out the TTL.
    async with AsyncClient(etcd_endpoint) as observer:
        assert (await observer.lease_time_to_live(first.lease_id())).ttl > 0
    assert first.record.of("lost")[0][3] == "work_done"
    ended_at = first.record.ended_at[first.record.of("lost")[0][2]]
    assert ended_at is not None and ended_at <= second.record.of("elected")[0][1]
    await first.close()


async def test_one_term_elector_returns_the_work_result(
    make: Callable[..., Candidate], etcd_endpoint: str
) -> None:
    candidate = make(etcd_endpoint, requeue=False)
    await candidate.start()
    await until(lambda: candidate.record.count("lost") == 1, "term over")
    await candidate.close()
    assert getattr(candidate, "result", None) == candidate.record.of("elected")[0][2]


async def test_close_stops_work_resigns_and_hands_over(
    make: Callable[..., Candidate], etcd_endpoint: str
) -> None:
    first = make(etcd_endpoint)
    await first.start()
    await until(lambda: first.is_leader(), "first leads")
    second = make(etcd_endpoint)
    await second.start()
    await until(lambda: second.record.count("work_start") == 0 and not second.is_leader(), "wait")
    await first.close()
    await until(lambda: second.record.count("elected") == 1, "second elected")
    stopped = first.record.of("work_stopped")[0][1]
    lost = first.record.of("lost")
    assert len(lost) == 1 and lost[0][3] == "closed"
    # The work stopped, and the term ended (Term.ended_at: a threaded work is told to stop by
    # the term's end), before the key went, so before the successor was elected; on_lost
    # itself is called after the resign (seen in CI).
    ended_at = first.record.ended_at[lost[0][2]]
    elected = second.record.of("elected")[0][1]
    assert ended_at is not None
    assert stopped <= elected and ended_at <= elected
    assert_on_lost_once_per_term(first)


async def test_work_is_stopped_before_another_candidate_is_elected(
    make: Callable[..., Candidate],
    etcd_endpoint: str,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    leader = make(proxy.endpoint)
    await leader.start()
    await until(lambda: leader.is_leader(), "leader elected")
    follower = make(etcd_endpoint)
    await follower.start()
    await until(lambda: follower.record.count("lost") == 0, "follower waiting")

    proxy.blackhole()
    await until(lambda: follower.record.count("elected") == 1, "follower takes over")
    stopped = leader.record.of("work_stopped")[0][1]
    taken_over = follower.record.of("elected")[0][1]
    assert stopped < taken_over, "old leader's work still ran when the new leader was elected"
    lost = leader.record.of("lost")
    assert len(lost) == 1 and lost[0][3] == "deadline"

    # Requeue: healed, the old leader campaigns again and wins once the follower leaves.
    proxy.heal()
    await follower.close()
    await until(lambda: leader.record.count("elected") == 2, "old leader re-elected")
    tokens = [e[2] for e in leader.record.of("elected")]
    assert tokens[1] > tokens[0] > 0
    assert_on_lost_once_per_term(follower)


async def test_elector_recovers_by_itself_after_an_etcd_outage_longer_than_the_ttl(
    make: Callable[..., Candidate], etcd_member: EtcdMember
) -> None:
    candidate = make(etcd_member.client_endpoint)
    await candidate.start()
    await until(lambda: candidate.is_leader(), "elected")
    etcd_member.stop()  # SIGSTOP: connections stay open, nothing answers
    try:
        await until(lambda: candidate.record.count("lost") == 1, "loss noticed")
        assert not candidate.is_leader()
        await asyncio.sleep(TTL)  # keep etcd down past the TTL (an outage, not a wait)
    finally:
        etcd_member.cont()
    await until(lambda: candidate.record.count("elected") == 2, "re-elected after the outage")
    assert candidate.is_leader()
    await candidate.close()
    assert_on_lost_once_per_term(candidate)


async def test_work_error_resigns_and_propagates(etcd_endpoint: str, etcd_prefix: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        lost: list[str] = []
        elector = client.elector(
            "failing",
            namespace=etcd_prefix.rstrip("/"),
            ttl=TTL,
            on_lost=lambda term, reason: lost.append(reason),
        )

        async def broken(term: Term) -> None:
            raise ValueError("bug in leader work")

        async with elector:
            with pytest.raises(ValueError, match="bug in leader work"):
                await elector.run(broken)
        assert lost == ["work_failed"]
        assert await elector.leader() is None


async def test_one_shot_elector_raises_when_the_term_is_lost(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector(
            "oneshot", namespace=etcd_prefix.rstrip("/"), ttl=TTL, requeue=False
        )

        async def work(term: Term) -> None:
            async with AsyncClient(etcd_endpoint) as other:
                await other.delete(term.key)  # someone removes our key: the term ends
            await asyncio.Event().wait()

        async with elector:
            with pytest.raises(LeadershipLost):
                await elector.run(work)


async def test_leader_change_callback_and_state_stream(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    seen: list[bytes | None] = []
    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector(
            "watched",
            namespace=etcd_prefix.rstrip("/"),
            value="me",
            ttl=TTL,
            requeue=False,
            on_leader_change=lambda leader: seen.append(leader.value if leader else None),
        )
        async with elector:
            states = elector.states()
            first = asyncio.ensure_future(states.__anext__())
            await until(lambda: seen == [None], "initial 'no leader'")
            assert await elector.run(lambda term: asyncio.sleep(0.05, result="done")) == "done"
            assert (await first).state.value == "campaigning"
            await until(lambda: seen[-1:] == [None] and b"me" in seen, "leader seen, then none")
            await states.aclose()


async def test_work_that_sees_its_loss_first_ends_the_term_and_campaigns_again(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """After a pause, the work's ``term.check()`` may see the deadline passed before the session
    has run: that is the loss of the term, not a failure of the work (issue #13)."""
    ended: list[str] = []
    elected: asyncio.Queue[int] = asyncio.Queue()
    async with AsyncClient(etcd_endpoint, timeout=2, stream_timeout=1) as client:
        elector = client.elector(
            "paused",
            namespace=etcd_prefix.rstrip("/"),
            ttl=TTL,
            backoff=(0.05, 0.5),
            on_elected=lambda term: elected.put_nowait(term.token),
            on_lost=lambda term, reason: ended.append(reason),
        )

        async def work(term: Term) -> None:
            if not ended:
                # Hold the event loop, as a pause does, until the deadline has passed: no timer
                # runs meanwhile, so the work is the first to see the term is over.
                give_up = time.monotonic() + WAIT
                while term.is_leader() and time.monotonic() < give_up:
                    time.sleep(0.01)  # noqa: ASYNC251 - blocking the loop is the point
                term.check()
            await asyncio.Event().wait()

        async with elector:
            runner = asyncio.create_task(elector.run(work))
            first = await asyncio.wait_for(elected.get(), WAIT)
            second = await asyncio.wait_for(elected.get(), WAIT)
            assert second > first
            assert ended == ["deadline"]
        assert await runner is None
    assert ended == ["deadline", "closed"]


@pytest.mark.parametrize(
    ("error", "is_the_loss"),
    [
        (RequestTimeout("etcd did not answer"), True),  # the outage that ended the term
        (ConnectionFailed("etcd is out of reach"), True),
        (PermissionDenied("role lost access"), False),  # retrying cannot cure it
        (ValueError("bug in the work"), False),
    ],
    ids=["timeout", "connection", "permission", "bug"],
)
async def test_work_failing_once_its_term_is_over(
    error: Exception, is_the_loss: bool, etcd_endpoint: str, etcd_prefix: str
) -> None:
    """Raised after the term ended (the loop held past the deadline, as in a pause): a call to
    etcd failing belongs to the loss, and the elector campaigns again; anything else is the
    work's failure, and run() raises it."""
    ended: list[str] = []
    elected: asyncio.Queue[int] = asyncio.Queue()
    async with AsyncClient(etcd_endpoint, timeout=2, stream_timeout=1) as client:
        elector = client.elector(
            "failing-late",
            namespace=etcd_prefix.rstrip("/"),
            ttl=TTL,
            backoff=(0.05, 0.5),
            on_elected=lambda term: elected.put_nowait(term.token),
            on_lost=lambda term, reason: ended.append(reason),
        )

        async def work(term: Term) -> None:
            if not ended:
                give_up = time.monotonic() + WAIT
                while term.is_leader() and time.monotonic() < give_up:
                    time.sleep(0.01)  # noqa: ASYNC251 - blocking the loop is the point
                raise error
            await asyncio.Event().wait()

        async with elector:
            runner = asyncio.create_task(elector.run(work))
            await asyncio.wait_for(elected.get(), WAIT)
            if is_the_loss:
                await asyncio.wait_for(elected.get(), WAIT)  # campaigned again, and won
                assert ended == ["deadline"]
            else:
                with pytest.raises(type(error)):
                    await asyncio.wait_for(runner, WAIT)
                assert ended == ["deadline"]  # the loss ended the term; the error still counts
        if is_the_loss:
            assert await runner is None


def test_sync_work_that_sees_its_loss_first_ends_the_term_and_campaigns_again(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """The same on the blocking API, where the work runs in the user's thread: the loop thread
    is held (as a pause holds every thread) until the deadline has passed, then both go on."""
    ended: list[str] = []
    tokens: list[int] = []
    outcome: list[Any] = []
    second_term = threading.Event()
    with Client(etcd_endpoint, timeout=2, stream_timeout=1) as client:
        loop = client.portal.loop

        def work(term: Term) -> None:
            tokens.append(term.token)
            if len(tokens) == 1:
                frozen, resume = threading.Event(), threading.Event()

                def hold_the_loop() -> None:
                    frozen.set()
                    resume.wait(WAIT)

                loop.call_soon_threadsafe(hold_the_loop)
                try:
                    assert frozen.wait(WAIT)
                    give_up = time.monotonic() + WAIT
                    while term.is_leader() and time.monotonic() < give_up:
                        time.sleep(0.01)
                finally:
                    resume.set()
                term.check()  # raises LeadershipLost: the term is over
            second_term.set()
            term.lost.wait(WAIT)

        with client.elector(
            "paused",
            namespace=etcd_prefix.rstrip("/"),
            ttl=TTL,
            backoff=(0.05, 0.5),
            on_lost=lambda term, reason: ended.append(reason),
        ) as elector:
            runner = threading.Thread(target=lambda: outcome.append(elector.run(work)))
            runner.start()
            assert second_term.wait(WAIT)
            assert tokens[1] > tokens[0]
            assert ended == ["deadline"]
            elector.close()
            runner.join(WAIT)
    assert outcome == [None]
    assert ended == ["deadline", "closed"]


def test_sync_keepalive_continues_while_the_user_thread_sleeps(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    with Client(etcd_endpoint) as client, client.session(ttl=TTL) as session:
        election = session.election("sleepy", namespace=etcd_prefix.rstrip("/"))
        term = election.campaign("sleeper", timeout=WAIT)
        time.sleep(TTL * 1.5)  # longer than the TTL, far longer than the keepalive interval
        assert session.alive and term.is_leader()
        assert client.lease_time_to_live(session.lease_id).ttl > 0
        assert election.verify()
    # Our loop thread is joined on close. (gRPC keeps process-wide poller threads of its own,
    # started lazily on first use; they are not ours to stop.)
    ours = [t.name for t in threading.enumerate() if t.name.startswith("etcd-elector")]
    assert not ours, f"threads leaked after close: {ours}"


def test_sync_campaign_timeout_cancels_and_leaves_no_key(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = etcd_prefix.rstrip("/")
    with (
        Client(etcd_endpoint) as client,
        client.session(ttl=TTL) as holder,
        client.session(ttl=TTL) as waiter,
    ):
        holder.election("busy", namespace=namespace).campaign("holder")
        waiting = waiter.election("busy", namespace=namespace)
        with pytest.raises(TimeoutError):
            waiting.campaign("waiter", timeout=0.5)
        candidates = client.election_view("busy", namespace=namespace).candidates()
        assert [c.value for c in candidates] == [b"holder"]


async def test_no_tasks_leak_after_close(etcd_endpoint: str, etcd_prefix: str) -> None:
    before = asyncio.all_tasks()
    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector(
            "tidy", namespace=etcd_prefix.rstrip("/"), ttl=TTL, on_leader_change=lambda _: None
        )
        async with elector:
            runner = asyncio.create_task(elector.run(lambda term: asyncio.Event().wait()))
            await until(elector.is_leader, "elected")
        await runner
    # gRPC's own status bookkeeping may finish a moment after the channel closed; ours may not.
    leaked = {t for t in asyncio.all_tasks() - before if "grpc" not in repr(t)}
    assert not leaked


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"ETCD_ELECTOR_IDENTITY": "given"}, "given"),
        ({"POD_NAME": "web-7f9c", "KUBERNETES_SERVICE_HOST": "x"}, "web-7f9c"),
        ({"KUBERNETES_SERVICE_HOST": "x", "HOSTNAME": "web-abc"}, "web-abc"),
    ],
)
def test_identity_default(environ: dict[str, str], expected: str) -> None:
    assert default_identity(environ) == expected


def test_identity_falls_back_to_host_and_pid() -> None:
    import os
    import socket

    assert default_identity({}) == f"{socket.gethostname()}:{os.getpid()}"
