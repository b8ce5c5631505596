"""Stopping ``campaign`` and ``run`` always withdraws from etcd, even when the stop signal
arrives twice at once: GNU ``timeout`` forwards a SIGINT to its child and then to its whole
process group, so the CLI gets it twice, nearly together. Only SIGKILL may leave a key behind.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
from helpers.cli_process import CliProcess, wait_until

from etcd_elector import Client

pytestmark = pytest.mark.timeout(300)

ATTEMPTS = 8  # the old race left the key behind in about half of the tries
TIMEOUT = ("timeout", "60")  # GNU timeout, run from a script: not --foreground
LONG_TTL = "30"  # a lease expiry would take this long: a quick handover proves a withdrawal
SLEEPER = "import time; time.sleep(100)"


def _candidate(command: str, value: str) -> list[str]:
    if command == "campaign":
        return ["campaign", "s", "--value", value]
    return [
        "run",
        "s",
        "--value",
        value,
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(100)",
    ]


def _common(endpoint: str, prefix: str) -> list[str]:
    return ["--json", "--endpoints", endpoint, "--namespace", prefix, "--ttl", LONG_TTL]


def _keys(client: Client, prefix: str) -> list[str]:
    return [kv.key.decode() for kv in client.get_prefix(f"{prefix}s/").kvs]


def _wait_written(client: Client, prefix: str, key: str) -> None:
    wait_until(lambda: key in _keys(client, prefix), 10, f"{key} was written")


@pytest.mark.parametrize("command", ["campaign", "run"])
def test_a_waiting_candidate_stopped_through_timeout_withdraws_its_key(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, command: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    leader = cli(*common, "campaign", "s", "--value", "L")
    leader_key = leader.expect("elected")["key"]
    with Client(etcd_endpoint) as client:
        for _ in range(ATTEMPTS):
            waiting = cli(*common, *_candidate(command, "W"), wrapper=TIMEOUT)
            key = waiting.expect("campaigning")["key"]  # announced as the key is written
            _wait_written(client, etcd_prefix, key)
            waiting.signal(signal.SIGINT)  # to timeout, as a script's `kill -INT $pid` does
            assert waiting.wait(timeout=30) == 128 + signal.SIGINT
            assert _keys(client, etcd_prefix) == [leader_key]
    leader.signal(signal.SIGTERM)
    assert leader.wait() == 128 + signal.SIGTERM


@pytest.mark.parametrize("command", ["campaign", "run"])
def test_a_leader_stopped_through_timeout_resigns_and_the_standby_leads_at_once(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, command: str
) -> None:
    with Client(etcd_endpoint) as client:
        for attempt in range(ATTEMPTS):
            prefix = f"{etcd_prefix}{attempt}/"
            common = _common(etcd_endpoint, prefix)
            stopped = cli(*common, *_candidate(command, "L"), wrapper=TIMEOUT)
            elected = stopped.expect("elected")
            if command == "run":
                stopped.expect("child_started")
            standby = cli(*common, "campaign", "s", "--value", "standby")
            standby_key = standby.expect("campaigning")["key"]
            stopped.signal(signal.SIGINT)
            assert stopped.wait(timeout=30) == 128 + signal.SIGINT
            # Gone at once, so the standby's key leads in etcd right away ...
            assert client.get(elected["key"]).kv is None
            assert _keys(client, prefix) == [standby_key]
            # ... and the standby sees it well before the old lease could have expired.
            took_over = standby.expect("elected", timeout=10)
            assert took_over["token"] > elected["token"]
            standby.signal(signal.SIGTERM)
            assert standby.wait() == 128 + signal.SIGTERM


def test_sighup_stops_a_candidate_cleanly(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    """A closed terminal (SIGHUP) is a stop signal like the others: resign, then exit."""
    candidate = cli(*_common(etcd_endpoint, etcd_prefix), "campaign", "s", "--value", "H")
    elected = candidate.expect("elected")
    candidate.signal(signal.SIGHUP)
    assert candidate.expect("resigned")["reason"] == "closed"
    assert candidate.wait() == 128 + signal.SIGHUP
    with Client(etcd_endpoint) as client:
        assert client.get(elected["key"]).kv is None


@pytest.mark.parametrize("role", ["waiting", "leader"])
@pytest.mark.parametrize("command", ["campaign", "run"])
def test_two_different_stop_signals_at_once_still_withdraw(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, command: str, role: str
) -> None:
    """Two different signals never merge in the kernel, so this always delivers two: the
    repeated-signal path is taken every time, not only when ``timeout``'s pair happens to
    arrive apart."""
    common = _common(etcd_endpoint, etcd_prefix)
    others = []
    if role == "waiting":
        others.append(cli(*common, "campaign", "s", "--value", "L"))
        others[0].expect("elected")
    stopped = cli(*common, *_candidate(command, "X"))
    key = stopped.expect("campaigning")["key"]
    if role == "leader":
        stopped.expect("child_started" if command == "run" else "elected")
    with Client(etcd_endpoint) as client:
        _wait_written(client, etcd_prefix, key)
        subprocess.run(
            # Sent while it is stopped, both are pending when it resumes: they arrive together
            # however busy the machine is (bash could otherwise be descheduled between them).
            [
                "bash",
                "-c",
                'kill -STOP "$1"; kill -INT "$1"; kill -TERM "$1"; kill -CONT "$1"',
                "kill",
                str(stopped.proc.pid),
            ],
            check=True,
            timeout=10,
        )
        # Whichever the process saw first sets the exit code.
        assert stopped.wait(timeout=30) in (128 + signal.SIGINT, 128 + signal.SIGTERM)
        assert key not in _keys(client, etcd_prefix)
    assert any(" again: still withdrawing" in line for line in stopped.stderr_lines)
