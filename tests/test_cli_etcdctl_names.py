"""The etcdctl option names users will try against a real etcd: ``--password`` (which warns
that the process list shows it), and a TLS server name for a certificate that does not carry
the endpoint's host, named by the hostname-mismatch error that needs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from helpers.cli_process import run_cli
from helpers.security import enable_auth

from etcd_elector.cli._exit import ExitCode
from etcd_elector.testing import EtcdCluster, EtcdTLS

pytestmark = pytest.mark.timeout(60)

PASSWORD = "etcdctl-Pw-5e2a"
SERVER_NAME = "etcd.internal"  # the only name in the certificate: not 127.0.0.1


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.fixture(scope="module")
def misnamed_etcd(
    etcd_binary: str, ca: tuple[trustme.CA, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """etcd serving TLS with a certificate for SERVER_NAME only, reached as 127.0.0.1."""
    folder = tmp_path_factory.mktemp("server")
    leaf = ca[0].issue_cert(SERVER_NAME)
    cert, key = folder / "cert.pem", folder / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    tls = EtcdTLS(cert_file=str(cert), key_file=str(key))
    with EtcdCluster.start(1, binary=etcd_binary, tls=tls) as cluster:
        yield cluster.endpoints[0]


@pytest.fixture(scope="module")
def auth_etcd(etcd_binary: str) -> Iterator[str]:
    with EtcdCluster.start(1, binary=etcd_binary) as cluster:
        enable_auth(cluster.endpoints[0], {"carol": (PASSWORD, "/etcdctl/")})
        yield cluster.endpoints[0]


def test_hostname_mismatch_names_the_option_and_server_name_fixes_it(
    misnamed_etcd: str, ca: tuple[trustme.CA, Path]
) -> None:
    base = ["--endpoints", misnamed_etcd, "--cacert", str(ca[1]), "--namespace", "/etcdctl"]
    refused = run_cli(*base, "leader", "x")
    assert refused.returncode == ExitCode.UNREACHABLE, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert "hostname mismatch" in line and "--server-name" in line
    named = run_cli(*base, "--server-name", SERVER_NAME, "leader", "x")
    assert named.returncode == ExitCode.NO_LEADER, named.stderr
    assert named.stdout == "no leader in election x\n"


def test_server_name_without_tls_is_a_configuration_error(auth_etcd: str) -> None:
    done = run_cli("--endpoints", auth_etcd, "--server-name", SERVER_NAME, "leader", "x")
    assert done.returncode == ExitCode.CONFIGURATION
    assert "--server-name is for TLS" in done.stderr


def test_password_works_and_warns_that_the_process_list_shows_it(auth_etcd: str) -> None:
    base = ["--endpoints", auth_etcd, "--namespace", "/etcdctl", "--user", "carol"]
    done = run_cli(*base, "--password", PASSWORD, "leader", "x")
    assert done.returncode == ExitCode.NO_LEADER, done.stderr
    (warning,) = done.stderr.splitlines()
    assert warning.startswith("etcd-elector: warning: --password is visible to other local")
    assert PASSWORD not in done.stderr + done.stdout
    wrong = run_cli(*base, "--password", "not-" + PASSWORD, "leader", "x")
    assert wrong.returncode == ExitCode.AUTH
    assert PASSWORD not in wrong.stderr


def test_the_password_is_given_once(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    done = run_cli(
        "--user", "carol", "--password", PASSWORD, "--password-file", str(secret), "leader", "x"
    )
    assert done.returncode == ExitCode.CONFIGURATION
    assert "give the password once" in done.stderr.splitlines()[-1]
