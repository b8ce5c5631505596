"""TLS against real etcd members serving TLS (certificates made with trustme at test time):
server verification, client certificates (mTLS), a server name override, and one clear,
distinct error for each way a certificate can be wrong."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from helpers.security import Certs, make_certs

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    ClientConfig,
    ConfigurationError,
    ConnectionFailed,
    LeaderInfo,
    TLSHandshakeFailed,
)
from etcd_elector.testing import EtcdCluster, EtcdTLS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_etcd(etcd_binary: str, certs: Certs) -> Iterator[str]:
    """etcd serving clients over TLS; no client certificate needed."""
    tls = EtcdTLS(cert_file=certs.server_cert, key_file=certs.server_key)
    with EtcdCluster.start(1, binary=etcd_binary, tls=tls) as cluster:
        assert cluster.members[0].client_url.startswith("https://")
        yield cluster.endpoints[0]


@pytest.fixture(scope="module")
def mtls_etcd(etcd_binary: str, certs: Certs) -> Iterator[str]:
    """etcd requiring a client certificate signed by the test CA."""
    tls = EtcdTLS(
        cert_file=certs.server_cert,
        key_file=certs.server_key,
        trusted_ca_file=certs.ca,
        client_cert_file=certs.client_cert,
        client_key_file=certs.client_key,
    )
    with EtcdCluster.start(1, binary=etcd_binary, tls=tls) as cluster:
        yield cluster.endpoints[0]


@pytest.fixture(scope="module")
def expired_etcd(etcd_binary: str, certs: Certs) -> Iterator[str]:
    """etcd whose own certificate expired yesterday."""
    tls = EtcdTLS(cert_file=certs.expired_server_cert, key_file=certs.expired_server_key)
    with EtcdCluster.start(1, binary=etcd_binary, tls=tls) as cluster:
        yield cluster.endpoints[0]


async def elect_and_observe(client: AsyncClient, name: str) -> None:
    """Unary calls, the keepalive stream and the watch stream all work."""
    async with client.session(ttl=5) as session:
        election = AsyncElection(session, name)
        await election.campaign("tls-candidate")
        assert election.is_leader() and await election.verify()
        async for leader in client.election_view(name).observe():
            assert isinstance(leader, LeaderInfo) and leader.value == b"tls-candidate"
            break
        await election.resign()


# -- working setups ------------------------------------------------------------------------------


async def test_tls_verified_with_a_ca_bundle(tls_etcd: str, certs: Certs) -> None:
    async with AsyncClient(tls_etcd, ca_file=certs.ca) as client:
        assert all(endpoint.secure for endpoint in client.config.endpoints)
        assert "https://" in repr(client)
        await elect_and_observe(client, "tls")
    async with AsyncClient(f"https://{tls_etcd}", ca_file=certs.ca) as client:
        assert (await client.get("/tls/none")).kv is None


async def test_the_server_name_can_be_overridden(tls_etcd: str, certs: Certs) -> None:
    async with AsyncClient(tls_etcd, ca_file=certs.ca, server_name="etcd.test") as client:
        assert (await client.get("/tls/none")).kv is None


async def test_mtls_with_a_client_certificate(mtls_etcd: str, certs: Certs) -> None:
    async with AsyncClient(
        mtls_etcd, ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key
    ) as client:
        await elect_and_observe(client, "mtls")


async def test_tls_settings_come_from_etcd_and_etcdctl_variables(
    mtls_etcd: str, certs: Certs
) -> None:
    environ = {
        "ETCD_ENDPOINTS": mtls_etcd,
        "ETCD_CACERT": certs.ca,
        "ETCDCTL_CERT": certs.client_cert,
        "ETCDCTL_KEY": certs.client_key,
        "ETCDCTL_CACERT": "/ignored/because/ETCD_CACERT/wins.pem",
    }
    config = ClientConfig.build(environ=environ)
    assert (config.ca_file, config.cert_file, config.key_file) == (
        certs.ca,
        certs.client_cert,
        certs.client_key,
    )
    async with AsyncClient(config=config) as client:
        assert (await client.get("/tls/none")).kv is None


# -- every bad certificate, its own clear error --------------------------------------------------


async def test_each_handshake_failure_has_its_own_clear_error(
    tls_etcd: str, mtls_etcd: str, expired_etcd: str, etcd_endpoint: str, certs: Certs
) -> None:
    cases: dict[str, tuple[str, dict[str, Any], str | None, str]] = {
        # case: (endpoint, settings, expected reason (None: plain ConnectionFailed), words)
        "unknown CA": (tls_etcd, {"ca_file": certs.other_ca}, "unknown-ca", "unknown CA?"),
        "system roots": (f"https://{tls_etcd}", {}, "unknown-ca", "pass the CA that signed"),
        "hostname": (
            tls_etcd,
            {"ca_file": certs.ca, "server_name": "wrong.example"},
            "hostname-mismatch",
            "not issued for the name 'wrong.example'",
        ),
        "expired": (expired_etcd, {"ca_file": certs.ca}, "expired", "certificate has expired"),
        "no client cert": (
            mtls_etcd,
            {"ca_file": certs.ca},
            "client-certificate-rejected",
            "requires a client certificate",
        ),
        "foreign client cert": (
            mtls_etcd,
            {
                "ca_file": certs.ca,
                "cert_file": certs.foreign_client_cert,
                "key_file": certs.foreign_client_key,
            },
            "client-certificate-rejected",
            f"rejected our client certificate {certs.foreign_client_cert}",
        ),
        "TLS to plaintext": (etcd_endpoint, {"ca_file": certs.ca}, "not-tls", "not speak TLS"),
        "plaintext to TLS": (tls_etcd, {}, None, "probably serves TLS"),
    }
    messages: dict[str, str] = {}
    for case, (endpoint, settings, reason, words) in cases.items():
        async with AsyncClient(endpoint, timeout=3, connect_timeout=2, **settings) as client:
            with pytest.raises(ConnectionFailed) as info:
                await client.get("/tls/none")
        error = info.value
        message = str(error)
        if reason is None:
            assert not isinstance(error, TLSHandshakeFailed), (case, message)
        else:
            assert isinstance(error, TLSHandshakeFailed), (case, message)
            assert error.reason == reason, (case, message)
            assert message.startswith(
                f"TLS handshake with etcd at https://{endpoint.split('/')[-1]}"
            )
        assert words in message, (case, message)
        assert "\n" not in message and "SSL_ERROR" not in message, (case, message)
        messages[case] = message
    # Different causes, different words.
    distinct = {case: m for case, m in messages.items() if case != "system roots"}
    assert len(set(distinct.values())) == len(distinct)


# -- files are checked when the configuration is built -------------------------------------------


def test_certificate_files_are_checked_before_connecting(tmp_path: Path, certs: Certs) -> None:
    encrypted_key = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key(Path(certs.client_key).read_bytes(), password=None)
    encrypted_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    missing = str(tmp_path / "missing.pem")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"ca_file": missing}, missing, "does not exist"),
        ({"ca_file": str(tmp_path)}, str(tmp_path), "is a directory"),
        ({"ca_file": str(not_pem)}, str(not_pem), "is not a PEM file"),
        ({"cert_file": certs.client_cert}, "key_file", "needs its key"),
        ({"key_file": certs.client_key}, "cert_file", "needs its key"),
        (
            {"cert_file": certs.client_cert, "key_file": certs.foreign_client_key},
            certs.foreign_client_key,
            "does not belong to the client certificate",
        ),
        (
            {"cert_file": certs.client_cert, "key_file": str(encrypted_key)},
            str(encrypted_key),
            "is encrypted",
        ),
        (
            {"cert_file": certs.expired_client_cert, "key_file": certs.expired_client_key},
            certs.expired_client_cert,
            "expired on",
        ),
        ({"ca_file": certs.client_key}, certs.client_key, "holds no usable certificate"),
    ]
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "unreadable.pem"
        unreadable.write_bytes(Path(certs.ca).read_bytes())
        unreadable.chmod(0)
        cases.append(({"ca_file": str(unreadable)}, str(unreadable), "permission denied"))
    for settings, named, words in cases:
        with pytest.raises(ConfigurationError) as info:
            ClientConfig.build("127.0.0.1:2379", environ={}, **settings)
        message = str(info.value)
        assert named in message and words in message, (settings, message)
        assert "\n" not in message
