"""The real-etcd test kit: binary lookup, etcd processes and their faults, and FaultProxy."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli_process import pid_gone

from etcd_elector._errors import ConfigurationError
from etcd_elector.testing import (
    EtcdCluster,
    EtcdMember,
    EtcdStartError,
    FaultProxy,
    etcd_version,
    find_etcd_binary,
    free_port,
    socket_owner,
)

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_IO_TIMEOUT_S = 5.0


# -- helpers ---------------------------------------------------------------------------------


def _gateway(endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{endpoint}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with _HTTP.open(request, timeout=_IO_TIMEOUT_S) as response:
        answer = json.loads(response.read())
    assert isinstance(answer, dict)
    return answer


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _put(endpoint: str, key: str, value: str) -> None:
    _gateway(endpoint, "/v3/kv/put", {"key": _b64(key), "value": _b64(value)})


def _get(endpoint: str, key: str) -> str | None:
    answer = _gateway(endpoint, "/v3/kv/range", {"key": _b64(key)})
    kvs = answer.get("kvs", [])
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout} s: {what}")
        time.sleep(0.02)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _connect(endpoint: str) -> socket.socket:
    host, port = endpoint.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=_IO_TIMEOUT_S)
    sock.settimeout(_IO_TIMEOUT_S)
    return sock


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    return _recv_exactly(sock, len(payload))


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                sock.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_endpoint() -> Iterator[str]:
    """A small threaded echo server on 127.0.0.1, the target of the proxy tests."""
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(_IO_TIMEOUT_S)


# -- binary ----------------------------------------------------------------------------------


def test_binary_is_found_and_its_version_parsed(etcd_binary: str) -> None:
    assert os.access(etcd_binary, os.X_OK)
    assert find_etcd_binary() == etcd_binary
    major, minor, patch = etcd_version(etcd_binary)
    assert (major, minor) >= (3, 4)
    assert patch >= 0


def test_etcd_binary_variable_must_name_an_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, etcd_binary: str
) -> None:
    monkeypatch.setenv("ETCD_BINARY", str(tmp_path / "missing-etcd"))
    with pytest.raises(ConfigurationError, match="ETCD_BINARY"):
        find_etcd_binary()
    monkeypatch.setenv("ETCD_BINARY", etcd_binary)
    assert find_etcd_binary() == os.path.realpath(etcd_binary)


def test_free_ports_are_never_issued_twice() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)


def test_free_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    """An outgoing connection's source port comes from the ephemeral range: a port from
    there could be taken between our check and etcd's bind."""
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    low, high = int(ephemeral[0]), int(ephemeral[1])
    room = low > 10_000 or high < 65_535  # else the kernel's pick is all there is
    for port in (free_port() for _ in range(50)):
        assert not (room and low <= port <= high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # free: nobody listens there


# -- etcd processes --------------------------------------------------------------------------


def test_single_member_answers_health(etcd_member: EtcdMember) -> None:
    member, cluster = etcd_member, etcd_member.cluster
    assert member.name == "m0"
    assert cluster.members == [member]
    assert cluster.endpoints == [member.client_endpoint]
    assert cluster.endpoint_string == member.client_endpoint
    with _HTTP.open(f"http://{member.client_endpoint}/health", timeout=_IO_TIMEOUT_S) as answer:
        assert json.loads(answer.read())["health"] == "true"
    assert member.log_path.is_file()
    assert cluster.leader() is member


def test_session_server_with_private_prefix(etcd_endpoint: str, etcd_prefix: str) -> None:
    assert etcd_prefix.startswith("/test/")
    assert etcd_prefix.endswith("/")
    _put(etcd_endpoint, f"{etcd_prefix}k", "v")
    assert _get(etcd_endpoint, f"{etcd_prefix}k") == "v"


def test_close_kills_members_and_removes_data(tmp_path: Path) -> None:
    with EtcdCluster.start(1, data_root=tmp_path) as cluster:
        (member,) = cluster.members
        pid = member.pid
        member.stop()  # close must also kill a frozen member
    assert _pid_gone(pid)
    assert not member.data_dir.exists()
    assert member.log_path.is_file()  # kept, since data_root was ours
    cluster.close()  # idempotent


def test_start_failure_reports_the_log(etcd_binary: str) -> None:
    with pytest.raises(EtcdStartError, match="no-such-flag"):
        EtcdCluster.start(1, binary=etcd_binary, extra_args=["--no-such-flag"], start_timeout=10)


def _leaders_by_member(cluster: EtcdCluster) -> dict[str, int]:
    return {m.name: int(m.status().get("leader", "0")) for m in cluster.members if m.is_serving}


def test_three_member_cluster_has_exactly_one_leader(etcd_cluster3: EtcdCluster) -> None:
    assert [m.name for m in etcd_cluster3.members] == ["m0", "m1", "m2"]
    assert len(set(etcd_cluster3.endpoints)) == 3
    leader = etcd_cluster3.wait_for_leader(timeout=10)
    _wait_for(
        lambda: set(_leaders_by_member(etcd_cluster3).values()) == {leader.member_id},
        timeout=10,
        what="every member names the same leader",
    )
    own_leaders = [m for m in etcd_cluster3.members if m.member_id == leader.member_id]
    assert own_leaders == [leader]
    assert etcd_cluster3.leader() is leader


def test_killing_the_leader_elects_another(etcd_cluster3: EtcdCluster) -> None:
    old = etcd_cluster3.wait_for_leader(timeout=10)
    old_pid = old.pid
    old.kill()
    assert not old.is_running
    assert _pid_gone(old_pid)
    new = etcd_cluster3.wait_for_leader(timeout=15)
    assert new is not old
    assert new in etcd_cluster3.members
    survivors: list[EtcdMember] = [m for m in etcd_cluster3.members if m is not old]
    _put(survivors[0].client_endpoint, "/kit/after-failover", "yes")
    assert _get(survivors[1].client_endpoint, "/kit/after-failover") == "yes"
    old.restart(timeout=20)  # rejoins with its data and catches up
    assert old.health()
    _wait_for(
        lambda: _get(old.client_endpoint, "/kit/after-failover") == "yes",
        timeout=10,
        what="the restarted member caught up",
    )


def test_stop_freezes_and_cont_thaws_a_member(etcd_member: EtcdMember) -> None:
    member = etcd_member
    member.stop()
    assert member.is_running
    assert member.is_stopped
    assert not member.health(timeout=0.3)
    member.cont()
    assert not member.is_stopped
    member.wait_healthy(timeout=10)


def test_restart_keeps_data(etcd_member: EtcdMember) -> None:
    member = etcd_member
    _put(member.client_endpoint, "/kit/durable", "kept")
    old_pid = member.pid
    member.kill()
    member.restart(timeout=20)
    assert member.pid != old_pid
    assert member.health()
    assert _get(member.client_endpoint, "/kit/durable") == "kept"


# -- FaultProxy ------------------------------------------------------------------------------


def test_proxy_passes_data_through(
    fault_proxy: Callable[[str], FaultProxy], echo_endpoint: str
) -> None:
    proxy = fault_proxy(echo_endpoint)
    assert proxy.endpoint.startswith("127.0.0.1:")
    with _connect(proxy.endpoint) as sock:
        assert _echo(sock, b"hello") == b"hello"
        big = os.urandom(300_000)
        assert _echo(sock, big) == big
        assert proxy.connection_count == 1
    assert proxy.bytes_to_target == proxy.bytes_to_client == 300_005
    _wait_for(lambda: proxy.connection_count == 0, timeout=5, what="connection closed")


def test_proxy_delay_adds_latency(
    fault_proxy: Callable[[str], FaultProxy], echo_endpoint: str
) -> None:
    proxy = fault_proxy(echo_endpoint)
    delay = 0.15
    with _connect(proxy.endpoint) as sock:
        _echo(sock, b"warm-up")
        proxy.delay(delay)
        started = time.monotonic()
        assert _echo(sock, b"slow") == b"slow"
        elapsed = time.monotonic() - started
        assert elapsed >= 2 * delay  # once each way
        proxy.pass_through()
        assert _echo(sock, b"fast") == b"fast"


async def test_proxy_works_from_async_tests(
    fault_proxy: Callable[[str], FaultProxy], echo_endpoint: str
) -> None:
    proxy = fault_proxy(echo_endpoint)
    proxy.delay(0.05)
    host, port = proxy.endpoint.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        started = time.monotonic()
        writer.write(b"async")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(5), _IO_TIMEOUT_S) == b"async"
        assert time.monotonic() - started >= 0.1
    finally:
        writer.close()
        await writer.wait_closed()


def test_proxy_blackhole_holds_data_until_heal(
    fault_proxy: Callable[[str], FaultProxy], echo_endpoint: str
) -> None:
    proxy = fault_proxy(echo_endpoint)
    with _connect(proxy.endpoint) as old:
        assert _echo(old, b"before") == b"before"
        sent = proxy.bytes_to_target
        proxy.blackhole()
        old.sendall(b"held-1")
        with _connect(proxy.endpoint) as new:  # accepted, but held too
            new.sendall(b"held-2")
            for sock in (old, new):
                sock.settimeout(0.3)
                with pytest.raises(TimeoutError):
                    sock.recv(100)
                sock.settimeout(_IO_TIMEOUT_S)
            assert proxy.bytes_to_target == sent
            _wait_for(lambda: proxy.connection_count == 2, timeout=5, what="both connections held")
            proxy.heal()
            assert _recv_exactly(old, 6) == b"held-1"
            assert _recv_exactly(new, 6) == b"held-2"
            assert _echo(new, b"after") == b"after"


def test_proxy_drop_resets_connections(
    fault_proxy: Callable[[str], FaultProxy], echo_endpoint: str
) -> None:
    proxy = fault_proxy(echo_endpoint)
    with _connect(proxy.endpoint) as sock:
        assert _echo(sock, b"ping") == b"ping"
        proxy.drop()
        assert proxy.connection_count == 0
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    with _connect(proxy.endpoint) as again:  # new connections pass through
        assert _echo(again, b"pong") == b"pong"


def test_proxy_refuse_until_heal(
    fault_proxy: Callable[[str], FaultProxy], echo_endpoint: str
) -> None:
    proxy = fault_proxy(echo_endpoint)
    with _connect(proxy.endpoint) as existing:
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            _connect(proxy.endpoint).close()
        assert _echo(existing, b"still") == b"still"  # refusing leaves connections alone
        proxy.heal()
        with _connect(proxy.endpoint) as sock:
            assert _echo(sock, b"back") == b"back"


def _connect_and_echo(endpoint: str, payload: bytes) -> bytes:
    with _connect(endpoint) as sock:
        return _echo(sock, payload)


def test_proxy_to_a_dead_target_resets_the_client() -> None:
    with FaultProxy.start(f"127.0.0.1:{free_port()}") as proxy:
        # The reset may already show when connect() completes, or only on send or receive.
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            _connect_and_echo(proxy.endpoint, b"anyone?")
        assert proxy.accepted_count == 1


def test_closing_the_proxy_leaves_no_threads(echo_endpoint: str) -> None:
    before = set(threading.enumerate())
    proxy = FaultProxy.start(echo_endpoint)
    with _connect(proxy.endpoint) as sock:
        assert _echo(sock, b"x") == b"x"
        proxy.blackhole()
        with _connect(proxy.endpoint):
            proxy.close()
            proxy.close()  # idempotent
    with pytest.raises(RuntimeError):
        proxy.heal()
    leftover = [t for t in set(threading.enumerate()) - before if t.name.startswith("FaultProxy")]
    assert leftover == []
    assert not any(t.name.startswith("asyncio") for t in set(threading.enumerate()) - before)


def test_proxy_in_front_of_etcd(
    fault_proxy: Callable[[str], FaultProxy], etcd_endpoint: str, etcd_prefix: str
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    _put(proxy.endpoint, f"{etcd_prefix}via-proxy", "1")
    assert _get(etcd_endpoint, f"{etcd_prefix}via-proxy") == "1"
    proxy.refuse()
    with pytest.raises(urllib.error.URLError):
        _get(proxy.endpoint, f"{etcd_prefix}via-proxy")
    proxy.heal()
    assert _get(proxy.endpoint, f"{etcd_prefix}via-proxy") == "1"


# -- helper processes ------------------------------------------------------------------------

# A harness that starts one helper through dies_with_parent: it prints the helper's pid, and
# the helper prints "ready" once it runs (past the wrapper, so the parent-death signal is set).
_HARNESS = """\
import subprocess, sys
from etcd_elector.testing import dies_with_parent
helper = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
child = subprocess.Popen(dies_with_parent(helper))
print(child.pid, flush=True)
child.wait()
"""


def test_dies_with_parent_kills_the_helper_when_its_harness_is_killed() -> None:
    harness = subprocess.Popen([sys.executable, "-c", _HARNESS], stdout=subprocess.PIPE, text=True)
    helper_pid = 0
    try:
        assert harness.stdout is not None
        helper_pid = int(harness.stdout.readline())
        assert harness.stdout.readline() == "ready\n"
        harness.kill()  # SIGKILL: no cleanup of its own runs
        harness.wait(timeout=10)
        _wait_for(lambda: pid_gone(helper_pid), 10, "the helper died with its harness")
    finally:
        harness.kill()
        harness.wait(timeout=10)
        if helper_pid and not pid_gone(helper_pid):
            os.kill(helper_pid, signal.SIGKILL)
        if harness.stdout is not None:
            harness.stdout.close()


# -- connections by origin: the base of peer partitions ----------------------------------------


def _connect_as(endpoint: str, origin: str, origins: dict[int, str]) -> socket.socket:
    """Connect from a source port registered as ``origin`` (what the identify hook reads)."""
    host, port = endpoint.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(_IO_TIMEOUT_S)
    sock.bind(("127.0.0.1", 0))
    origins[sock.getsockname()[1]] = origin
    sock.connect((host, int(port)))
    return sock


def _is_reset(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"?")
        return sock.recv(10) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_cut_origin_resets_its_connections_now_and_new_ones_until_restored(
    echo_endpoint: str,
) -> None:
    origins: dict[int, str] = {}
    with FaultProxy.start(
        echo_endpoint, identify=lambda accepted: origins.get(accepted.getpeername()[1])
    ) as proxy:
        a = _connect_as(proxy.endpoint, "a", origins)
        b = _connect_as(proxy.endpoint, "b", origins)
        with a, b:
            assert _echo(a, b"a1") == b"a1" and _echo(b, b"b1") == b"b1"
            assert proxy.connections_by_origin() == {"a": 1, "b": 1}
            proxy.cut_origin("a")
            # Cut at the moment of the call, not only new connections.
            assert proxy.connections_by_origin() == {"b": 1}
            assert proxy.cut_origins == {"a"}
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                a.recv(10)
            assert _echo(b, b"b2") == b"b2"  # other origins pass
        with _connect_as(proxy.endpoint, "a", origins) as again:
            assert _is_reset(again)
        proxy.restore_origin("a")
        with _connect_as(proxy.endpoint, "a", origins) as back:
            assert _echo(back, b"a3") == b"a3"
        proxy.cut_origin("a")
        proxy.heal()  # heal undoes cuts too
        assert proxy.cut_origins == frozenset()
        with _connect_as(proxy.endpoint, "a", origins) as healed:
            assert _echo(healed, b"a4") == b"a4"


def test_a_failing_identify_hook_leaves_the_origin_unknown(echo_endpoint: str) -> None:
    def broken(accepted: socket.socket) -> str | None:
        raise OSError("cannot tell")

    with FaultProxy.start(echo_endpoint, identify=broken) as proxy, _connect(proxy.endpoint) as s:
        assert _echo(s, b"x") == b"x"
        assert proxy.connections_by_origin() == {None: 1}
        proxy.cut_origin(None)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            s.recv(10)


def test_socket_owner_names_the_process_that_connected() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
                " sys.stdin.read()",
                str(port),
            ],
            stdin=subprocess.PIPE,
        )
        try:
            from_child, _ = listener.accept()
            with from_child, socket.create_connection(("127.0.0.1", port)) as mine:
                from_me, _ = listener.accept()
                with from_me:
                    pids = {"child": child.pid, "me": os.getpid()}
                    assert socket_owner(from_child, pids) == "child"
                    assert socket_owner(from_me, pids) == "me"
                    assert socket_owner(from_child, {"me": os.getpid()}) is None
                    mine.close()
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(_IO_TIMEOUT_S)


def test_the_proc_table_fallback_finds_the_same_socket_as_sock_diag() -> None:
    from etcd_elector.testing._peers import _diag_inode, _table_inode

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                ends = (client.getsockname(), client.getpeername())
                expected = os.fstat(client.fileno()).st_ino
                assert _diag_inode(*ends) == expected
                assert _table_inode(*ends) == expected
        assert _diag_inode(("127.0.0.1", 1), ("127.0.0.1", 2)) is None
        assert _table_inode(("127.0.0.1", 1), ("127.0.0.1", 2)) is None
