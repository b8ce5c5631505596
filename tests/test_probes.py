"""Kubernetes probes over real HTTP: ``/live`` fails only when the event loop stops answering
(never for an etcd outage), ``/ready`` is 200 for a healthy candidate in any role and 503
while it is cut off from etcd or its loop is stuck, ``/leader`` is 200 on the leader alone."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable

import pytest
from helpers.cli_process import CliProcess
from helpers.election_kit import namespace_of
from helpers.election_kit import wait_until as until
from test_health import http_get

from etcd_elector import AsyncClient, Client, ConfigurationError, HealthServer, Term, _clock
from etcd_elector.testing import FaultProxy, free_port

pytestmark = pytest.mark.timeout(60)


def status_of(url: str) -> int:
    return http_get(url)[0]


def test_cli_probes_of_a_leader_and_a_follower(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    ports = free_port(), free_port()
    common = ("--json", "--endpoints", etcd_endpoint, "--namespace", namespace_of(etcd_prefix))
    first = cli(*common, "campaign", "probed", "--health-addr", f"127.0.0.1:{ports[0]}")
    first.expect("elected")
    second = cli(*common, "campaign", "probed", "--health-addr", f"127.0.0.1:{ports[1]}")
    second.expect("campaigning")
    leader, follower = (f"http://127.0.0.1:{port}" for port in ports)
    for base in (leader, follower):
        status, body = http_get(f"{base}/live")
        assert (status, body["live"], body["loop"]) == (200, True, "running")
        status, body = http_get(f"{base}/ready")
        assert status == 200 and body["ready"] is True, body
    assert http_get(f"{leader}/ready")[1]["elector"] == "leading"
    assert http_get(f"{follower}/ready")[1]["elector"] == "campaigning"
    assert status_of(f"{leader}/leader") == 200
    assert status_of(f"{follower}/leader") == 503

    first.signal(signal.SIGTERM)  # resigns: the follower leads at once
    second.expect("elected")
    assert status_of(f"{follower}/leader") == 200
    assert first.wait() == 128 + signal.SIGTERM
    second.signal(signal.SIGTERM)
    assert second.wait() == 128 + signal.SIGTERM


async def test_a_blocked_event_loop_fails_live_and_ready(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.elector("stuck", ttl=3, namespace=namespace_of(etcd_prefix)) as elector,
    ):
        runner = asyncio.create_task(elector.run(lambda term: asyncio.Event().wait()))
        try:
            with HealthServer(elector, "127.0.0.1:0", loop_stall=0.3) as health:
                await until(elector.is_leader, "elected")
                assert (await asyncio.to_thread(status_of, f"{health.url}/live")) == 200
                # Asked from the loop's own thread: the loop is blocked for the whole request.
                status, body = http_get(f"{health.url}/live")
                assert (status, body["live"]) == (503, False)
                assert body["loop"] == "stalled (no answer within 0.3 s)"
                status, body = http_get(f"{health.url}/ready")
                assert (status, body["ready"]) == (503, False)
                assert body["reason"] == "event loop stalled (no answer within 0.3 s)"
                # Running again: both answer 200 at once.
                assert (await asyncio.to_thread(status_of, f"{health.url}/live")) == 200
                assert (await asyncio.to_thread(status_of, f"{health.url}/ready")) == 200
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        # Not running: not a candidate any more.
        with HealthServer(elector, "127.0.0.1:0") as health:
            status, body = await asyncio.to_thread(http_get, f"{health.url}/ready")
            assert (status, body["ready"]) == (503, False)
    with pytest.raises(ConfigurationError, match="loop_stall"):
        HealthServer(elector, loop_stall=0)


async def test_cut_off_from_etcd_not_ready_but_live(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    """An etcd outage takes the replica out of the Service (ready 503) without restarting it
    (live stays 200); healed, it is ready again."""
    proxy = fault_proxy(etcd_endpoint)
    async with (
        AsyncClient(proxy.endpoint, timeout=1, connect_timeout=0.5, stream_timeout=1) as client,
        client.elector("cut", ttl=3, namespace=namespace_of(etcd_prefix)) as elector,
    ):
        runner = asyncio.create_task(elector.run(lambda term: asyncio.Event().wait()))
        try:
            with HealthServer(elector, "127.0.0.1:0") as health:
                await until(elector.is_leader, "elected")

                async def probe(path: str) -> int:
                    return await asyncio.to_thread(status_of, f"{health.url}{path}")

                assert await probe("/ready") == 200
                proxy.blackhole()
                answers: list[dict[str, object]] = []

                async def not_ready_while_leading() -> bool:
                    status, body = await asyncio.to_thread(http_get, f"{health.url}/ready")
                    answers.append(body)
                    return status == 503 and body["leader"] is True

                # Keepalives failing before the deadline: still the leader, no longer ready.
                await until(not_ready_while_leading, "/ready turns 503 while cut off")
                assert answers[-1]["reason"] == "keepalives are failing"
                assert await probe("/live") == 200
                await until(lambda: not elector.is_leader(), "the deadline passes")
                assert await probe("/leader") == 503
                assert await probe("/live") == 200
                proxy.heal()

                async def ready() -> bool:
                    return await probe("/ready") == 200

                await until(ready, "ready again after the heal")
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


def test_the_blocking_elector_is_probed_on_its_clients_loop(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    with (
        Client(etcd_endpoint) as client,
        client.elector("twin", ttl=3, namespace=namespace, requeue=False) as elector,
        HealthServer(elector, "127.0.0.1:0") as health,
    ):
        # Built outside any loop: the twin's client loop is the one probed.
        status, body = http_get(f"{health.url}/live")
        assert (status, body["loop"]) == (200, "running")
        seen: list[int] = []

        def work(term: object) -> None:
            seen.extend(status_of(f"{health.url}{path}") for path in ("/leader", "/ready"))

        elector.run(work)
        assert seen == [200, 200]
        assert status_of(f"{health.url}/leader") == 503  # resigned when the work returned


async def test_leader_follows_fifty_role_changes(etcd_endpoint: str, etcd_prefix: str) -> None:
    """Two electors hand leadership back and forth 50 times (each resigns as its work
    returns) while a thread polls both ``/leader`` endpoints: no probe that began after a
    term ended says 200, none says 200 outside a term, and each term is seen as 200. The
    delay from each change to the first probe showing it is printed (it is bounded by the
    polling interval: the answer is computed at each request)."""
    namespace = namespace_of(etcd_prefix)
    terms: dict[str, list[Term]] = {"a": [], "b": []}
    changes = 50

    def hold(who: str) -> Callable[[Term], Awaitable[None]]:
        async def work(term: Term) -> None:
            terms[who].append(term)
            await asyncio.sleep(0.15)  # then return: resign, the other one leads

        return work

    async with AsyncClient(etcd_endpoint) as client:
        electors = {
            who: client.elector("pingpong", ttl=3, namespace=namespace, value=who) for who in terms
        }
        servers = {who: HealthServer(electors[who], "127.0.0.1:0").start() for who in terms}
        probes: dict[str, list[tuple[float, float, int]]] = {who: [] for who in terms}
        stop = threading.Event()

        def poll() -> None:
            for _ in range(200_000):
                if stop.is_set():
                    return
                for who, health in servers.items():
                    started = _clock.now()
                    status = status_of(f"{health.url}/leader")
                    probes[who].append((started, _clock.now(), status))

        poller = threading.Thread(target=poll, name="leader-poller", daemon=True)
        poller.start()
        runners = [asyncio.create_task(electors[who].run(hold(who))) for who in terms]
        try:
            await until(lambda: sum(map(len, terms.values())) > changes, "50 role changes", 90)
        finally:
            for elector in electors.values():
                await elector.close()
            await asyncio.gather(*runners, return_exceptions=True)
            stop.set()
            poller.join(10)
            for health in servers.values():
                health.close()

    delays_on: list[float] = []
    delays_off: list[float] = []
    for who, held in terms.items():
        spans = [(t.elected_at, t.ended_at) for t in held if t.ended_at is not None]
        for started, finished, status in probes[who]:
            if status == 200:
                # Answered while a term held, and not asked after it ended.
                assert any(a <= finished and started <= b for a, b in spans), f"{who}: 200"
        for elected, ended in spans[:-1]:
            on = [s for s, _, status in probes[who] if status == 200 and elected <= s <= ended]
            assert on, f"{who}: a term never seen as 200"
            delays_on.append(on[0] - elected)
            off = [s for s, _, status in probes[who] if status == 503 and s >= ended]
            if off:
                delays_off.append(off[0] - ended)
    delays_on.sort()
    delays_off.sort()
    print(
        f"\n/leader after {len(delays_on)} elections and {len(delays_off)} ends: "
        f"to 200 p50 {delays_on[len(delays_on) // 2] * 1000:.1f} ms, "
        f"p99 {delays_on[int(len(delays_on) * 0.99)] * 1000:.1f} ms; "
        f"to 503 p50 {delays_off[len(delays_off) // 2] * 1000:.1f} ms, "
        f"p99 {delays_off[int(len(delays_off) * 0.99)] * 1000:.1f} ms"
    )
