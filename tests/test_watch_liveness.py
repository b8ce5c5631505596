"""A silent watch stream is found without costing etcd a probe a second: while a session's lease
keepalives are answered on the same connection, the watch stream sends etcd nothing of its own,
and a connection that goes silent is still found by the keepalive's deadline, within the bound
docs/failure-modes.md states. Real etcd, its own /metrics as the judge, a real TCP fault proxy.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable

import pytest
from helpers.cli_process import CliProcess
from helpers.election_kit import namespace_of, wait_until
from helpers.watch_kit import drain_until_error

from etcd_elector import AsyncClient, TransportError, _clock
from etcd_elector.testing import EtcdMember, FaultProxy

pytestmark = pytest.mark.timeout(60)

ProxyFactory = Callable[[str], FaultProxy]
Cli = Callable[..., CliProcess]

STREAM_TIMEOUT_S = 1.0
KEEPALIVE_INTERVAL_S = 0.5
KEEPALIVES_WATCHED = 8  # answered keepalives in the idle window: ~4 s, ~12 probes before
# The documented bound for a client with a session: the keepalive interval plus the stream
# timeout (a probe-less stream is found by the keepalive's deadline).
BOUND_S = KEEPALIVE_INTERVAL_S + STREAM_TIMEOUT_S
SLACK_S = 3.0  # scheduling on a loaded machine, never part of the bound

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _received(member: EtcdMember, method: str) -> float:
    """gRPC messages etcd received for ``method`` (``grpc_server_msg_received_total``)."""
    with _HTTP.open(f"{member.client_url}/metrics", timeout=5.0) as answer:
        text = answer.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("grpc_server_msg_received_total{") and f'grpc_method="{method}"' in line:
            total += float(line.split()[-1])
    return total


async def received(member: EtcdMember, method: str) -> float:
    return await asyncio.to_thread(_received, member, method)


def _vouched(client: AsyncClient) -> bool:
    transport = client._transport
    return any(transport.vouched(e, _clock.now()) for e in client.config.endpoints)


async def test_an_idle_waiting_candidate_sends_no_watch_probes_while_its_keepalives_answer(
    etcd_member: EtcdMember, etcd_prefix: str
) -> None:
    async with (
        AsyncClient(etcd_member.client_endpoint, timeout=2, stream_timeout=STREAM_TIMEOUT_S) as c,
        c.session(ttl=5, keepalive_interval=KEEPALIVE_INTERVAL_S),
        c.watch(etcd_prefix + "predecessor") as watch,
    ):
        await wait_until(lambda: _vouched(c), "the keepalives vouch for the connection")
        watch_before = await received(etcd_member, "Watch")
        keepalives_before = await received(etcd_member, "LeaseKeepAlive")
        more = keepalives_before + KEEPALIVES_WATCHED
        await wait_until(
            lambda: _at_least(etcd_member, "LeaseKeepAlive", more),
            f"{KEEPALIVES_WATCHED} more keepalives",
        )
        # Silent for several stream timeouts, yet not one probe: the keepalives vouched.
        assert await received(etcd_member, "Watch") == watch_before
        await c.put(etcd_prefix + "predecessor", "still watched")
        batch = await anext(watch)
        assert [e.kv.value for e in batch.events] == [b"still watched"]


async def test_idle_campaign_processes_cost_etcd_their_keepalives_alone(
    etcd_member: EtcdMember, etcd_prefix: str, cli: Cli
) -> None:
    """The command line as users run it: a leader and a waiting candidate, each watching a key
    (its own, its predecessor's), send etcd keepalives and not one watch probe, from the
    start. TTL 3 s: a keepalive every second, the stream timeout's default 2 s; before, each
    watch stream was probed after 1 s of silence."""
    args = ["--json", "--endpoints", etcd_member.client_endpoint, "--ttl", "3"]
    args += ["--namespace", namespace_of(etcd_prefix)]
    leader = cli(*args, "campaign", "idle", "--value", "leader")
    leader.expect("elected")
    waiting = cli(*args, "campaign", "idle", "--value", "waiting")
    waiting.expect("campaigning")
    await wait_until(
        lambda: _at_least(etcd_member, "Watch", 5),
        "the watches created: the leader's on its key, the waiting one's on both keys, and "
        "each one's on the election's planned moves",
    )
    watch_before = await received(etcd_member, "Watch")
    more = await received(etcd_member, "LeaseKeepAlive") + 2 * 5
    await wait_until(lambda: _at_least(etcd_member, "LeaseKeepAlive", more), "5 s of keepalives")
    assert await received(etcd_member, "Watch") == watch_before
    leader.signal()
    waiting.expect("elected")  # the waiting candidate's watch still worked


async def test_a_probe_less_watch_stream_that_goes_silent_is_still_found_in_time(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    async with (
        AsyncClient(proxy.endpoint, timeout=2, stream_timeout=STREAM_TIMEOUT_S) as c,
        c.session(ttl=5, keepalive_interval=KEEPALIVE_INTERVAL_S),
        c.watch(etcd_prefix + "predecessor") as watch,
    ):
        await wait_until(lambda: _vouched(c), "the keepalives vouch for the connection")
        proxy.blackhole()
        started = time.monotonic()
        error = await drain_until_error(watch, BOUND_S + SLACK_S + 5)
        elapsed = time.monotonic() - started
    assert isinstance(error, TransportError), error
    assert elapsed <= BOUND_S + SLACK_S, elapsed


async def _at_least(member: EtcdMember, method: str, count: float) -> bool:
    return await received(member, method) >= count
