"""The health endpoint against real etcd: ``/leader`` follows leadership, flipping to 503 on a
loss no later than one renewal interval after the session's loss signal; ``/healthz`` turns
503 for a leader whose keepalives stop; the CLI serves both with ``--health-addr``."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from helpers.cli_process import CliProcess, run_cli
from helpers.election_kit import WAIT_S, namespace_of
from helpers.election_kit import wait_until as until
from prometheus_client.parser import text_string_to_metric_families

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    Client,
    ConfigurationError,
    HealthServer,
    SessionState,
    _clock,
)
from etcd_elector._health import parse_address
from etcd_elector.testing import FaultProxy, free_port

ProxyFactory = Callable[[str], FaultProxy]

pytestmark = pytest.mark.timeout(60)


def http_get(url: str) -> tuple[int, Any]:
    """(status, body): JSON bodies decoded, others as text."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status, raw, kind = (
                response.status,
                response.read(),
                response.headers.get_content_type(),
            )
    except urllib.error.HTTPError as error:
        with error:
            status, raw, kind = error.code, error.read(), error.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


@dataclass(frozen=True)
class Probe:
    started: float
    ended: float
    status: int
    body: Any


class Poller:
    """Polls a URL from a thread, as a load balancer would, recording every answer."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url = url
        self.interval = interval
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-poller", daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = _clock.now()
            status, body = http_get(self.url)
            self.probes.append(Probe(started, _clock.now(), status, body))
            self._stop.wait(self.interval)


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("127.0.0.1", ":80", "host:port", "127.0.0.1:70000", ""):
        with pytest.raises(ConfigurationError, match="HOST:PORT"):
            parse_address(bad)


async def test_leader_flips_within_one_renewal_of_a_loss_and_healthz_turns_503(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    async with (
        AsyncClient(proxy.endpoint, timeout=2, connect_timeout=0.5, stream_timeout=1) as client,
        client.session(ttl=3) as session,
    ):
        election = AsyncElection(session, "probed", namespace=namespace_of(etcd_prefix))
        with HealthServer(election, "127.0.0.1:0") as health:
            assert health.address[1] > 0
            status, body = await asyncio.to_thread(http_get, f"{health.url}/leader")
            assert (status, body["leader"]) == (503, False)  # a candidate, not yet the leader
            status, body = await asyncio.to_thread(http_get, f"{health.url}/healthz")
            assert (status, body["healthy"], body["session"]) == (200, True, "alive")

            term = await election.campaign("probed-1")
            status, body = await asyncio.to_thread(http_get, f"{health.url}/leader")
            assert status == 200
            assert body == {
                "election": "probed",
                "leader": True,
                "key": term.key,
                "lease": term.lease_hex,
                "token": term.token,
                "remaining": body["remaining"],
            }
            assert 0 < body["remaining"] <= session.ttl

            with Poller(f"{health.url}/leader") as leader_probes:
                await until(lambda: len(leader_probes.probes) >= 3, "the poller runs")
                proxy.blackhole()
                reason = await asyncio.wait_for(session.wait_lost(), WAIT_S)
                lost_at = _clock.now()
                await until(
                    lambda: any(p.started > lost_at for p in leader_probes.probes),
                    "a probe after the loss",
                )
            assert reason == "deadline"
            probes = leader_probes.probes
            assert probes[0].status == 200
            # Ordering: nothing that asked after the loss signal was told "leader".
            assert all(p.status == 503 for p in probes if p.started >= lost_at)
            # Bound: the flip was seen within one renewal interval of the loss signal (it is
            # computed from the deadline, so in practice it comes first).
            first_503 = next(p for p in probes if p.status == 503)
            assert first_503.ended <= lost_at + session.keepalive_interval
            assert all(p.status == 200 for p in probes if p.ended < first_503.started)

            status, body = await asyncio.to_thread(http_get, f"{health.url}/healthz")
            assert status == 503 and body["healthy"] is False
            assert body["session"] == SessionState.LOST.value
            assert body["reason"] == "session lost (deadline)"
            proxy.heal()


async def test_healthz_turns_503_while_a_leaders_keepalives_fail(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    """An elector's leader whose connection is blackholed: /healthz goes 503 while it still
    leads (keepalives failing), stays 503 once the deadline passed, and is 200 again once a
    session is alive after the heal."""
    proxy = fault_proxy(etcd_endpoint)
    async with (
        AsyncClient(proxy.endpoint, timeout=2, connect_timeout=0.5, stream_timeout=1) as client,
        client.elector("steady", ttl=3, namespace=namespace_of(etcd_prefix)) as elector,
    ):
        runner = asyncio.create_task(elector.run(lambda term: asyncio.Event().wait()))
        try:
            with HealthServer(elector, "127.0.0.1:0") as health:
                await until(elector.is_leader, "elected")
                status, body = await asyncio.to_thread(http_get, f"{health.url}/healthz")
                assert status == 200 and body["elector"] == "leading" and body["leader"]
                with Poller(f"{health.url}/healthz") as probes:
                    proxy.blackhole()
                    await until(
                        lambda: any(not p.body["leader"] for p in probes.probes),
                        "the leader's deadline passes",
                    )
                assert probes.probes[0].status == 200
                failing = [p for p in probes.probes if p.status == 503 and p.body["leader"]]
                assert failing, "no 503 while the leader's keepalives were failing"
                assert failing[0].body["reason"] == "keepalives are failing"
                assert failing[0].body["session"] == SessionState.UNCERTAIN.value
                assert all(p.status == 503 for p in probes.probes if p.started > failing[0].ended)

                proxy.heal()

                async def healthy() -> bool:
                    status, _ = await asyncio.to_thread(http_get, f"{health.url}/healthz")
                    return status == 200

                await until(healthy, "/healthz is 200 again after the heal")
                await until(elector.is_leader, "leads again after the heal")
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


# -- the command line ---------------------------------------------------------------------------


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_cli_campaign_serves_leader_healthz_and_metrics(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    candidate = cli(
        "--json",
        "--endpoints",
        etcd_endpoint,
        "--namespace",
        etcd_prefix.rstrip("/"),
        "campaign",
        "served",
        "--health-addr",
        f"127.0.0.1:{port}",
    )
    elected = candidate.expect("elected")
    status, body = http_get(f"{base}/leader")
    assert status == 200, body
    assert (body["token"], body["lease"]) == (elected["token"], elected["lease"])
    status, body = http_get(f"{base}/healthz")
    assert status == 200 and body["healthy"] and body["elector"] == "leading"
    status, text = http_get(f"{base}/metrics")
    assert status == 200
    assert _sample(text, "etcd_elector_is_leader", election="served") == 1
    assert _sample(text, "etcd_elector_terms_started_total", election="served") == 1
    status, text = http_get(f"{base}/nothing")
    assert status == 404
    candidate.signal(signal.SIGTERM)
    candidate.expect("resigned")
    assert candidate.wait() == 128 + signal.SIGTERM
    with pytest.raises(urllib.error.URLError):
        http_get(f"{base}/leader")  # the port is closed with the process


def test_cli_run_takes_the_health_address_from_the_environment(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    port = free_port()
    supervisor = cli(
        "--json",
        "--endpoints",
        etcd_endpoint,
        "--namespace",
        etcd_prefix.rstrip("/"),
        "run",
        "served-run",
        "--",
        "sleep",
        "30",
        env={"ETCD_ELECTOR_HEALTH_ADDR": f"127.0.0.1:{port}"},
    )
    supervisor.expect("child_started")
    status, body = http_get(f"http://127.0.0.1:{port}/leader")
    assert status == 200 and body["leader"] and body["election"] == "served-run"
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait() == 128 + signal.SIGTERM


def test_cli_refuses_a_bad_health_address(etcd_endpoint: str) -> None:
    bad = run_cli("--endpoints", etcd_endpoint, "campaign", "x", "--health-addr", "nowhere")
    assert bad.returncode == 4
    assert bad.stderr.startswith("etcd-elector: error: --health-addr: expected HOST:PORT")
    from_env = run_cli(
        "--endpoints", etcd_endpoint, "campaign", "x", env={"ETCD_ELECTOR_HEALTH_ADDR": "1:2:x"}
    )
    assert from_env.returncode == 4 and "ETCD_ELECTOR_HEALTH_ADDR" in from_env.stderr


def test_the_blocking_twins_are_served_too(etcd_endpoint: str, etcd_prefix: str) -> None:
    with (
        Client(etcd_endpoint) as client,
        client.session(ttl=2) as session,
    ):
        election = session.election("twin", namespace=namespace_of(etcd_prefix))
        with HealthServer(election) as health:
            assert http_get(f"{health.url}/leader")[0] == 503
            term = election.campaign("t")
            status, body = http_get(f"{health.url}/leader")
            assert status == 200 and body["token"] == term.token
            election.resign()
            assert http_get(f"{health.url}/leader")[0] == 503
            assert http_get(f"{health.url}/healthz")[0] == 200
    with pytest.raises(TypeError, match="elector or an election"):
        HealthServer(session, "127.0.0.1:0")  # type: ignore[arg-type]
