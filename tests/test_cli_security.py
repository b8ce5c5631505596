"""The command line against etcd with mTLS and with authentication: etcdctl's option and
variable names, one-line errors with exit code 6, and a password that reaches neither the
logs nor the supervised command."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli_process import run_cli
from helpers.security import Certs, enable_auth, make_certs

from etcd_elector import AsyncClient, AsyncElection
from etcd_elector.cli._exit import ExitCode
from etcd_elector.testing import EtcdCluster, EtcdTLS

pytestmark = pytest.mark.timeout(60)

PASSWORD = "cli-S3cret-81d0"
NAMESPACE = "/apps/cli"


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


@pytest.fixture(scope="module")
def auth_etcd(etcd_binary: str) -> Iterator[str]:
    with EtcdCluster.start(1, binary=etcd_binary) as cluster:
        enable_auth(cluster.endpoints[0], {"alice": (PASSWORD, f"{NAMESPACE}/")})
        yield cluster.endpoints[0]


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("etcd-elector: error: ")
    return lines[0]


async def test_leader_over_mtls_with_cacert_cert_and_key(mtls_etcd: str, certs: Certs) -> None:
    tls = ["--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key]
    async with (
        AsyncClient(
            mtls_etcd, ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key
        ) as client,
        client.session(ttl=10) as session,
    ):
        await AsyncElection(session, "web").campaign("leader-over-mtls")
        done = await asyncio.to_thread(run_cli, "--endpoints", mtls_etcd, *tls, "leader", "web")
        assert done.returncode == 0, done.stderr
        assert "leader-over-mtls" in done.stdout
        # The same from etcdctl's variables.
        env = {
            "ETCD_ENDPOINTS": mtls_etcd,
            "ETCD_CACERT": certs.ca,
            "ETCD_CERT": certs.client_cert,
            "ETCD_KEY": certs.client_key,
        }
        done = await asyncio.to_thread(run_cli, "leader", "web", env=env)
        assert done.returncode == 0, done.stderr
        assert "leader-over-mtls" in done.stdout


def test_a_missing_certificate_file_is_a_configuration_error(certs: Certs) -> None:
    done = run_cli("--cacert", "/no/such/ca.pem", "leader", "web")
    line = one_error_line(done.stderr)
    assert "/no/such/ca.pem" in line and "--cacert" in line
    assert done.returncode == ExitCode.CONFIGURATION


def test_a_bad_password_exits_6_with_one_line(auth_etcd: str, tmp_path: Path) -> None:
    wrong = "wrong-" + PASSWORD
    done = run_cli(
        "--endpoints", auth_etcd, "--user", f"alice:{wrong}", "--log-level", "debug", "leader", "x"
    )
    assert done.returncode == ExitCode.AUTH, done.stderr
    errors = [line for line in done.stderr.splitlines() if "etcd-elector: error:" in line]
    assert len(errors) == 1 and "refused user 'alice'" in errors[0], done.stderr
    assert wrong not in done.stderr + done.stdout
    done = run_cli("--endpoints", auth_etcd, "--user", f"alice:{wrong}", "leader", "x")
    assert done.returncode == ExitCode.AUTH
    assert "wrong user name or password" in one_error_line(done.stderr)


def test_a_role_without_access_exits_6_naming_the_prefix(auth_etcd: str) -> None:
    env = {"ETCD_USER": "alice", "ETCD_PASSWORD": PASSWORD}
    done = run_cli("--endpoints", auth_etcd, "--namespace", "/apps/other", "leader", "x", env=env)
    assert done.returncode == ExitCode.AUTH
    line = one_error_line(done.stderr)
    assert "denied user 'alice' access to /apps/other/x/" in line


def test_run_with_a_password_file_keeps_the_password_from_the_command(
    auth_etcd: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    common = ["--endpoints", auth_etcd, "--namespace", NAMESPACE, "--log-level", "debug"]
    done = run_cli(
        *common,
        "--user",
        "alice",
        "--password-file",
        str(password_file),
        "run",
        "job",
        "--",
        "sh",
        "-c",
        'env; tr "\\0" " " < /proc/self/cmdline',
        env={"ETCD_PASSWORD": PASSWORD, "ETCDCTL_PASSWORD": PASSWORD},
    )
    assert done.returncode == 0, done.stderr
    assert "ETCD_ELECTOR_TOKEN=" in done.stdout  # the command ran, as leader
    assert "ETCD_PASSWORD" not in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
