"""etcd authentication against a real etcd with auth enabled and 2-second simple tokens: a
role limited to one prefix, wrong passwords, tokens that expire in the middle of a campaign,
and a password that never shows up anywhere."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, Recorder, wait_until
from helpers.security import ROOT_PASSWORD, enable_auth

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    AuthenticationFailed,
    ClientConfig,
    ConfigurationError,
    LeaderInfo,
    PermissionDenied,
    Secret,
    Term,
)
from etcd_elector.cli._process import child_environment
from etcd_elector.etcd._auth import AuthManager
from etcd_elector.testing import EtcdCluster

pytestmark = pytest.mark.timeout(60)

PASSWORD = "alice-S3cret-4e9a"  # distinctive: searched for in logs and messages
NAMESPACE = "/apps/billing"  # alice's role may read and write "/apps/billing/" only
TOKEN_TTL = 2


@pytest.fixture(scope="module")
def auth_etcd(etcd_binary: str) -> Iterator[str]:
    with EtcdCluster.start(1, binary=etcd_binary, auth_token_ttl=TOKEN_TTL) as cluster:
        endpoint = cluster.endpoints[0]
        enable_auth(endpoint, {"alice": (PASSWORD, f"{NAMESPACE}/")})
        yield endpoint


def alice(endpoint: str, password: str = PASSWORD) -> AsyncClient:
    return AsyncClient(endpoint, username="alice", password=password)


def authentications(client: AsyncClient) -> int:
    auth = client._transport._auth
    assert isinstance(auth, AuthManager)
    return auth.authentications


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


# -- least privilege -----------------------------------------------------------------------------


async def test_a_candidate_campaigns_inside_its_prefix(
    auth_etcd: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with alice(auth_etcd) as client, client.session(ttl=5) as session:
        election = AsyncElection(session, "inside", namespace=NAMESPACE)
        term = await election.campaign("a")
        assert term.key.startswith(f"{NAMESPACE}/inside/")
        assert election.is_leader() and await election.verify()
        leader = await client.election_view("inside", namespace=NAMESPACE).leader()
        assert leader is not None and leader.value == b"a"
        await election.resign()
        assert authentications(client) == 1
        assert_hidden(repr(client), repr(client.config), str(client.config), caplog.text)
    # The session was closed: revoking a lease needs write access to its keys, which alice has.
    assert "could not revoke" not in caplog.text


async def test_outside_its_prefix_is_permission_denied(auth_etcd: str) -> None:
    async with alice(auth_etcd) as client, client.session(ttl=5) as session:
        election = AsyncElection(session, "outside", namespace="/apps/other")
        with pytest.raises(PermissionDenied, match="denied") as campaign:
            await election.campaign("a")
        with pytest.raises(PermissionDenied):
            await election.leader()
        with pytest.raises(PermissionDenied, match="denied the watch"):
            async with client.watch("/apps/other/outside/", prefix=True):
                pass
        assert_hidden(str(campaign.value), repr(campaign.value))
        # Still fine inside.
        assert (await client.get(f"{NAMESPACE}/x")).kv is None


async def test_a_wrong_password_is_authentication_failed(
    auth_etcd: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-" + PASSWORD
    async with alice(auth_etcd, password=wrong) as client:
        with pytest.raises(AuthenticationFailed, match="refused user 'alice'") as info:
            await client.get(f"{NAMESPACE}/x")
        with pytest.raises(AuthenticationFailed):
            await client.session(ttl=5).start()
    for text in (str(info.value), repr(info.value), repr(info.value.__cause__), caplog.text):
        assert wrong not in text and PASSWORD not in text


async def test_no_credentials_is_authentication_failed(auth_etcd: str) -> None:
    async with AsyncClient(auth_etcd) as client:
        with pytest.raises(AuthenticationFailed, match="requires credentials"):
            await client.get(f"{NAMESPACE}/x")


async def test_lease_permissions_are_as_documented(auth_etcd: str) -> None:
    """docs/security.md: etcd 3.5 asks nothing for lease grant, keepalive, time-to-live, nor
    for revoking a lease without keys; with keys attached, a revoke needs a user with write
    access to every one of them."""
    async with (
        AsyncClient(auth_etcd) as anonymous,
        AsyncClient(auth_etcd, username="root", password=ROOT_PASSWORD) as root,
        alice(auth_etcd) as client,
    ):
        lease = await anonymous.lease_grant(5)
        async with anonymous.lease_keepalive(lease.id) as stream:
            assert (await stream.ping()).ttl > 0
        assert (await anonymous.lease_time_to_live(lease.id)).ttl > 0
        await anonymous.lease_revoke(lease.id)

        lease = await client.lease_grant(5)
        await root.put("/apps/elsewhere/key", "v", lease=lease.id)
        with pytest.raises(AuthenticationFailed, match="requires credentials"):
            await anonymous.lease_revoke(lease.id)
        with pytest.raises(PermissionDenied):
            await client.lease_revoke(lease.id)
        await root.delete("/apps/elsewhere/key")
        await client.put(f"{NAMESPACE}/mine", "v", lease=lease.id)
        await client.lease_revoke(lease.id)
        assert (await client.get(f"{NAMESPACE}/mine")).kv is None


# -- tokens that expire --------------------------------------------------------------------------


async def test_expired_tokens_are_renewed_without_losing_the_session_or_leadership(
    auth_etcd: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Leader A holds through several token lifetimes without a call; its tokens and B's
    expire. A's verify() renews A's; a new watch on B's old stream is refused, renewed and
    reopened (B's waiting campaign rides that out), and B wins when A resigns."""
    caplog.set_level(logging.DEBUG)
    name = "expiry"
    async with (
        alice(auth_etcd) as client_a,
        alice(auth_etcd) as client_b,
        client_a.session(ttl=3) as session_a,
        client_b.session(ttl=3) as session_b,
    ):
        election_a = AsyncElection(session_a, name, namespace=NAMESPACE)
        election_b = AsyncElection(session_b, name, namespace=NAMESPACE)
        term_a = await election_a.campaign("a")
        campaign_b: asyncio.Task[Term] = asyncio.create_task(election_b.campaign("b"))
        view = client_a.election_view(name, namespace=NAMESPACE)

        async def two_candidates() -> bool:
            return len(await view.candidates()) == 2

        await wait_until(two_candidates, "B is waiting")
        before_a, before_b = authentications(client_a), authentications(client_b)

        # Several token lifetimes with no request at all: every token expires.
        loop = asyncio.get_running_loop()
        hold_until = loop.time() + 3 * TOKEN_TTL + 1.5
        while loop.time() < hold_until:
            assert election_a.is_leader() and session_a.alive and session_b.alive
            assert not campaign_b.done()
            await asyncio.sleep(0.25)

        # Many calls notice the expired token at once: one Authenticate serves them all.
        reads = [client_a.get(f"{NAMESPACE}/{name}/none") for _ in range(10)]
        verified, *_ = await asyncio.gather(election_a.verify(), *reads)
        assert verified
        assert authentications(client_a) == before_a + 1
        recorder = Recorder(client_b.election_view(name, namespace=NAMESPACE).observe())
        try:
            first = await recorder.next(0)
            assert isinstance(first, LeaderInfo) and first.value == b"a"
            assert authentications(client_b) == before_b + 1
            assert not campaign_b.done()

            await election_a.resign()
            term_b = await asyncio.wait_for(campaign_b, WAIT_S)
            assert term_b.token > term_a.token
            assert election_b.is_leader() and await election_b.verify()
            await recorder.wait_latest(
                lambda item: isinstance(item, LeaderInfo) and item.value == b"b", "B leads"
            )
        finally:
            await recorder.close()
        assert session_a.alive and session_b.alive
        await election_b.resign()
    assert "etcd refused the auth token (etcdserver: invalid auth token)" in caplog.text
    assert "reopening the watch stream with a new auth token" in caplog.text
    assert_hidden(caplog.text)


# -- the password stays hidden -------------------------------------------------------------------


def logged(value: object) -> str:
    return logging.LogRecord(
        "t", logging.DEBUG, __file__, 1, "%s %r", (value, value), None
    ).getMessage()


def test_a_secret_never_shows_itself() -> None:
    secret = Secret(PASSWORD)
    assert secret.reveal() == PASSWORD
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r:>30}", logged(secret)):
        assert PASSWORD not in text
    assert Secret(secret) == secret and hash(Secret(PASSWORD)) == hash(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    config = ClientConfig.build("127.0.0.1:2379", username="alice", password=PASSWORD)
    assert isinstance(config.password, Secret)
    assert_hidden(repr(config), str(config), repr(AsyncClient(config=config)))


def test_credentials_from_arguments_files_and_the_environment(tmp_path: Path) -> None:
    def build(environ: dict[str, str] | None = None, **kwargs: Any) -> tuple[str | None, str]:
        config = ClientConfig.build("127.0.0.1:2379", environ=environ or {}, **kwargs)
        return config.username, config.password.reveal() if config.password else ""

    assert build(username="alice", password="pw") == ("alice", "pw")
    assert build(username="alice:pw") == ("alice", "pw")
    assert build({"ETCD_USER": "alice", "ETCD_PASSWORD": "pw"}) == ("alice", "pw")
    assert build({"ETCDCTL_USER": "bob:pw2"}) == ("bob", "pw2")
    assert build({"ETCDCTL_USER": "bob", "ETCDCTL_PASSWORD": "pw3"}) == ("bob", "pw3")
    assert build({"ETCD_USER": "alice", "ETCDCTL_USER": "bob", "ETCD_PASSWORD": "x"}) == (
        "alice",
        "x",
    )
    assert build({"ETCD_PASSWORD": "stray"}) == (None, "")  # no user: no authentication
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    assert build(username="alice", password_file=str(password_file)) == ("alice", PASSWORD)
    assert build({"ETCD_PASSWORD": "env"}, username="alice", password_file=str(password_file))[
        1
    ] == (PASSWORD)

    problems: dict[str, dict[str, Any]] = {
        "has no password": {"username": "alice"},
        "without a user": {"password": "pw"},
        "password once": {"username": "alice:pw", "password": "other"},
        "does not exist": {"username": "alice", "password_file": str(tmp_path / "nope")},
    }
    empty = tmp_path / "empty"
    empty.write_text("\n")
    problems["is empty"] = {"username": "alice", "password_file": str(empty)}
    for words, kwargs in problems.items():
        with pytest.raises(ConfigurationError, match=words) as info:
            build(**kwargs)
        assert_hidden(str(info.value))
    if os.geteuid() != 0:  # root reads any file
        password_file.chmod(0)
        with pytest.raises(ConfigurationError, match="permission denied"):
            build(username="alice", password_file=str(password_file))


def test_the_supervised_command_gets_no_password() -> None:
    environ = {
        "PATH": "/bin",
        "ETCD_PASSWORD": PASSWORD,
        "ETCDCTL_PASSWORD": PASSWORD,
        "ETCD_USER": f"alice:{PASSWORD}",
        "ETCDCTL_USER": "alice",
    }
    child = child_environment(environ)
    assert child == {"PATH": "/bin", "ETCDCTL_USER": "alice"}
