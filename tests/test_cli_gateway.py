"""``etcd-elector leader`` reads over etcd's JSON gateway (``GatewayClient``); every other reader
reads over gRPC (``AsyncEtcdClient``). Both must give the same answers and end in the same
errors: each case reads the same election both ways, with the same ``ClientConfig``, against a
real etcd (one member, mTLS, authentication, a three-member cluster without quorum, a frozen
member) and compares; then runs the command as a user does. Answers that are not etcd's come
from a loopback server started here: they must end in one clear line, never a traceback, a
control byte on the terminal or an unbounded read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from helpers.cli_process import run_cli
from helpers.election_kit import namespace_of
from helpers.security import Certs, enable_auth, make_certs

from etcd_elector import AsyncClient
from etcd_elector._config import ClientConfig
from etcd_elector._election._leader import LeaderInfo, read_leader_blocking
from etcd_elector._election._names import candidate_key, election_prefix
from etcd_elector._election._view import AsyncElectionView
from etcd_elector._errors import (
    AuthenticationFailed,
    ConnectionFailed,
    EtcdElectorError,
    EtcdServerError,
    NoLeader,
    PermissionDenied,
    RequestTimeout,
    TLSHandshakeFailed,
)
from etcd_elector.cli._exit import ExitCode, code_for
from etcd_elector.etcd._client import AsyncEtcdClient
from etcd_elector.etcd._gateway import MAX_ANSWER_BYTES, GatewayClient
from etcd_elector.testing import EtcdCluster, EtcdTLS

pytestmark = pytest.mark.timeout(90)

NAME = "job"
PASSWORD = "gw-S3cret-52c1"
ALLOWED = "/apps/gw"
Outcome = LeaderInfo | None | EtcdElectorError


def via_gateway(config: ClientConfig, namespace: str) -> Outcome:
    try:
        with GatewayClient(config) as client:
            return read_leader_blocking(client, election_prefix(namespace, NAME))
    except EtcdElectorError as exc:
        return exc


async def via_grpc(config: ClientConfig, namespace: str) -> Outcome:
    try:
        async with AsyncEtcdClient(config=config) as client:
            return await AsyncElectionView(client, NAME, namespace=namespace).leader()
    except EtcdElectorError as exc:
        return exc


async def both(config: ClientConfig, namespace: str) -> tuple[Outcome, Outcome]:
    gateway = await asyncio.to_thread(via_gateway, config, namespace)
    return gateway, await via_grpc(config, namespace)


def assert_same_error(gateway: Outcome, grpc: Outcome, kind: type[EtcdElectorError]) -> None:
    assert isinstance(grpc, kind), grpc
    assert type(gateway) is type(grpc), (gateway, grpc)
    assert code_for(gateway) == code_for(grpc)
    if isinstance(gateway, TLSHandshakeFailed) and isinstance(grpc, TLSHandshakeFailed):
        assert gateway.reason == grpc.reason, (gateway, grpc)


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("etcd-elector: error: ")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", lines[0]), lines[0]
    return lines[0]


async def put_candidate(client: AsyncClient, namespace: str, value: str, ttl: int = 30) -> int:
    lease = await client.lease_grant(ttl)
    await client.put(candidate_key(namespace, NAME, lease.id), value, lease=lease.id)
    return lease.id


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


# -- one member, plaintext ---------------------------------------------------------------------


async def test_the_leader_and_no_leader_read_the_same_both_ways(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    config = ClientConfig.build(etcd_endpoint)
    async with AsyncClient(etcd_endpoint) as client:
        # More keys that are not candidates than one page holds, created first: the leader is
        # found by the rule's second read, on both transports.
        for index in range(10):
            await client.put(f"{namespace}/{NAME}/meta-{index}", "not a candidate")
        assert await both(config, namespace) == (None, None)
        done = run_cli("--endpoints", etcd_endpoint, "--namespace", namespace, "leader", NAME)
        assert done.returncode == ExitCode.NO_LEADER, done.stderr
        assert done.stdout == f"no leader in election {NAME}\n"

        first = await put_candidate(client, namespace, "first\x1b[31m")
        await put_candidate(client, namespace, "second")
        gateway, grpc = await both(config, namespace)
        assert isinstance(grpc, LeaderInfo) and grpc.lease_id == first
        assert gateway == grpc and gateway.mod_revision == grpc.mod_revision
        with GatewayClient(config) as reader:
            renewal = await asyncio.to_thread(reader.lease_time_to_live, first)
        expected = await client.lease_time_to_live(first)
        assert renewal.granted_ttl == expected.granted_ttl and renewal.id == first
        assert expected.ttl <= renewal.ttl <= expected.granted_ttl

        done = run_cli(
            "--endpoints", etcd_endpoint, "--namespace", namespace, "--json", "leader", NAME
        )
        assert done.returncode == ExitCode.OK, done.stderr
        event = json.loads(done.stdout)
        assert event["event"] == "leader" and event["lease"] == f"{first:x}"
        assert event["token"] == grpc.token and event["value"] == "first\x1b[31m"
        assert event["granted_ttl"] == expected.granted_ttl
        done = run_cli("--endpoints", etcd_endpoint, "--namespace", namespace, "leader", NAME)
        assert done.stdout.startswith(f"leader {NAME} key={grpc.key} lease={first:x} ")
        assert "\x1b" not in done.stdout and "renewed_ago=" in done.stdout
        await client.lease_revoke(first)
        gateway, grpc = await both(config, namespace)
        assert isinstance(grpc, LeaderInfo) and grpc.value == b"second" and gateway == grpc


async def test_an_unreachable_first_endpoint_then_a_good_one(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    down = closed_port()
    async with AsyncClient(etcd_endpoint) as client:
        lease = await put_candidate(client, namespace, "after-failover")
        gateway, grpc = await both(ClientConfig.build([down, etcd_endpoint]), namespace)
        assert isinstance(grpc, LeaderInfo) and grpc.lease_id == lease and gateway == grpc
        done = run_cli(
            "--endpoints", f"{down},{etcd_endpoint}", "--namespace", namespace, "leader", NAME
        )
        assert done.returncode == ExitCode.OK and "value=after-failover" in done.stdout

    nowhere = ClientConfig.build([down, closed_port()], timeout=2)
    gateway, grpc = await both(nowhere, namespace)
    assert_same_error(gateway, grpc, ConnectionFailed)
    assert str(gateway) == str(grpc)  # "cannot connect to etcd at a, b: check that ..."
    done = run_cli("--endpoints", down, "leader", NAME)
    assert done.returncode == ExitCode.UNREACHABLE
    assert f"cannot connect to etcd at {down}" in one_error_line(done.stderr)


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def mtls_etcd(etcd_binary: str, certs: Certs) -> Iterator[str]:
    tls = EtcdTLS(
        cert_file=certs.server_cert,
        key_file=certs.server_key,
        trusted_ca_file=certs.ca,
        client_cert_file=certs.client_cert,
        client_key_file=certs.client_key,
    )
    with EtcdCluster.start(1, binary=etcd_binary, tls=tls) as cluster:
        yield cluster.endpoints[0]


async def test_tls_good_and_bad_end_the_same_both_ways(mtls_etcd: str, certs: Certs) -> None:
    good = ClientConfig.build(
        mtls_etcd, ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key
    )
    async with AsyncClient(config=good) as client:
        lease = await put_candidate(client, "/tls", "over-mtls")
    gateway, grpc = await both(good, "/tls")
    assert isinstance(grpc, LeaderInfo) and grpc.lease_id == lease and gateway == grpc
    # The certificate is for 127.0.0.1, localhost and etcd.test: the name checked may be set.
    named = replace(good, server_name="etcd.test")
    assert await both(named, "/tls") == (grpc, grpc)

    cases = {
        TLSHandshakeFailed.UNKNOWN_CA: replace(good, ca_file=certs.other_ca),
        TLSHandshakeFailed.HOSTNAME_MISMATCH: replace(good, server_name="other.test"),
        TLSHandshakeFailed.CLIENT_CERTIFICATE_REJECTED: replace(
            good, cert_file=certs.foreign_client_cert, key_file=certs.foreign_client_key
        ),
    }
    for reason, config in cases.items():
        gateway, grpc = await both(replace(config, timeout=3), "/tls")
        assert_same_error(gateway, grpc, TLSHandshakeFailed)
        assert isinstance(gateway, TLSHandshakeFailed) and gateway.reason == reason

    tls = ["--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key]
    done = run_cli("--endpoints", mtls_etcd, *tls, "--namespace", "/tls", "leader", NAME)
    assert done.returncode == ExitCode.OK and "value=over-mtls" in done.stdout, done.stderr
    done = run_cli("--endpoints", mtls_etcd, *tls, "--server-name", "other.test", "leader", NAME)
    assert done.returncode == ExitCode.UNREACHABLE
    assert "hostname mismatch" in one_error_line(done.stderr)
    done = run_cli("--endpoints", mtls_etcd, "--cacert", certs.other_ca, "leader", NAME)
    assert done.returncode == ExitCode.UNREACHABLE
    assert "not signed by a CA we trust" in one_error_line(done.stderr)
    # Without --cacert an https:// endpoint is checked against the system's roots, as Python's
    # ssl finds them: here SSL_CERT_FILE names our CA.
    mtls = ["--cert", certs.client_cert, "--key", certs.client_key]
    https = ["--endpoints", f"https://{mtls_etcd}", *mtls, "--namespace", "/tls"]
    done = run_cli(*https, "leader", NAME, env={"SSL_CERT_FILE": certs.ca})
    assert done.returncode == ExitCode.OK and "value=over-mtls" in done.stdout, done.stderr
    done = run_cli(*https, "leader", NAME, env={"SSL_CERT_FILE": certs.other_ca})
    assert done.returncode == ExitCode.UNREACHABLE


async def test_plaintext_to_a_tls_port_says_it_serves_tls(mtls_etcd: str) -> None:
    gateway, grpc = await both(ClientConfig.build(mtls_etcd, timeout=3), "/tls")
    assert_same_error(gateway, grpc, ConnectionFailed)
    assert str(gateway) == str(grpc)  # "... it probably serves TLS (use https://...)"
    done = run_cli("--endpoints", mtls_etcd, "leader", NAME)
    assert done.returncode == ExitCode.UNREACHABLE
    assert f"use https://{mtls_etcd}" in one_error_line(done.stderr)


# -- authentication ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_etcd(etcd_binary: str) -> Iterator[str]:
    with EtcdCluster.start(1, binary=etcd_binary) as cluster:
        enable_auth(cluster.endpoints[0], {"alice": (PASSWORD, f"{ALLOWED}/")})
        yield cluster.endpoints[0]


async def test_credentials_good_bad_and_missing_end_the_same_both_ways(auth_etcd: str) -> None:
    good = ClientConfig.build(auth_etcd, username="alice", password=PASSWORD)
    async with AsyncClient(config=good) as client:
        lease = await put_candidate(client, ALLOWED, "with-auth")
    gateway, grpc = await both(good, ALLOWED)
    assert isinstance(grpc, LeaderInfo) and grpc.lease_id == lease and gateway == grpc

    wrong = ClientConfig.build(auth_etcd, username="alice", password="wrong-" + PASSWORD)
    gateway, grpc = await both(wrong, ALLOWED)
    assert_same_error(gateway, grpc, AuthenticationFailed)
    assert str(gateway) == str(grpc)  # "refused user 'alice': wrong user name or password"
    gateway, grpc = await both(ClientConfig.build(auth_etcd), ALLOWED)
    assert_same_error(gateway, grpc, AuthenticationFailed)
    gateway, grpc = await both(good, "/apps/other")
    assert_same_error(gateway, grpc, PermissionDenied)

    env = {"ETCD_USER": "alice", "ETCD_PASSWORD": PASSWORD}
    done = run_cli("--endpoints", auth_etcd, "--namespace", ALLOWED, "leader", NAME, env=env)
    assert done.returncode == ExitCode.OK and "value=with-auth" in done.stdout, done.stderr
    done = run_cli("--endpoints", auth_etcd, "--namespace", ALLOWED, "leader", NAME)
    assert done.returncode == ExitCode.AUTH
    assert "requires credentials" in one_error_line(done.stderr)


def test_an_expired_token_is_renewed_and_the_read_sent_again(
    etcd_binary: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="etcd_elector.etcd._gateway")
    ttl = 2  # etcd's --auth-token-ttl: a token unused this long is dropped
    with EtcdCluster.start(1, binary=etcd_binary, auth_token_ttl=ttl) as cluster:
        endpoint = cluster.endpoints[0]
        enable_auth(endpoint, {"alice": (PASSWORD, f"{ALLOWED}/")})
        config = ClientConfig.build(endpoint, username="alice", password=PASSWORD)
        prefix = election_prefix(ALLOWED, NAME)
        with GatewayClient(config) as client:
            assert client.get_prefix(prefix).kvs == ()
            assert "refused the auth token" not in caplog.text
            # No request at all for several token lifetimes: etcd expires the token (etcd
            # checks every second; nothing to wait on but time).
            time.sleep(2 * ttl + 1.5)
            assert client.get_prefix(prefix).kvs == ()
    assert "etcd refused the auth token (etcdserver: invalid auth token)" in caplog.text


# -- a cluster: no quorum, a frozen member -----------------------------------------------------


async def test_a_member_without_quorum_answers_no_leader_both_ways(
    etcd_cluster3: EtcdCluster,
) -> None:
    alone, *others = etcd_cluster3.members
    for member in others:
        member.kill()
    config = ClientConfig.build(alone.client_endpoint, timeout=3)
    # The survivor notices within an election timeout or so; until then it may still answer.
    for _ in range(100):
        grpc = await via_grpc(config, "/q")
        if isinstance(grpc, NoLeader):
            break
        await asyncio.sleep(0.1)
    gateway = await asyncio.to_thread(via_gateway, config, "/q")
    # etcd's require-leader marker reached it through the gateway: "no leader" at once, not a
    # wait for etcd's own request timeout (which would be a RequestTimeout here).
    assert_same_error(gateway, grpc, NoLeader)
    done = run_cli("--endpoints", alone.client_endpoint, "--timeout", "3", "leader", NAME)
    assert done.returncode == ExitCode.UNREACHABLE
    assert "has no raft leader (lost quorum)" in one_error_line(done.stderr)


async def test_a_frozen_first_member_leaves_time_for_the_next(etcd_cluster3: EtcdCluster) -> None:
    frozen, good, _ = etcd_cluster3.members
    async with AsyncClient(good.client_endpoint) as client:
        lease = await put_candidate(client, "/frozen", "still-answered")
    frozen.stop()  # SIGSTOP: connections are accepted by the kernel, nothing answers
    try:
        endpoints = [frozen.client_endpoint, good.client_endpoint]
        gateway = await asyncio.to_thread(
            via_gateway, ClientConfig.build(endpoints, timeout=4), "/frozen"
        )
        assert isinstance(gateway, LeaderInfo) and gateway.lease_id == lease, gateway
        done = run_cli(
            "--endpoints", ",".join(endpoints), "--timeout", "4", "--namespace", "/frozen",
            "leader", NAME,
        )  # fmt: skip
        assert done.returncode == ExitCode.OK and "value=still-answered" in done.stdout
        # Alone, the frozen member ends the read at the timeout, as gRPC's read does.
        alone = ClientConfig.build(frozen.client_endpoint, timeout=1)
        gateway = await asyncio.to_thread(via_gateway, alone, "/frozen")
        assert isinstance(gateway, RequestTimeout), gateway
    finally:
        frozen.cont()


# -- answers that are not etcd's --------------------------------------------------------------


class LoopbackServer:
    """Answers every connection with ``answer(send)`` (after reading the request's head), on
    127.0.0.1; at most 20 connections, then it stops."""

    def __init__(self, answer: Callable[[Callable[[bytes], None]], None]) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self.requests: list[tuple[bytes, bytes]] = []  # head and body of each request
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for _ in range(20):
            while not self._stop.is_set():
                try:
                    sock, _ = self._listener.accept()
                    break
                except TimeoutError:
                    continue
            else:
                return
            with sock:
                sock.settimeout(5)
                try:
                    self.requests.append(_read_request(sock))
                    self._answer(sock.sendall)
                except OSError:
                    continue  # the client hung up: it refused the rest

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()


def _read_request(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        data += sock.recv(4096) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"Content-Length: (\d+)", head)
    length = int(found.group(1)) if found else 0
    while len(body) < min(length, 65536):
        body += sock.recv(4096) or b" " * length
    return head, body


def canned(data: bytes) -> Callable[[Callable[[bytes], None]], None]:
    return lambda send: send(data)


def _answer(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (status, len(body)) + body


def ok_json(body: bytes) -> bytes:
    return _answer(b"200 OK", body)


def endless(head: bytes, piece: bytes) -> Callable[[Callable[[bytes], None]], None]:
    def answer(send: Callable[[bytes], None]) -> None:
        send(head)
        for _ in range(MAX_ANSWER_BYTES // len(piece) + 16):  # past the bound, then stop
            send(piece)

    return answer


_MIB = b"x" * (1 << 20)
_CHUNK = b"100000\r\n" + _MIB + b"\r\n"  # one chunk of 1 MiB
_KVS = b'{"header":{"revision":"5"},"kvs":[{"key":"L2V0Y2QtZWxlY3Rvci9qb2IvMQ==","value":%s}]}'

UNTRUSTED = {
    "not json": (canned(ok_json(b"<html>hello</html>")), "malformed answer", "not JSON"),
    "bad base64": (canned(ok_json(_KVS % b'"%%%"')), "malformed answer", "value is not base64"),
    "bad type": (canned(ok_json(_KVS % b"[1]")), "malformed answer", "value is not base64"),
    "huge revision": (
        canned(ok_json(b'{"header":{"revision":"99999999999999999999"}}')),
        "malformed answer",
        "revision is not a 64-bit integer",
    ),
    "declared too long": (
        canned(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n"),
        f"over {MAX_ANSWER_BYTES} bytes",
        "refused unread",
    ),
    "chunked too long": (
        endless(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"100000\r\n%s\r\n" % _MIB
        ),
        f"over {MAX_ANSWER_BYTES} bytes",
        "refused unread",
    ),
    "endless body": (
        endless(b"HTTP/1.1 200 OK\r\n\r\n", _MIB),
        f"over {MAX_ANSWER_BYTES} bytes",
        "refused unread",
    ),
    "not http": (canned(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), "not HTTP", "status line"),
    "endless header": (
        endless(b"HTTP/1.1 200 OK\r\nX: ", b"y" * 4096),
        "not HTTP",
        "line over 8192 bytes",
    ),
    "control bytes": (
        canned(
            _answer(
                b"500 Internal Server Error",
                json.dumps({"code": 2, "message": "\x1b]0;pwned\x07 evil\r\nline"}).encode(),
            )
        ),
        "answered UNKNOWN",
        "pwned",
    ),
    "not the gateway": (
        canned(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"),
        "answered HTTP 404",
        "is that etcd 3.4 or later",
    ),
}


@pytest.mark.parametrize("case", sorted(UNTRUSTED))
def test_an_answer_that_is_not_etcds_ends_in_one_clear_line(case: str) -> None:
    answer, said, detail = UNTRUSTED[case]
    server = LoopbackServer(answer)
    try:
        config = ClientConfig.build(server.endpoint, timeout=5)
        with pytest.raises(EtcdServerError) as raised, GatewayClient(config) as client:
            read_leader_blocking(client, b"/etcd-elector/job/")
        assert said in str(raised.value) and detail in str(raised.value)
        done = run_cli("--endpoints", server.endpoint, "--timeout", "5", "leader", "job")
    finally:
        server.close()
    assert done.returncode == ExitCode.UNREACHABLE, done.stderr
    line = one_error_line(done.stderr)
    assert said in line and len(line) < 1000
    assert done.stdout == ""


def test_a_server_that_drips_its_answer_is_cut_at_the_timeout() -> None:
    stop = threading.Event()

    def drip(send: Callable[[bytes], None]) -> None:
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(200):  # a byte every 50 ms: each read gets one before its own timeout
            if stop.wait(0.05):
                return
            send(b" ")

    server = LoopbackServer(drip)
    try:
        config = ClientConfig.build(server.endpoint, timeout=1)
        with pytest.raises(RequestTimeout), GatewayClient(config) as client:
            client.get_prefix(b"/etcd-elector/job/")
    finally:
        stop.set()
        server.close()


def test_the_gateway_sends_a_linearizable_read_with_require_leader() -> None:
    # What the gateway sends, as a server sees it: never serializable, always require-leader.
    server = LoopbackServer(canned(ok_json(b'{"header":{"revision":"3"}}')))
    try:
        with GatewayClient(ClientConfig.build(server.endpoint, timeout=5)) as client:
            result = client.get_prefix(b"/e/job/", limit=8, sort_by_create_revision=True)
    finally:
        server.close()
    assert result.revision == 3 and result.kvs == ()
    head, body = server.requests[0]
    assert head.startswith(b"POST /v3/kv/range HTTP/1.1\r\n")
    assert b"\r\nGrpc-Metadata-Hasleader: true\r\n" in head
    request = json.loads(body)
    assert "serializable" not in request and request["limit"] == "8"
    assert request["sort_target"] == "CREATE" and request["sort_order"] == "ASCEND"
    assert request["key"] == "L2Uvam9iLw==" and request["range_end"] == "L2Uvam9iMA=="
