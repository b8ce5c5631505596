"""Metrics: values after a scripted run against real etcd, scraped over HTTP from the health
endpoint and parsed as Prometheus text; a failing sink never breaks the library; without
prometheus-client everything is a no-op."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, namespace_of, wait_until
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    FencedResult,
    HealthServer,
    MetricsSink,
    NoopMetrics,
    NotLeader,
    Op,
    PrometheusMetrics,
    Term,
    TransportError,
    WatchCompacted,
    get_metrics,
    set_metrics,
)
from etcd_elector._metrics import METHODS, _Guarded
from etcd_elector.etcd._txn import Compare
from etcd_elector.testing import EtcdMember, FaultProxy

ProxyFactory = Callable[[str], FaultProxy]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    """A fresh registry, with a Prometheus sink on it installed for this test only."""
    fresh = CollectorRegistry()
    previous = set_metrics(PrometheusMetrics(fresh))
    yield fresh
    set_metrics(previous)


def fast_client(endpoint: str) -> AsyncClient:
    return AsyncClient(endpoint, timeout=2, connect_timeout=0.5, stream_timeout=1)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


async def scrape(health: HealthServer) -> Samples:
    status, text = await asyncio.to_thread(http_get, f"{health.url}/metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; a series never created counts as 0."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_after_elected_lost_by_blackhole_reelected_and_resigned(
    registry: CollectorRegistry,
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: ProxyFactory,
) -> None:
    name = "metered"
    fenced = f"{etcd_prefix}fenced"
    proxy = fault_proxy(etcd_endpoint)
    terms: list[Term] = []

    async def hold(term: Term) -> None:
        terms.append(term)
        await asyncio.Event().wait()

    async with (
        fast_client(proxy.endpoint) as client,
        client.elector(name, ttl=2, namespace=namespace_of(etcd_prefix), value="m1") as elector,
    ):
        with HealthServer(elector, "127.0.0.1:0", registry=registry) as health:
            runner = asyncio.create_task(elector.run(hold))
            try:
                await wait_until(elector.is_leader, "elected the first time", WAIT_S)
                first = elector.election
                assert first is not None
                assert (await first.txn([], [Op.put(fenced, "1")])).succeeded
                assert not (await first.txn([Compare.value(fenced) == b"x"], [])).succeeded
                session = first.session
                # At least one renewal before the fault, so the keepalive histograms have data.
                samples = await scrape(health)
                while value(samples, "etcd_elector_keepalive_rtt_seconds_count") < 1:
                    await asyncio.sleep(session.keepalive_interval / 2)
                    samples = await scrape(health)
                assert value(samples, "etcd_elector_is_leader", election=name) == 1
                assert value(samples, "etcd_elector_terms_started_total", election=name) == 1

                proxy.blackhole()
                assert await asyncio.wait_for(first.wait_lost(), WAIT_S) == "deadline"
                with pytest.raises(NotLeader):  # a stale leader's write is fenced off
                    await first.txn([], [Op.put(fenced, "stale")])
                samples = await scrape(health)
                assert value(samples, "etcd_elector_is_leader", election=name) == 0
                proxy.heal()
                await wait_until(lambda: len(terms) == 2, "elected again after the heal", WAIT_S)
                assert terms[1].token > terms[0].token
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)  # resigns
            samples = await scrape(health)

    def counter(metric: str, **labels: str) -> float:
        return value(samples, metric, **labels)

    assert counter("etcd_elector_is_leader", election=name) == 0
    assert counter("etcd_elector_campaigns_started_total", election=name) >= 2
    assert counter("etcd_elector_terms_started_total", election=name) == 2
    assert counter("etcd_elector_terms_ended_total", election=name, reason="deadline") == 1
    assert counter("etcd_elector_terms_ended_total", election=name, reason="resigned") == 1
    assert counter("etcd_elector_leadership_duration_seconds_count", election=name) == 2
    assert counter("etcd_elector_leadership_duration_seconds_sum", election=name) > 0
    assert counter("etcd_elector_campaign_wait_seconds_count", election=name) == 2
    for result, count in [
        (FencedResult.COMMITTED, 1),
        (FencedResult.COMPARE_FAILED, 1),
        (FencedResult.REFUSED, 1),
    ]:
        assert counter("etcd_elector_fenced_txns_total", election=name, result=result) == count
    assert counter("etcd_elector_keepalive_rtt_seconds_count") >= 1
    margins = counter("etcd_elector_lease_margin_seconds_count")
    assert margins >= 1
    # Renewals arrive with time to spare: well inside (0, granted TTL).
    assert 0 < counter("etcd_elector_lease_margin_seconds_sum") / margins < 2
    assert counter("etcd_elector_keepalive_failures_total") >= 1
    assert counter("etcd_elector_sessions_started_total") >= 2
    assert counter("etcd_elector_sessions_ended_total", reason="deadline") == 1
    assert counter("etcd_elector_sessions_ended_total", reason="closed") >= 1


async def test_watch_reconnects_and_compactions_are_counted(
    registry: CollectorRegistry, etcd_member: EtcdMember, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_member.client_endpoint)
    metrics = get_metrics()
    assert isinstance(metrics, PrometheusMetrics)
    async with fast_client(proxy.endpoint) as client:
        first = await client.put("/w/key", "1")
        await client.put("/w/key", "2")
        async with client.watch("/w/key") as watch:
            proxy.drop()
            with pytest.raises(TransportError):
                await asyncio.wait_for(watch.__anext__(), WAIT_S)
        assert registry.get_sample_value("etcd_elector_watch_reconnects_total") == 0
        async with client.watch("/w/key"):  # a new stream: one reconnect
            assert registry.get_sample_value("etcd_elector_watch_reconnects_total") == 1
        latest = await client.put("/w/key", "3")
        await client.compact(latest.revision)
        with pytest.raises(WatchCompacted):
            async with client.watch("/w/key", start_revision=first.revision) as old:
                await asyncio.wait_for(old.__anext__(), WAIT_S)
    assert registry.get_sample_value("etcd_elector_watch_compactions_total") == 1


class Exploding(NoopMetrics):
    def __init__(self) -> None:
        self.calls = 0

    def term_started(self, election: str) -> None:
        self.calls += 1
        raise RuntimeError("sink is broken")

    def keepalive(self, rtt_seconds: float, margin_left_seconds: float) -> None:
        self.calls += 1
        raise RuntimeError("sink is broken")


async def test_a_failing_sink_never_breaks_the_election(
    etcd_endpoint: str, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Exploding()
    previous = set_metrics(sink)
    caplog.set_level(logging.DEBUG, logger="etcd_elector._metrics")
    try:
        async with (
            AsyncClient(etcd_endpoint) as client,
            client.session(ttl=2) as session,
        ):
            election = AsyncElection(session, "fragile", namespace=namespace_of(etcd_prefix))
            await election.campaign("x")
            assert election.is_leader()
            renewed = sink.calls
            await wait_until(lambda: sink.calls >= renewed + 2, "renewals go on", WAIT_S)
            assert session.alive
            await election.resign()
    finally:
        assert set_metrics(previous) is sink
    failures = [r for r in caplog.records if r.name == "etcd_elector._metrics"]
    warnings = [r for r in failures if r.levelno == logging.WARNING]
    # Once per failing method at WARNING, then quietly.
    assert sorted(str(r.args[1]) for r in warnings if isinstance(r.args, tuple)) == [
        "keepalive",
        "term_started",
    ]
    assert len(failures) >= 3


def test_without_prometheus_client_metrics_are_a_no_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import now fails
    with pytest.raises(ImportError, match=r"etcd-elector\[metrics\]"):
        PrometheusMetrics()
    assert type(get_metrics()) is NoopMetrics

    election = AsyncElection(AsyncClient("127.0.0.1:1").session(ttl=2), "none")
    with HealthServer(election) as health:
        status, text = http_get(f"{health.url}/metrics")
    assert status == 404
    assert "pip install 'etcd-elector[metrics]'" in text
    assert len(text.splitlines()) == 1


async def test_the_documented_custom_sink_counts_terms(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "observability.md").read_text()
    after_marker = doc.split("<!-- tested: tests/test_metrics.py runs this block -->", 1)[1]
    code = after_marker.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/observability.md", "exec"), namespace)
    counting = namespace["counting"]
    terms: dict[str, int] = counting.terms
    try:
        assert get_metrics() is counting
        async with AsyncClient(etcd_endpoint) as client, client.session(ttl=2) as session:
            election = AsyncElection(session, "documented", namespace=namespace_of(etcd_prefix))
            await election.campaign("d")
            await election.resign()
        assert terms == {"documented": 1}
    finally:
        set_metrics(namespace.get("previous"))


class Recorder:
    """A sink that implements every method by hand, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, method: str) -> Callable[..., None]:
        if method not in METHODS:
            raise AttributeError(method)
        return lambda *args: self.calls.append((method, args))


def test_the_interface_is_written_once_and_every_sink_implements_all_of_it() -> None:
    """``MetricsSink`` is the one definition: ``NoopMetrics`` inherits it, and the guard the
    library puts around an installed sink forwards every method of it, arguments and all."""
    assert METHODS and set(METHODS) <= set(dir(MetricsSink))
    for implementation in (NoopMetrics, PrometheusMetrics, _Guarded):
        for method in METHODS:
            ours = inspect.signature(getattr(implementation, method))
            assert ours == inspect.signature(getattr(MetricsSink, method)), (implementation, method)
    assert isinstance(NoopMetrics(), MetricsSink)
    NoopMetrics().term_ended("e", "resigned", 1.0)  # does nothing, and is callable

    recorder = Recorder()
    guarded = _Guarded(recorder)
    expected = []
    for number, method in enumerate(METHODS):
        arity = len(inspect.signature(getattr(MetricsSink, method)).parameters) - 1
        args = tuple(f"{method}-{number}-{i}" for i in range(arity))
        getattr(guarded, method)(*args)
        expected.append((method, args))
    assert recorder.calls == expected
