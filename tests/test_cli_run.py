"""``etcd-elector run``: the supervisor, end to end with real etcd, real signals and a real
child command (``tests/helpers/cli_child.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.cli_process import CliProcess, pid_gone, wait_until

from etcd_elector.testing import FaultProxy

pytestmark = pytest.mark.timeout(90)

CHILD = str(Path(__file__).parent / "helpers" / "cli_child.py")


class Child:
    """What the child command left in its directory."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def argv(self, mode: str, *extra: str) -> list[str]:
        return [sys.executable, CHILD, str(self.where), mode, *extra]

    @property
    def pid(self) -> int:
        wait_until(lambda: (self.where / "pid").exists(), 20, "the child wrote its pid")
        return int((self.where / "pid").read_text())

    def env(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads((self.where / "env.json").read_text())
        return loaded

    def marker(self) -> list[str]:
        path = self.where / "marker"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Child]:
    made = Child(tmp_path)
    yield made
    pid_file = tmp_path / "pid"
    if pid_file.exists():  # never leave a child behind, even when a test fails
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def _common(endpoint: str, prefix: str, ttl: int) -> list[str]:
    return ["--json", "--endpoints", endpoint, "--namespace", prefix.rstrip("/"), "--ttl", str(ttl)]


def test_child_is_dead_before_another_candidate_is_elected(
    cli: Callable[..., CliProcess],
    child: Child,
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    supervisor = cli(
        *_common(proxy.endpoint, etcd_prefix, 2), "run", "svc", "--", *child.argv("trap")
    )
    elected = supervisor.expect("elected")
    started = supervisor.expect("child_started")
    assert started["pid"] == child.pid
    other = cli(*_common(etcd_endpoint, etcd_prefix, 2), "campaign", "svc", "--value", "other")
    other.expect("campaigning")

    proxy.blackhole()
    stopping = supervisor.expect("child_stopping", timeout=10)
    assert stopping["reason"] == "lease renewal overdue"
    exited = supervisor.expect("child_exited", timeout=10)
    takeover = other.expect("elected", timeout=15)
    assert takeover["token"] > elected["token"]
    # The child got SIGTERM (it trapped it), and was reaped before the other was elected.
    (line,) = child.marker()
    terminated_at = float(line.split()[1])
    assert terminated_at < exited["time"] < takeover["time"]
    # It handled SIGTERM and exited 0: sent SIGTERM, but it did not die of a signal.
    assert (exited["code"], exited["signal"], exited["sent"]) == (0, None, "SIGTERM")
    assert pid_gone(started["pid"])
    lost = supervisor.expect("lost", timeout=10)
    assert lost["ended_at"] < takeover["elected_at"]
    # Not --once: it keeps campaigning (and cannot win while cut off).
    assert supervisor.proc.poll() is None
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 128 + signal.SIGTERM


@pytest.mark.parametrize(
    ("mode", "died_of", "sent", "code"),
    [("trap", None, "SIGTERM", 0), ("ignore", "SIGKILL", "SIGKILL", 137)],
)
def test_stop_sends_sigterm_first_and_sigkill_only_to_a_child_that_ignores_it(
    cli: Callable[..., CliProcess],
    child: Child,
    etcd_endpoint: str,
    etcd_prefix: str,
    mode: str,
    died_of: str | None,
    sent: str,
    code: int,
) -> None:
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, 4),
        "run",
        "stop",
        "--grace",
        "1",
        "--",
        *child.argv(mode),
    )
    started = supervisor.expect("child_started")
    pid = child.pid
    assert started["pid"] == pid
    supervisor.signal(signal.SIGTERM)
    stopping = supervisor.expect("child_stopping")
    assert stopping["reason"] == "signal" and stopping["grace"] == 1
    exited = supervisor.expect("child_exited")
    assert (exited["signal"], exited["sent"], exited["code"]) == (died_of, sent, code)
    if mode == "trap":
        assert len(child.marker()) == 1
        assert exited["time"] - stopping["time"] < 1
    else:
        assert child.marker() == []
        assert exited["time"] - stopping["time"] >= 0.95
    supervisor.expect("resigned")
    assert supervisor.wait() == 128 + signal.SIGTERM
    assert pid_gone(pid)


def test_child_environment_carries_the_term_and_its_exit_code_propagates(
    cli: Callable[..., CliProcess], child: Child, etcd_endpoint: str, etcd_prefix: str
) -> None:
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, 3), "run", "envy", "--", *child.argv("exit", "3")
    )
    elected = supervisor.expect("elected")
    exited = supervisor.expect("child_exited")
    assert exited["code"] == 3
    resigned = supervisor.expect("resigned")
    assert resigned["reason"] == "closed"
    assert supervisor.wait() == 3
    assert child.env() == {
        "ETCD_ELECTOR_ELECTION": "envy",
        "ETCD_ELECTOR_KEY": elected["key"],
        "ETCD_ELECTOR_LEASE": elected["lease"],
        "ETCD_ELECTOR_TOKEN": str(elected["token"]),
    }


def test_restart_on_failure_restarts_while_leader(
    cli: Callable[..., CliProcess], child: Child, etcd_endpoint: str, etcd_prefix: str
) -> None:
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, 3),
        "run",
        "flaky",
        "--restart",
        "on-failure",
        "--",
        *child.argv("flaky"),
    )
    first = supervisor.expect("child_started")
    assert supervisor.expect("child_exited")["code"] == 1
    supervisor.expect("child_restarting")
    second = supervisor.expect("child_started")
    assert second["pid"] != first["pid"] and second["token"] == first["token"]
    wait_until(lambda: (child.where / "runs").read_text() == "2", 20, "second run")
    supervisor.signal(signal.SIGINT)
    supervisor.expect("resigned")
    assert supervisor.wait() == 128 + signal.SIGINT


def test_a_second_sigint_kills_the_child_group_at_once(
    cli: Callable[..., CliProcess], child: Child, etcd_endpoint: str, etcd_prefix: str
) -> None:
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, 10),
        "run",
        "stubborn",
        "--grace",
        "3",
        "--",
        *child.argv("ignore"),
    )
    supervisor.expect("child_started")
    pid = child.pid
    supervisor.signal(signal.SIGINT)
    stopping = supervisor.expect("child_stopping")
    assert stopping["grace"] == 3
    supervisor.signal(signal.SIGINT)
    supervisor.expect("child_killed")
    exited = supervisor.expect("child_exited")
    assert exited["code"] == 137 and exited["time"] - stopping["time"] < 2.5
    assert supervisor.wait() == 128 + signal.SIGINT
    assert pid_gone(pid)


def test_a_killed_supervisor_leaves_no_child(
    cli: Callable[..., CliProcess], child: Child, etcd_endpoint: str, etcd_prefix: str
) -> None:
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, 3), "run", "orphan", "--", *child.argv("ignore")
    )
    supervisor.expect("child_started")
    pid = child.pid
    supervisor.proc.kill()  # SIGKILL: no cleanup runs, only the parent-death signal
    supervisor.wait()
    wait_until(lambda: pid_gone(pid), 10, "the child died with its supervisor")


def test_run_once_exits_7_after_the_loss_with_the_child_gone(
    cli: Callable[..., CliProcess],
    child: Child,
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    supervisor = cli(
        *_common(proxy.endpoint, etcd_prefix, 2),
        "run",
        "once",
        "--once",
        "--",
        *child.argv("ignore"),
    )
    supervisor.expect("child_started")
    pid = child.pid
    proxy.blackhole()
    exited = supervisor.expect("child_exited", timeout=10)
    assert (exited["code"], exited["signal"], exited["sent"]) == (137, "SIGKILL", "SIGKILL")
    lost = supervisor.expect("lost", timeout=10)
    assert lost["reason"] == "deadline"
    assert exited["time"] <= lost["time"]
    assert supervisor.wait(timeout=30) == 7
    assert pid_gone(pid)
