"""``etcd-elector`` campaign, observe, leader, status and etcd, end to end as subprocesses
against a real etcd, reading their ``--json`` lines."""

from __future__ import annotations

import base64
import json
import signal
import socket
from collections.abc import Callable
from typing import Any

import pytest
from helpers.cli_process import CliProcess, run_cli, wait_until

from etcd_elector.cli._exit import ExitCode
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
    assert base64.b64decode(elected["value_base64"]) == b"alpha"
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


def test_options_in_seconds_also_take_a_unit(etcd_endpoint: str, etcd_prefix: str) -> None:
    """``--timeout 1500ms``, ``--wait 2s``: written as every other duration of the command."""
    base = ["--endpoints", etcd_endpoint, "--namespace", etcd_prefix.rstrip("/")]
    leader = run_cli(*base, "--timeout", "1500ms", "leader", "quiet")
    assert (leader.returncode, leader.stderr) == (3, "")
    handoff = run_cli(*base, "handoff", "quiet", "--wait", "2s")
    assert handoff.returncode == 3, handoff.stderr  # no leader to ask, as with --wait 2
    assert "no leader" in handoff.stderr


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


def _leader_json(common: list[str], name: str) -> dict[str, Any]:
    done = run_cli(*common, "leader", name)
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def test_a_killed_leader_shows_its_lease_going_stale_until_etcd_drops_it(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    doomed = cli(*common, "--ttl", "15", "campaign", "stale", "--value", "doomed")
    elected = doomed.expect("elected")
    fresh = _leader_json(common, "stale")
    assert fresh["granted_ttl"] >= 15
    assert fresh["renewed_ago"] + fresh["ttl"] == fresh["granted_ttl"]
    assert fresh["time"] < fresh["expires_at"] <= fresh["time"] + fresh["ttl"] + 1

    doomed.signal(signal.SIGKILL)  # no resign: etcd keeps the key until the lease expires
    doomed.wait()
    seen: list[dict[str, Any]] = []

    def stale() -> bool:
        seen.append(_leader_json(common, "stale"))
        return bool(seen[-1]["renewed_ago"] >= 3)

    wait_until(stale, timeout=30, what="the dead leader's lease is seen unrenewed")
    record = seen[-1]
    assert (record["value"], record["token"]) == ("doomed", elected["token"])  # etcd's truth
    assert record["renewed_ago"] + record["ttl"] == record["granted_ttl"]
    assert record["expires_at"] <= record["time"] + record["granted_ttl"] - 3 + 1

    text = run_cli(*common[1:], "leader", "stale")  # without --json
    (line,) = text.stdout.splitlines()
    assert "value=doomed" in line and "renewed_ago=" in line and "expires_within=" in line
    _title, columns, row = run_cli(*common[1:], "status", "stale").stdout.splitlines()
    assert columns.split() == ["#", "VALUE", "LEASE", "RENEWED", "EXPIRES", "TOKEN"]
    assert row.split()[1:3] == ["leader", "doomed"] and " ago " in row and "<=" in row

    def dropped() -> bool:
        return run_cli(*common, "leader", "stale").returncode == ExitCode.NO_LEADER

    wait_until(dropped, timeout=40, what="etcd expires the dead leader's lease")


def test_write_out_json_is_etcdctl_s_spelling_of_json(etcd_endpoint: str, etcd_prefix: str) -> None:
    base = ["--endpoints", etcd_endpoint, "--namespace", etcd_prefix.rstrip("/")]
    for flags in (["-w", "json"], ["--write-out", "json"], ["--write-out=json"]):
        done = run_cli(*base, *flags, "leader", "quiet")
        assert done.returncode == 3, done.stderr
        assert json.loads(done.stdout)["event"] == "no_leader"
    simple = run_cli(*base, "-w", "simple", "leader", "quiet")
    assert simple.stdout == "no leader in election quiet\n"


def test_settings_a_command_does_not_use_are_not_checked_against_it(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    env = {"ETCD_ELECTOR_TTL": "0", "ETCD_ELECTOR_IDENTITY": "two\nlines"}
    base = ["--endpoints", etcd_endpoint, "--namespace", etcd_prefix.rstrip("/")]
    for command in ("leader", "status"):
        done = run_cli(*base, command, "quiet", env=env)
        assert done.returncode in (0, 3) and done.stderr == "", done.stderr


@pytest.mark.parametrize(
    ("timeout", "code"),
    [("1e10", ExitCode.CONFIGURATION), ("inf", ExitCode.CONFIGURATION), ("nan", 4), ("3600", 3)],
)
def test_timeout_is_bounded_with_a_clear_message(
    etcd_endpoint: str, etcd_prefix: str, timeout: str, code: int
) -> None:
    base = ["--endpoints", etcd_endpoint, "--namespace", etcd_prefix.rstrip("/")]
    done = run_cli(*base, "--timeout", timeout, "leader", "quiet")
    assert done.returncode == code, done.stderr
    if code == ExitCode.CONFIGURATION:
        assert done.stderr == (
            "etcd-elector: error: --timeout must be between 0.01 and 3600 seconds, "
            f"got {timeout!r}\n"
        )


def test_debug_logs_are_ours_and_debug_all_adds_grpc_and_asyncio(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    loggers: dict[str, set[str]] = {}
    for level in ("debug", "debug-all"):
        candidate = cli(*common, "--log-level", level, "--ttl", "3", "campaign", "chatty")
        candidate.expect("elected")
        candidate.signal(signal.SIGTERM)
        candidate.expect("resigned")
        candidate.wait()
        # "<date> <time> LEVEL logger: message"
        loggers[level] = {line.split()[3].rstrip(":") for line in candidate.stderr_lines}
    assert "etcd_elector._election._session" in loggers["debug"]
    assert all(name.startswith("etcd_elector") for name in loggers["debug"]), loggers["debug"]
    assert any(name.startswith(("grpc", "asyncio")) for name in loggers["debug-all"])
