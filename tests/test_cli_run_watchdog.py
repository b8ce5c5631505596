"""``etcd-elector run``: the command's whole process tree never outlives the leadership, even
when the supervisor is SIGKILLed or frozen (SIGSTOP, Ctrl-Z). Real etcd, real processes, pids
checked in /proc, and heartbeats that show when each process last ran."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.cli_process import CliProcess, pid_gone, wait_until

from etcd_elector import Client

pytestmark = pytest.mark.timeout(120)

TREE = str(Path(__file__).parent / "helpers" / "tree_child.py")


class Tree:
    """The processes a command started, as it recorded them in its directory."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.extra: list[int] = []

    def python_tree(self, *mode: str) -> list[str]:
        return [sys.executable, TREE, str(self.where), *mode]

    def bash_sleeps(self) -> list[str]:
        """The command of the issue, ``sleep & sleep & wait``, telling us its sleeps' pids."""
        return [
            "bash",
            "-c",
            f"sleep 301 & echo $! > {self.where}/a; sleep 302 & echo $! > {self.where}/b; wait",
        ]

    def pids(self) -> list[int]:
        files = [self.where / "pids"] if (self.where / "pids").exists() else []
        files += [self.where / name for name in ("a", "b") if (self.where / name).exists()]
        found = [int(line) for path in files for line in path.read_text().split()]
        return found + self.extra

    def wait_started(self, expected: int) -> list[int]:
        wait_until(lambda: len(self.pids()) >= expected, 20, "the command's tree started")
        return self.pids()

    def last_beats(self) -> list[float]:
        """When each process last ran (0 for one that has not beaten yet)."""
        return [float(path.read_text() or 0) for path in self.where.glob("beat.*")]

    def gone(self) -> bool:
        return all(pid_gone(pid) for pid in self.pids())


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    made = Tree(tmp_path)
    yield made
    for pid in made.pids():  # never leave a process behind, even when a test fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _common(endpoint: str, prefix: str, ttl: int) -> list[str]:
    return ["--json", "--endpoints", endpoint, "--namespace", prefix, "--ttl", str(ttl)]


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0]


@pytest.mark.parametrize("command", ["bash sleeps", "double fork and setsid, ignoring SIGTERM"])
def test_a_killed_supervisor_leaves_no_process_of_the_tree_while_the_lease_still_holds(
    cli: Callable[..., CliProcess], tree: Tree, etcd_endpoint: str, etcd_prefix: str, command: str
) -> None:
    bash = command == "bash sleeps"
    argv = tree.bash_sleeps() if bash else tree.python_tree("ignore-term")
    # TTL 30: the local deadline is at least 30 - 4.5 (margin) - 10 (keepalive interval) =
    # 15.5 s after the kill, and etcd's expiry later still.
    supervisor = cli(*_common(etcd_endpoint, etcd_prefix, 30), "run", "gc", "--", *argv)
    elected = supervisor.expect("elected")
    started = supervisor.expect("child_started")
    if bash:
        tree.extra.append(started["pid"])
    pids = tree.wait_started(3 if bash else 4)
    assert started["watchdog"] not in pids and not any(pid_gone(pid) for pid in pids)

    supervisor.proc.kill()  # SIGKILL: no code of the supervisor runs any more
    killed_at = time.monotonic()
    supervisor.wait()
    wait_until(tree.gone, 15, "every process of the tree died")
    assert time.monotonic() - killed_at < 15.5  # before the earliest possible local deadline
    wait_until(lambda: pid_gone(started["watchdog"]), 10, "the watchdog exited")
    with Client(etcd_endpoint) as client:
        # Still there: the lease had not expired when the whole tree was already dead.
        assert client.get(elected["key"]).kv is not None


# Like an interactive shell running a job: the CLI in a process group of its own, whose parent
# (this wrapper) is in the same session. Only such a group gets stopped by SIGTSTP (Ctrl-Z);
# the kernel discards job-control stops aimed at an orphaned process group.
JOB_SHELL = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:], process_group=0))"


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[-1].split()[1])


@pytest.mark.parametrize(
    ("target", "signum", "mode"),
    [
        ("pid", signal.SIGSTOP, ("ignore-term",)),
        ("group", signal.SIGSTOP, ()),
        ("group", signal.SIGTSTP, ("ignore-term",)),  # a terminal's Ctrl-Z
    ],
    ids=["SIGSTOP-pid", "SIGSTOP-group", "SIGTSTP-group"],
)
def test_a_frozen_supervisor_still_stops_the_tree_before_a_standby_is_elected(
    cli: Callable[..., CliProcess],
    tree: Tree,
    etcd_endpoint: str,
    etcd_prefix: str,
    target: str,
    signum: int,
    mode: tuple[str, ...],
) -> None:
    common = _common(etcd_endpoint, etcd_prefix, 3)
    job = cli(
        *common,
        "run",
        "gc",
        "--",
        *tree.python_tree(*mode),
        wrapper=(sys.executable, "-c", JOB_SHELL),
    )
    elected = job.expect("elected")
    started = job.expect("child_started")
    supervisor = _parent(started["watchdog"])
    try:
        pids = tree.wait_started(4)
        standby = cli(*common, "campaign", "gc", "--value", "standby")
        standby.expect("campaigning")

        if target == "pid":
            os.kill(supervisor, signum)
        else:
            os.killpg(supervisor, signum)  # the job's process group, led by the supervisor
        wait_until(lambda: _state(supervisor) == "T", 10, "the supervisor is stopped")
        took_over = standby.expect("elected", timeout=30)
        assert took_over["token"] > elected["token"]
        # The supervisor is still frozen: its watchdog alone stopped the tree, and in time.
        assert _state(supervisor) == "T"
        assert all(pid_gone(pid) for pid in pids), [p for p in pids if not pid_gone(p)]
        beats = tree.last_beats()
        assert len(beats) == 4 and max(beats) < took_over["elected_at"]
        assert pid_gone(started["watchdog"])  # done (a zombie until the supervisor reaps it)

        os.kill(supervisor, signal.SIGCONT)
        exited = job.expect("child_exited", timeout=20)
        assert exited["sent"] == ("SIGKILL" if mode else "SIGTERM")
        assert exited["killed"] == (4 if mode else None)  # SIGTERM ignored: all needed SIGKILL
        assert job.expect("lost", timeout=20)["reason"] == "deadline"
        os.kill(supervisor, signal.SIGTERM)
        assert job.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(supervisor, signal.SIGKILL)


def test_renewals_keep_the_command_running_for_many_ttls(
    cli: Callable[..., CliProcess], tree: Tree, etcd_endpoint: str, etcd_prefix: str
) -> None:
    """The watchdog kills at the deadline it was last told: each renewal must reach it."""
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, 2), "run", "long", "--", *tree.python_tree()
    )
    supervisor.expect("child_started")
    pids = tree.wait_started(4)
    began = time.time()
    wait_until(lambda: min(tree.last_beats()) > began + 6, 30, "the tree ran for 3 TTLs")
    assert not any(pid_gone(pid) for pid in pids)
    assert [e["event"] for e in supervisor.events] == ["campaigning", "elected", "child_started"]
    supervisor.signal(signal.SIGTERM)
    assert supervisor.expect("child_exited")["sent"] == "SIGTERM"
    assert supervisor.wait() == 128 + signal.SIGTERM
    assert tree.gone()
