"""An observer must say when it is blind: etcd killed, frozen (SIGSTOP) or blackholed behind
``observe``. Real etcd, real ``etcd-elector observe`` processes, real signals and a real TCP
fault proxy.

What must hold: an ``etcd_unreachable`` line within the documented bound (at once when etcd
refuses connections; within 1.5 x the stream timeout plus the call timeout when it goes
silent), naming when it began and the leader that may be stale; on recovery
``etcd_reachable`` and the leader re-stated, even unchanged. The library's
``observe_events()`` yields the same, and ``observe()`` stays as it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from helpers.cli_process import CliProcess
from helpers.election_kit import namespace_of

from etcd_elector import (
    AsyncClient,
    Client,
    EtcdReachable,
    EtcdUnreachable,
    LeaderInfo,
    LeaderObserved,
)
from etcd_elector._election._names import candidate_key
from etcd_elector.testing import EtcdMember, FaultProxy

pytestmark = pytest.mark.timeout(90)

Cli = Callable[..., CliProcess]
NAME = "job"
# The documented bound for a silent etcd: 1.5 x stream timeout (2 s, the default) + the call
# timeout (--timeout 2 here). A refused connection is reported at once, well within it.
CALL_TIMEOUT = 2.0
BOUND = 1.5 * 2.0 + CALL_TIMEOUT
SLACK = 3.0  # process start-up and scheduling on a loaded machine, never part of the bound


def make_leader(endpoint: str, prefix: str) -> int:
    """A candidate key on a long lease (no keepalive needed through the outage): the leader
    every observer should name. Returns its token."""

    async def write() -> int:
        async with AsyncClient(endpoint) as client:
            lease = await client.lease_grant(120)
            key = candidate_key(namespace_of(prefix), NAME, lease.id)
            return (await client.put(key, "the-leader", lease=lease.id)).revision

    return asyncio.run(write())


def observe(cli: Cli, endpoint: str, prefix: str) -> CliProcess:
    return cli(
        "--json",
        "--endpoints",
        endpoint,
        "--namespace",
        namespace_of(prefix),
        "--timeout",
        str(CALL_TIMEOUT),
        "observe",
        NAME,
    )


def blind_then_restated(
    observer: CliProcess, token: int, fault: Callable[[], None], heal: Callable[[], None]
) -> None:
    observer.expect("leader", where=lambda e: e["token"] == token)
    fault_at = time.time()
    fault()
    blind = observer.expect("etcd_unreachable", timeout=BOUND + SLACK)
    assert blind["time"] - fault_at <= BOUND + SLACK
    assert blind["since"] >= fault_at - 0.5
    assert blind["stale"] is True and blind["token"] == token  # the leader that may be stale
    assert blind["value"] == "the-leader"
    assert blind["error"]
    heal()
    back = observer.expect("etcd_reachable", timeout=30)
    assert back["since"] == pytest.approx(blind["since"], abs=0.01)  # the same outage
    assert back["outage_seconds"] > 0
    again = observer.expect("leader", timeout=30)
    assert again["token"] == token and again["restated"] is True
    assert observer.proc.poll() is None


def test_observe_says_when_etcd_is_killed_and_restates_the_leader(
    etcd_member: EtcdMember, etcd_prefix: str, cli: Cli
) -> None:
    token = make_leader(etcd_member.client_endpoint, etcd_prefix)
    observer = observe(cli, etcd_member.client_endpoint, etcd_prefix)
    blind_then_restated(observer, token, etcd_member.kill, etcd_member.restart)


def test_observe_says_when_etcd_is_frozen_and_restates_the_leader(
    etcd_member: EtcdMember, etcd_prefix: str, cli: Cli
) -> None:
    token = make_leader(etcd_member.client_endpoint, etcd_prefix)
    observer = observe(cli, etcd_member.client_endpoint, etcd_prefix)
    blind_then_restated(observer, token, etcd_member.stop, etcd_member.cont)


def test_observe_says_when_etcd_is_blackholed_and_restates_the_leader(
    etcd_endpoint: str,
    etcd_prefix: str,
    cli: Cli,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    token = make_leader(etcd_endpoint, etcd_prefix)
    proxy = fault_proxy(etcd_endpoint)
    observer = observe(cli, proxy.endpoint, etcd_prefix)
    blind_then_restated(observer, token, proxy.blackhole, proxy.heal)


def test_observe_text_lines_say_since_when_and_that_the_leader_may_be_stale(
    etcd_member: EtcdMember, etcd_prefix: str
) -> None:
    token = make_leader(etcd_member.client_endpoint, etcd_prefix)
    observer = TextObserver(etcd_member.client_endpoint, etcd_prefix)
    try:
        observer.wait_for(f"token={token}")
        etcd_member.kill()
        line = observer.wait_for("etcd_unreachable", BOUND + SLACK)
        assert "cannot reach etcd since" in line
        assert f"the last leader seen, the-leader (token {token}), may be stale" in line
        etcd_member.restart()
        assert "etcd answers again after" in observer.wait_for("etcd_reachable", 30)
        restated = observer.wait_for("restated=True", 30)
        assert f"token={token}" in restated
    finally:
        observer.close()


class TextObserver(CliProcess):
    """``observe`` without ``--json``: its stdout lines, for people."""

    def __init__(self, endpoint: str, prefix: str) -> None:
        self.lines: list[str] = []
        super().__init__(
            "--endpoints",
            endpoint,
            "--namespace",
            namespace_of(prefix),
            "--timeout",
            str(CALL_TIMEOUT),
            "observe",
            NAME,
        )

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if text in line:
                    return line
            seen = len(self.lines)
            time.sleep(0.02)
        raise AssertionError(f"no line with {text!r} within {timeout} s: {self.lines}")


# -- the library ---------------------------------------------------------------------------------


@pytest.fixture
def leader_token(etcd_member: EtcdMember, etcd_prefix: str) -> int:
    return make_leader(etcd_member.client_endpoint, etcd_prefix)


async def test_observe_events_reports_the_outage_and_observe_stays_quiet(
    etcd_member: EtcdMember, etcd_prefix: str, leader_token: int
) -> None:
    async with AsyncClient(
        etcd_member.client_endpoint, timeout=CALL_TIMEOUT, connect_timeout=0.5
    ) as client:
        view = client.election_view(NAME, namespace=namespace_of(etcd_prefix))
        events: list[object] = []
        leaders: list[LeaderInfo | None] = []
        changed = asyncio.Event()

        async def collect_events() -> None:
            async for event in view.observe_events():
                events.append(event)
                changed.set()

        async def collect_leaders() -> None:
            async for leader in view.observe():
                leaders.append(leader)
                changed.set()

        async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
            async with asyncio.timeout(timeout):
                while not condition():
                    changed.clear()
                    await changed.wait()

        tasks = [asyncio.ensure_future(collect_events()), asyncio.ensure_future(collect_leaders())]
        try:
            await until(lambda: len(events) == 1 and len(leaders) == 1)
            await asyncio.to_thread(etcd_member.kill)
            await until(lambda: any(isinstance(e, EtcdUnreachable) for e in events), BOUND + SLACK)
            await asyncio.to_thread(etcd_member.restart)
            await until(lambda: len(events) == 4)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    first, blind, back, again = events
    assert isinstance(first, LeaderObserved) and first.leader is not None
    assert first.leader.token == leader_token and not first.restated
    assert isinstance(blind, EtcdUnreachable) and blind.last_leader == first.leader
    assert isinstance(back, EtcdReachable) and back.since == blind.since and back.outage > 0
    assert again == LeaderObserved(first.leader, restated=True)
    assert leaders == [first.leader]  # observe() only reports changes, as it always did


def test_the_blocking_twin_yields_the_same_events(
    etcd_member: EtcdMember, etcd_prefix: str, leader_token: int
) -> None:
    with Client(etcd_member.client_endpoint, timeout=CALL_TIMEOUT) as client:
        view = client.election_view(NAME, namespace=namespace_of(etcd_prefix))
        events = view.observe_events(timeout=30)
        first = next(events)
        assert isinstance(first, LeaderObserved) and first.leader is not None
        assert first.leader.token == leader_token
        etcd_member.kill()
        assert isinstance(next(events), EtcdUnreachable)
        etcd_member.restart()
        assert isinstance(next(events), EtcdReachable)
        assert next(events) == LeaderObserved(first.leader, restated=True)
        events.close()
