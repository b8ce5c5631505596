"""``etcd-elector`` campaign, observe, leader, status and etcd, end to end as subprocesses
against a real etcd, reading their ``--json`` lines."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable

import pytest
from helpers.cli_process import CliProcess, run_cli

from etcd_elector.testing import FaultProxy

pytestmark = pytest.mark.timeout(90)


def _common(endpoint: str, prefix: str) -> list[str]:
    return ["--json", "--endpoints", endpoint, "--namespace", prefix.rstrip("/")]


def test_campaign_resigns_on_sigterm_and_the_next_candidate_takes_over(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    observer = cli(*common, "observe", "jobs")
    assert observer.expect("no_leader")["election"] == "jobs"

    first = cli(*common, "--ttl", "5", "campaign", "jobs", "--value", "alpha")
    elected = first.expect("elected")
    assert elected["value"] == "alpha"
    assert elected["key"] == f"{etcd_prefix.rstrip('/')}/jobs/{elected['lease']}"
    int(elected["lease"], 16)
    assert isinstance(elected["token"], int) and isinstance(elected["time"], float)
    seen = observer.expect("leader")
    assert (seen["value"], seen["token"]) == ("alpha", elected["token"])

    second = cli(*common, "campaign", "jobs", "--value", "beta")
    second.expect("campaigning")

    leader = run_cli(*common, "leader", "jobs")
    assert leader.returncode == 0, leader.stderr
    (line,) = leader.stdout.splitlines()
    assert json.loads(line)["value"] == "alpha"

    status = run_cli(*common, "status", "jobs")
    assert status.returncode == 0, status.stderr
    records = [json.loads(line) for line in status.stdout.splitlines()]
    candidates = [r for r in records if r["event"] == "candidate"]
    assert [c["value"] for c in candidates] == ["alpha", "beta"]
    assert [c["leader"] for c in candidates] == [True, False]
    assert candidates[0]["lease"] == elected["lease"] and candidates[0]["token"] == elected["token"]
    assert all(0 < c["ttl"] <= 10 for c in candidates)
    assert candidates[0]["token"] < candidates[1]["token"]
    assert records[-1]["event"] == "status" and records[-1]["candidates"] == 2

    first.signal(signal.SIGTERM)
    resigned = first.expect("resigned")
    assert resigned["token"] == elected["token"]
    assert first.wait() == 128 + signal.SIGTERM
    took_over = second.expect("elected")
    assert took_over["value"] == "beta" and took_over["token"] > elected["token"]
    assert resigned["ended_at"] <= took_over["elected_at"]
    assert observer.expect("leader")["value"] == "beta"

    second.signal(signal.SIGINT)
    second.expect("resigned")
    assert second.wait() == 128 + signal.SIGINT
    observer.expect("no_leader")
    observer.signal(signal.SIGINT)
    assert observer.wait() == 128 + signal.SIGINT
    for process in (first, second, observer):
        assert process.stderr_lines == []


def test_human_output_of_leader_and_status(etcd_endpoint: str, etcd_prefix: str) -> None:
    base = ["--endpoints", etcd_endpoint, "--namespace", etcd_prefix.rstrip("/")]
    none = run_cli(*base, "leader", "quiet")
    assert none.returncode == 3
    assert none.stdout.strip() == "no leader in election quiet" and none.stderr == ""
    empty = run_cli(*base, "status", "quiet")
    assert empty.returncode == 0 and "no candidates" in empty.stdout


def test_campaign_once_reports_the_loss_and_exits_7(
    cli: Callable[..., CliProcess],
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    candidate = cli(
        *_common(proxy.endpoint, etcd_prefix), "--ttl", "2", "campaign", "cut", "--once"
    )
    elected = candidate.expect("elected")
    proxy.blackhole()
    lost = candidate.expect("lost", timeout=10)
    assert lost["reason"] == "deadline" and lost["token"] == elected["token"]
    assert lost["ended_at"] < lost["time"]
    assert candidate.wait(timeout=30) == 7


def test_global_options_come_from_the_environment_or_after_the_command(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    after = run_cli(
        "leader",
        "env",
        "--endpoints",
        etcd_endpoint,
        "--namespace",
        etcd_prefix.rstrip("/"),
        "--json",
    )
    assert after.returncode == 3, after.stderr
    assert json.loads(after.stdout)["event"] == "no_leader"
    from_env = run_cli(
        "--json",
        "leader",
        "env",
        env={"ETCDCTL_ENDPOINTS": etcd_endpoint, "ETCD_ELECTOR_NAMESPACE": etcd_prefix.rstrip("/")},
    )
    assert from_env.returncode == 3, from_env.stderr
    preferred = run_cli(
        "--json",
        "leader",
        "env",
        env={"ETCD_ENDPOINTS": etcd_endpoint, "ETCDCTL_ENDPOINTS": "127.0.0.1:1"},
    )
    assert preferred.returncode == 3, preferred.stderr


def _port_open(endpoint: str) -> bool:
    host, port = endpoint.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def test_etcd_dev_server_serves_until_interrupted(cli: Callable[..., CliProcess]) -> None:
    server = cli("--json", "etcd")
    ready = server.expect("etcd_ready", timeout=40)
    (endpoint,) = ready["endpoints"]
    leader = run_cli("--endpoints", endpoint, "leader", "anything")
    assert leader.returncode == 3, leader.stderr
    server.signal(signal.SIGINT)
    assert server.wait(timeout=30) == 128 + signal.SIGINT
    server.expect("etcd_stopped")
    assert not _port_open(endpoint)
