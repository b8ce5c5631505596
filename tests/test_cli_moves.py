"""Planned moves from the command line, end to end: real etcd, real processes, real signals.
``run --drain``, ``handoff [--to]``, ``--priority``, ``pause``/``resume``, and Go's observer
(``etcdctl elect -l``) agreeing with ours on who leads after each move."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.cli_process import CliProcess, pid_gone, run_cli, wait_until

from etcd_elector.testing import find_etcd_binary, recovery_bound

pytestmark = pytest.mark.timeout(120)

CHILD = str(Path(__file__).parent / "helpers" / "cli_child.py")


def _common(endpoint: str, prefix: str, ttl: int = 4) -> list[str]:
    return ["--json", "--endpoints", endpoint, "--namespace", prefix.rstrip("/"), "--ttl", str(ttl)]


def _plain(endpoint: str, prefix: str) -> list[str]:
    return ["--endpoints", endpoint, "--namespace", prefix.rstrip("/")]


def _ask(endpoint: str, prefix: str) -> list[str]:
    """The options of commands that hold no lease (handoff, pause, resume, status)."""
    return ["--json", *_plain(endpoint, prefix)]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    pid_file = tmp_path / "pid"
    if pid_file.exists():  # never leave a child behind, even when a test fails
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def _marker(where: Path) -> list[str]:
    path = where / "marker"
    return path.read_text().splitlines() if path.exists() else []


def _leader_value(endpoint: str, prefix: str) -> str | None:
    done = run_cli(*_plain(endpoint, prefix), "leader", "svc", "--print-value-only")
    return done.stdout.strip() if done.returncode == 0 else None


# -- drain, then release -----------------------------------------------------------------------


@pytest.mark.parametrize("stop_takes", [0.3, 0.8])
def test_sigterm_drains_the_command_before_the_successor_is_elected(
    cli: Callable[..., CliProcess],
    workdir: Path,
    etcd_endpoint: str,
    etcd_prefix: str,
    stop_takes: float,
) -> None:
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix),
        "run",
        "svc",
        "--drain",
        "3",
        "--",
        sys.executable,
        CHILD,
        str(workdir),
        "slow",
        str(stop_takes),
    )
    supervisor.expect("child_started")
    other = cli(*_common(etcd_endpoint, etcd_prefix), "campaign", "svc", "--value", "other")
    other.expect("campaigning")
    subprocess.run(["kill", "-TERM", str(supervisor.proc.pid)], check=True)  # as a script would
    supervisor.expect("draining")
    stopping = supervisor.expect("child_stopping")
    assert stopping["reason"] == "draining" and stopping["grace"] == 3
    exited = supervisor.expect("child_exited")
    assert (exited["code"], exited["sent"]) == (0, "SIGTERM")  # it finished in its budget
    elected = other.expect("elected")
    (line,) = _marker(workdir)
    last_action = float(line.split()[1])
    assert last_action < exited["time"] < elected["elected_at"]
    supervisor.expect("resigned")
    assert supervisor.wait() == 128 + signal.SIGTERM


def test_a_command_that_ignores_the_drain_is_killed_at_the_budget_then_released(
    cli: Callable[..., CliProcess], workdir: Path, etcd_endpoint: str, etcd_prefix: str
) -> None:
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix),
        "run",
        "svc",
        "--drain",
        "1",
        "--",
        sys.executable,
        CHILD,
        str(workdir),
        "ignore",
    )
    started = supervisor.expect("child_started")
    other = cli(*_common(etcd_endpoint, etcd_prefix), "campaign", "svc", "--value", "other")
    other.expect("campaigning")
    supervisor.signal(signal.SIGTERM)
    stopping = supervisor.expect("child_stopping")
    exited = supervisor.expect("child_exited")
    assert exited["sent"] == "SIGKILL" and exited["time"] - stopping["time"] >= 0.95
    elected = other.expect("elected")
    assert exited["time"] < elected["elected_at"]
    assert pid_gone(started["pid"])
    assert supervisor.wait() == 128 + signal.SIGTERM


# -- handoff ---------------------------------------------------------------------------------


def test_handoff_to_a_named_candidate(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    a = cli(*common, "campaign", "svc", "--value", "a")
    a.expect("elected")
    b = cli(*common, "campaign", "svc", "--value", "b")
    b.expect("campaigning")
    c = cli(*common, "campaign", "svc", "--value", "c")
    c.expect("campaigning")
    done = run_cli(*_ask(etcd_endpoint, etcd_prefix), "handoff", "svc", "--to", "c")
    assert done.returncode == 0, done.stderr
    events = [line for line in done.stdout.splitlines() if line]
    assert '"event":"handoff-requested"' in events[0] and '"value":"a"' in events[0]
    assert '"event":"handed-off"' in events[1] and '"value":"c"' in events[1]
    assert '"as_asked":true' in events[1]
    # Move events come from the elector's state stream, the term's end from its callback:
    # each in its own order.
    requested = a.expect("handoff-requested")
    assert requested["to"] == "c" and requested["reason"] == "request"
    a.expect("draining")
    handed = a.expect("handed-off")
    assert handed["successor"] == c.expect("elected")["key"]
    resigned = [e for e in a.events if e.get("event") == "resigned"]
    assert [e["reason"] for e in resigned] == ["handed_off"]
    assert _leader_value(etcd_endpoint, etcd_prefix) == "c"
    # Without --to: a drained resign to the next in line (a and b queued again, in either
    # order, behind c).
    listed = run_cli(*_ask(etcd_endpoint, etcd_prefix), "status", "svc")
    order = [json.loads(line) for line in listed.stdout.splitlines()]
    values = [e["value"] for e in order if e["event"] == "candidate"]
    assert values[0] == "c" and sorted(values[1:]) == ["a", "b"]
    done = run_cli(*_ask(etcd_endpoint, etcd_prefix), "handoff", "svc")
    assert done.returncode == 0, done.stderr
    {"a": a, "b": b}[values[1]].expect("elected")
    assert _leader_value(etcd_endpoint, etcd_prefix) == values[1]
    # Bad requests, each with its own exit code and one line.
    nobody = run_cli(*_ask(etcd_endpoint, etcd_prefix), "handoff", "svc", "--to", "nobody")
    assert nobody.returncode == 11 and "no candidate" in nobody.stderr
    assert len(nobody.stderr.strip().splitlines()) == 1
    empty = run_cli(*_ask(etcd_endpoint, etcd_prefix + "empty/"), "handoff", "svc")
    assert empty.returncode == 3


def test_a_leader_that_ignores_requests_times_out_and_the_request_is_withdrawn(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    """A candidate of an older release (here: a plain etcd key, as Go's recipe writes it)
    never carries a request out: handoff says so (exit 12) and leaves nothing behind."""
    namespace = etcd_prefix.rstrip("/")
    etcdctl = str(Path(find_etcd_binary()).with_name("etcdctl"))
    lease = subprocess.run(
        [etcdctl, "--endpoints", etcd_endpoint, "lease", "grant", "30"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    subprocess.run(
        [
            etcdctl,
            "--endpoints",
            etcd_endpoint,
            "put",
            f"{namespace}/svc/{lease}",
            "old",
            "--lease",
            lease,
        ],
        capture_output=True,
        check=True,
    )
    done = run_cli(*_ask(etcd_endpoint, etcd_prefix), "handoff", "svc", "--wait", "0.5")
    assert done.returncode == 12 and "withdrawn" in done.stderr
    keys = subprocess.run(
        [
            etcdctl,
            "--endpoints",
            etcd_endpoint,
            "get",
            f"{namespace}/svc#moves/",
            "--prefix",
            "--keys-only",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "handoff-request" not in keys
    paused = run_cli(*_ask(etcd_endpoint, etcd_prefix), "pause", "svc", "--wait", "0.5")
    assert paused.returncode == 12 and "pause stays" in paused.stderr


def test_the_named_successor_killed_mid_handoff_leaves_a_leader_within_ttl(
    cli: Callable[..., CliProcess], workdir: Path, etcd_endpoint: str, etcd_prefix: str
) -> None:
    ttl = 2
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, ttl),
        "run",
        "svc",
        "--value",
        "a",
        "--drain",
        "2",
        "--",
        sys.executable,
        CHILD,
        str(workdir),
        "slow",
        "0.5",
    )
    supervisor.expect("child_started")
    b = cli(*_common(etcd_endpoint, etcd_prefix, ttl), "campaign", "svc", "--value", "b")
    b.expect("campaigning")
    c = cli(*_common(etcd_endpoint, etcd_prefix, ttl), "campaign", "svc", "--value", "c")
    c.expect("campaigning")
    handoff = cli(*_ask(etcd_endpoint, etcd_prefix), "handoff", "svc", "--to", "c")
    supervisor.expect("draining")
    killed_at = time.time()
    os.killpg(c.proc.pid, signal.SIGKILL)  # mid-handoff: the leader is still draining
    c.wait()
    elected = b.expect("elected", timeout=ttl + 10)
    # No stall: the dead successor costs what any crashed leader costs, its lease's expiry
    # (TTL after its last renewal, found by etcd's 0.5 s sweep) and a campaign; the kit's
    # bound for a candidate fault, the same as for a crash without any handoff.
    bound = recovery_bound("candidate", ttl=ttl, election_timeout=0.5, heartbeat=0.05)
    took = elected["elected_at"] - killed_at
    assert took <= bound.seconds, (took, bound.why)
    print(f"\nsuccessor killed mid-handoff: a leader again {took:.3f}s after the kill")
    assert handoff.wait() == 0  # someone other than a leads
    assert _leader_value(etcd_endpoint, etcd_prefix) == "b"


# -- preferred leaders -------------------------------------------------------------------------


def test_a_higher_priority_candidate_takes_over_and_leaves_again(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    a = cli(*common, "campaign", "svc", "--value", "a")
    a.expect("elected")
    standby = cli(*common, "campaign", "svc", "--value", "standby", "--priority", "0")
    standby.expect("standby")
    preferred = cli(*common, "campaign", "svc", "--value", "p", "--priority", "5")
    preferred.expect("elected")
    assert a.expect("resigned")["reason"] == "handed_off"
    assert _leader_value(etcd_endpoint, etcd_prefix) == "p"
    preferred.signal(signal.SIGTERM)
    assert preferred.wait() == 128 + signal.SIGTERM
    a.expect("elected")  # normal order again
    assert not [e for e in standby.events if e.get("event") == "elected"]
    bad = run_cli(*common, "campaign", "svc", "--priority", "-1")
    assert bad.returncode == 4 and "--priority" in bad.stderr


# -- pause and resume ------------------------------------------------------------------------


def test_pause_and_resume(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    a = cli(*common, "campaign", "svc", "--value", "a")
    a.expect("elected")
    b = cli(*common, "campaign", "svc", "--value", "b")
    b.expect("campaigning")
    observer = cli(*_ask(etcd_endpoint, etcd_prefix), "observe", "svc")
    observer.expect("leader")
    done = run_cli(
        *_ask(etcd_endpoint, etcd_prefix), "pause", "svc", "--reason", "schema migration"
    )
    assert done.returncode == 0, done.stderr
    assert '"event":"paused"' in done.stdout and '"reason":"schema migration"' in done.stdout
    assert a.expect("resigned")["reason"] == "paused"
    b.expect("paused")
    assert run_cli(*_plain(etcd_endpoint, etcd_prefix), "leader", "svc").returncode == 3
    status = run_cli(*_plain(etcd_endpoint, etcd_prefix), "status", "svc")
    assert "PAUSED" in status.stdout and "schema migration" in status.stdout
    status_json = run_cli(*_ask(etcd_endpoint, etcd_prefix), "status", "svc")
    assert '"paused":{"by":"etcd-elector@' in status_json.stdout
    done = run_cli(*_ask(etcd_endpoint, etcd_prefix), "resume", "svc")
    assert done.returncode == 0 and '"was_paused":true' in done.stdout
    leader = None
    for process in (a, b):
        with contextlib.suppress(AssertionError):
            process.expect("resumed", timeout=10)
    wait_until(lambda: _leader_value(etcd_endpoint, etcd_prefix) in ("a", "b"), 20, "a leader")
    leader = _leader_value(etcd_endpoint, etcd_prefix)
    assert leader in ("a", "b")
    paused = observer.expect("paused")
    assert paused["reason"] == "schema migration" and paused["by"].startswith("etcd-elector@")
    observer.expect("resumed")
    again = run_cli(*_ask(etcd_endpoint, etcd_prefix), "resume", "svc")
    assert again.returncode == 0 and '"was_paused":false' in again.stdout
    long = run_cli(*_ask(etcd_endpoint, etcd_prefix), "pause", "svc", "--reason", "x" * 201)
    assert long.returncode == 4


# -- Go's observer agrees ------------------------------------------------------------------


class GoObserver:
    """``etcdctl elect -l PREFIX``: each leader it reports (it prints key, then value)."""

    def __init__(self, endpoint: str, name: str) -> None:
        etcdctl = str(Path(find_etcd_binary()).with_name("etcdctl"))
        self.proc = subprocess.Popen(
            [etcdctl, "--endpoints", endpoint, "elect", "-l", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.latest: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def leader_value(self) -> str | None:
        """The value of the last leader printed so far (lines come as key, value)."""
        while True:
            try:
                key = self.lines.get_nowait()
            except queue.Empty:
                return self.latest
            self.latest = self.lines.get(timeout=5)
            del key

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)  # it reads to end of file, then the pipe can close
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def test_etcdctl_elect_l_names_the_same_leader_through_handoffs_and_priority_changes(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    common = _common(etcd_endpoint, etcd_prefix)
    namespace = etcd_prefix.rstrip("/")
    go = GoObserver(etcd_endpoint, f"{namespace}/svc")
    try:
        first = cli(*common, "campaign", "svc", "--value", "a")
        first.expect("elected")
        for value in ("b", "c"):
            cli(*common, "campaign", "svc", "--value", value).expect("campaigning")

        def agree(expected: str) -> None:
            wait_until(lambda: go.leader_value() == expected, 20, f"etcdctl shows {expected}")
            assert _leader_value(etcd_endpoint, etcd_prefix) == expected

        agree("a")
        for target in ("c", "b", "a", "c"):
            done = run_cli(*_ask(etcd_endpoint, etcd_prefix), "handoff", "svc", "--to", target)
            assert done.returncode == 0, done.stderr
            agree(target)
        preferred = cli(*common, "campaign", "svc", "--value", "p", "--priority", "9")
        preferred.expect("elected")
        agree("p")
        preferred.signal(signal.SIGTERM)
        preferred.wait()
        wait_until(lambda: _leader_value(etcd_endpoint, etcd_prefix) != "p", 20, "p gone")
        agree(_leader_value(etcd_endpoint, etcd_prefix) or "")
    finally:
        go.close()
