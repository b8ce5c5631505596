"""systemd ``Type=notify``, against a real ``NOTIFY_SOCKET`` listener (a unix datagram socket
bound by the test, as systemd binds one): ``READY=1`` once campaigning, ``WATCHDOG=1`` only
while the loop runs and, while leading, only while a kill one ``WatchdogSec`` after the last
ping would still come before etcd can expire the lease; a leader whose loop is blocked, or
whose process is frozen with SIGSTOP, stops pinging; a healthy leader cut off from etcd keeps
pinging often enough that systemd never fires.

(``systemd-run --user`` cannot run here: there is no user service manager to talk to, so the
listener stands in for systemd's side of the socket, and the kill itself is systemd's.)"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import time
from collections.abc import Callable

import pytest
from helpers.cli_process import CliProcess, run_cli
from helpers.cli_process import wait_until as wait_until_sync
from helpers.election_kit import WAIT_S, namespace_of
from helpers.election_kit import wait_until as until
from helpers.notify_socket import NotifyListener

from etcd_elector import AsyncClient, Client, ConfigurationError, SystemdNotifier, _clock
from etcd_elector._systemd import watchdog_hint, watchdog_seconds
from etcd_elector.testing import FaultProxy

pytestmark = pytest.mark.timeout(90)


class RecordingNotifier(SystemdNotifier):
    """Keeps when each message was sent (the listener keeps when it arrived)."""

    sent: list[tuple[float, str]]

    def send(self, message: str) -> bool:
        if not hasattr(self, "sent"):
            self.sent = []
        self.sent.append((_clock.now(), message))
        return super().send(message)

    def pings_sent(self) -> list[float]:
        return [at for at, message in getattr(self, "sent", []) if message == "WATCHDOG=1"]


def test_the_watchdog_interval_comes_from_the_environment() -> None:
    assert watchdog_seconds({}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "1500000"}) == 1.5
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_seconds(mine) == 2.0
    # Set by systemd for another process (our parent): not ours to answer.
    assert watchdog_seconds({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    for bad in ("0", "-5", "1.5", "soon"):
        with pytest.raises(ConfigurationError, match="WATCHDOG_USEC"):
            watchdog_seconds({"WATCHDOG_USEC": bad})


def test_check_config_suggests_a_watchdog_sec() -> None:
    for ttl, interval, suggested, gapless in (
        (10, 10 / 3, 3, 6.667),
        (3, 1, 1, 2),
        (2, 2 / 3, 0.6, 1.333),
    ):
        hint, limit = watchdog_hint(ttl, interval)
        assert hint == suggested and abs(limit - gapless) < 1e-3
    done = run_cli("--ttl", "10", "check-config")
    assert done.returncode == 0
    assert "  systemd WatchdogSec   3 s (a leader pings without gaps up to 6.67 s" in done.stdout
    as_json = run_cli("--json", "--ttl", "30", "check-config")
    assert json.loads(as_json.stdout)["watchdog_sec"] == 10


async def test_without_notify_socket_nothing_is_sent(etcd_endpoint: str, etcd_prefix: str) -> None:
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.elector("quiet", ttl=3, namespace=namespace_of(etcd_prefix)) as elector,
    ):
        notifier = RecordingNotifier(elector, environ={"WATCHDOG_USEC": "1000000"})
        assert not notifier.enabled
        async with notifier:
            assert notifier.send("READY=1") is False
    with pytest.raises(ConfigurationError, match="vsock"):
        SystemdNotifier(elector, socket_path="vsock:2:1234")
    with pytest.raises(ConfigurationError, match="watchdog"):
        SystemdNotifier(elector, socket_path="/run/x", watchdog=0)


async def test_a_blocked_leader_loop_stops_pinging_before_its_lease_could_lapse(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """WatchdogSec 2.4 s with a 3 s TTL: a leader may ping only in the first 0.6 s after
    each renewal. The loop is blocked late in a renewal interval (where a leader that pinged
    whenever its loop ran would have pinged just before): systemd's kill, one WatchdogSec
    after the last ping, still comes before the deadline plus the margin, before which etcd
    cannot expire the lease."""
    watchdog = 2.4
    with NotifyListener() as listener:
        async with (
            AsyncClient(etcd_endpoint) as client,
            client.elector("blocked", ttl=3, namespace=namespace_of(etcd_prefix)) as elector,
        ):
            notifier = RecordingNotifier(elector, socket_path=listener.path, watchdog=watchdog)
            runner = asyncio.create_task(elector.run(lambda term: asyncio.Event().wait()))
            try:
                async with notifier:
                    await until(elector.is_leader, "elected")
                    session = elector.session
                    assert session is not None and session.margin == 0.5
                    await until(lambda: len(notifier.pings_sent()) >= 3, "pings while leading")
                    await until(
                        lambda: session.remaining() < 1.6, "late in a renewal", interval=0.005
                    )
                    blocked_at, deadline = _clock.now(), session.deadline
                    time.sleep(watchdog + 0.5)  # noqa: ASYNC251  (blocks the loop: no ping, no renewal)
                    last = max(at for at in notifier.pings_sent() if at <= blocked_at)
                    assert not [at for at in notifier.pings_sent() if at > blocked_at]
                    assert last + watchdog <= deadline + session.margin
                    # A loop that runs again pings again (as a candidate, its term over).
                    count = len(notifier.pings_sent())
                    await until(lambda: len(notifier.pings_sent()) > count, "pings again")
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
        listener.wait_for(lambda got: bool(listener.with_field("STOPPING")), 5, "STOPPING=1")
    sent = [message for _, message in notifier.sent]
    received = [n.text for n in listener.received]
    assert received == sent  # every message went through the real socket, in order
    ready = [message for message in sent if message.startswith("READY=1")]
    assert len(ready) == 1 and f"MAINPID={os.getpid()}" in ready[0]
    assert "STATUS=campaigning blocked" in ready[0] or "STATUS=leading blocked" in ready[0]


async def test_a_healthy_leader_cut_off_from_etcd_is_never_killed(
    etcd_endpoint: str, etcd_prefix: str, fault_proxy: Callable[[str], FaultProxy]
) -> None:
    """Blackholed, the leader stops pinging WatchdogSec - margin before its deadline, and
    pings again as soon as its term is over: no gap between pings reaches WatchdogSec."""
    watchdog = 1.6
    proxy = fault_proxy(etcd_endpoint)
    with NotifyListener() as listener:
        async with (
            AsyncClient(proxy.endpoint, timeout=1, connect_timeout=0.5, stream_timeout=1) as client,
            client.elector("cut", ttl=4, namespace=namespace_of(etcd_prefix)) as elector,
        ):
            notifier = RecordingNotifier(elector, socket_path=listener.path, watchdog=watchdog)
            runner = asyncio.create_task(elector.run(lambda term: asyncio.Event().wait()))
            try:
                async with notifier:
                    await until(elector.is_leader, "elected")
                    term, session = elector.term, elector.session
                    assert term is not None and session is not None
                    await until(lambda: len(notifier.pings_sent()) >= 3, "pings while leading")
                    proxy.blackhole()
                    await asyncio.wait_for(session.wait_lost(), WAIT_S)
                    ended = term.ended_at
                    assert ended is not None
                    await until(
                        lambda: any(at > ended for at in notifier.pings_sent()), "pings again"
                    )
                    pings = notifier.pings_sent()
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                proxy.heal()
    window_closed = session.deadline + session.margin - watchdog
    assert not [at for at in pings if window_closed < at < session.deadline]
    assert max(b - a for a, b in itertools.pairwise(pings)) < watchdog


def test_the_blocking_elector_is_notified_too(etcd_endpoint: str, etcd_prefix: str) -> None:
    with (
        NotifyListener() as listener,
        Client(etcd_endpoint) as client,
        client.elector(
            "twin", ttl=3, namespace=namespace_of(etcd_prefix), requeue=False
        ) as elector,
        SystemdNotifier(elector, socket_path=listener.path, watchdog=1.0),
    ):
        elector.run(lambda term: listener.wait_for(lambda got: len(listener.pings()) >= 2, 10, "p"))
    ready = listener.with_field("READY", "1")
    assert len(ready) == 1 and ready[0].fields["MAINPID"] == str(os.getpid())
    assert listener.with_field("STOPPING", "1")


# -- the command line ---------------------------------------------------------------------------


def flush(listener: NotifyListener) -> None:
    """Wait until every datagram already sent has been read: the socket is FIFO, so once a
    marker sent now has arrived, so has everything before it."""
    marker = f"MARKER={time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(marker.encode(), listener.path)
    listener.wait_for(lambda got: any(n.text == marker for n in got), 10, "the marker")


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0]


@pytest.mark.parametrize("command", ["campaign", "run"])
def test_cli_under_systemd_notify_with_a_frozen_leader(
    command: str, cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    """READY=1 with the process's pid, pings every quarter of WatchdogSec; SIGSTOP (the whole
    process frozen) stops them, and the last one came more than WatchdogSec before etcd let
    the lease go; after SIGCONT it pings again, and SIGTERM sends STOPPING=1."""
    namespace = namespace_of(etcd_prefix)
    rest = ["--", "sleep", "60"] if command == "run" else []
    with NotifyListener() as listener:
        leader = cli(
            "--json",
            "--endpoints",
            etcd_endpoint,
            "--namespace",
            namespace,
            "--ttl",
            "3",
            command,
            "frozen",
            *rest,
            env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "1000000"},
        )
        leader.expect("elected")
        listener.wait_for(lambda got: len(listener.pings()) >= 4, 20, "pings")
        ready = listener.with_field("READY", "1")
        assert len(ready) == 1 and ready[0].fields["MAINPID"] == str(leader.proc.pid)
        assert ready[0].fields["STATUS"].split()[:2] in (
            ["campaigning", "frozen"],
            ["leading", "frozen"],
        )

        os.kill(leader.proc.pid, signal.SIGSTOP)
        wait_until_sync(lambda: process_state(leader.proc.pid) == "T", 10, "stopped")
        flush(listener)
        frozen_pings = listener.pings()
        with Client(etcd_endpoint) as client:
            wait_until_sync(
                lambda: not client.get_prefix(f"{namespace}/frozen/").kvs, 20, "lease lapsed"
            )
        lapsed = _clock.now()
        assert listener.pings() == frozen_pings  # not one ping while frozen
        assert frozen_pings[-1] + 1.0 < lapsed  # systemd's kill would have come first

        os.kill(leader.proc.pid, signal.SIGCONT)
        leader.expect("lost")
        listener.wait_for(lambda got: len(listener.pings()) > len(frozen_pings), 20, "again")
        leader.signal(signal.SIGTERM)
        assert leader.wait() == 128 + signal.SIGTERM
        listener.wait_for(lambda got: bool(listener.with_field("STOPPING", "1")), 10, "STOPPING")


def test_cli_refuses_a_notify_socket_it_cannot_use(etcd_endpoint: str) -> None:
    for env, says in (
        ({"NOTIFY_SOCKET": "vsock:2:99"}, "NOTIFY_SOCKET"),
        ({"NOTIFY_SOCKET": "/run/notify", "WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC"),
    ):
        done = run_cli("--endpoints", etcd_endpoint, "campaign", "x", env=env)
        assert done.returncode == 4, done.stderr
        assert len(done.stderr.splitlines()) == 1 and says in done.stderr
