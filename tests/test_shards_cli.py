"""``etcd-elector shards``: run a command per owned shard, status and observe, end to end with
real etcd, real processes and real signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.cli_process import CliProcess, pid_gone, run_cli, wait_until

from etcd_elector.testing import FaultProxy

pytestmark = pytest.mark.timeout(120)

CHILD = str(Path(__file__).parent / "helpers" / "cli_child.py")
TREE = str(Path(__file__).parent / "helpers" / "tree_child.py")
TTL = 3


def common(endpoint: str, prefix: str) -> list[str]:
    return ["--json", "--endpoints", endpoint, "--namespace", prefix.rstrip("/"), "--ttl", str(TTL)]


def per_shard_child(where: Path) -> list[str]:
    """cli_child.py in trap mode, with a directory of its own for each shard."""
    script = (
        f'd="$0/$ETCD_ELECTOR_SHARD"; mkdir -p "$d"; exec "{sys.executable}" "{CHILD}" "$d" trap'
    )
    return ["sh", "-c", script, str(where)]


def per_shard_tree(where: Path) -> list[str]:
    """tree_child.py ignoring SIGTERM (four processes over two sessions, each beating to a
    file while it runs), with a directory of its own for each shard."""
    script = (
        f'd="$0/$ETCD_ELECTOR_SHARD"; mkdir -p "$d"; '
        f'exec "{sys.executable}" "{TREE}" "$d" ignore-term'
    )
    return ["sh", "-c", script, str(where)]


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0]


def started(process: CliProcess) -> dict[str, int]:
    """shard -> pid of its running command, from the events so far."""
    running: dict[str, int] = {}
    for event in process.events:
        shard = str(event.get("election", "")).rpartition("/")[2]
        if event.get("event") == "child_started":
            running[shard] = event["pid"]
        elif event.get("event") == "child_exited":
            running.pop(shard, None)
    return running


def event_for(process: CliProcess, kind: str, shard: str, timeout: float = 30) -> dict[str, Any]:
    """The first ``kind`` event about ``shard`` (in any order with other shards' events)."""

    def about(event: dict[str, Any]) -> bool:
        named = event.get("shard") or str(event.get("election", "")).rpartition("/")[2]
        return event.get("event") == kind and named == shard

    wait_until(lambda: any(about(e) for e in process.events), timeout, f"{kind} of {shard}")
    return next(e for e in process.events if about(e))


def test_one_command_per_owned_shard_and_a_join_stops_only_the_moving_ones(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, tmp_path: Path
) -> None:
    args = [*common(etcd_endpoint, etcd_prefix), "shards", "run", "jobs", "--shards", "4"]
    first = cli(*args, "--value", "A", "--", *per_shard_child(tmp_path / "a"))
    wait_until(lambda: len(started(first)) == 4, 30, "four commands started")
    before = started(first)
    wait_until(lambda: (tmp_path / "a" / "2" / "env.json").exists(), 30, "the command's env")
    env = json.loads((tmp_path / "a" / "2" / "env.json").read_text())
    assert env["ETCD_ELECTOR_SHARD"] == "2" and env["ETCD_ELECTOR_GROUP"] == "jobs"
    assert int(env["ETCD_ELECTOR_TOKEN"]) > 0

    second = cli(*args, "--value", "B", "--", *per_shard_child(tmp_path / "b"))
    wait_until(lambda: len(started(second)) == 2, 30, "the newcomer running two shards")
    moved = set(started(second))
    wait_until(lambda: set(started(first)) == set(before) - moved, 30, "two commands stopped")
    for shard in moved:
        released = event_for(first, "released", shard)
        assert released["reason"] == "moved"
        assert pid_gone(before[shard])
        # The command got SIGTERM (its trap wrote the marker) before the shard was released.
        marker = (tmp_path / "a" / shard / "marker").read_text().split()
        assert marker[0] == "term" and float(marker[1]) <= released["time"]
        took = event_for(second, "acquired", shard)
        assert took["token"] > int(json.loads((tmp_path / "a" / shard / "env.json").read_text())
                                   ["ETCD_ELECTOR_TOKEN"])  # fmt: skip
    for shard, pid in started(first).items():
        assert before[shard] == pid and not pid_gone(pid)  # never interrupted

    first.signal(signal.SIGTERM)
    assert first.wait(30) == 128 + signal.SIGTERM
    assert all(pid_gone(pid) for pid in before.values())
    wait_until(lambda: len(started(second)) == 4, 30, "the other replica running every shard")
    second.signal(signal.SIGTERM)
    assert second.wait(30) == 128 + signal.SIGTERM
    status = run_cli(*common(etcd_endpoint, etcd_prefix), "shards", "status", "jobs")
    summary = [json.loads(line) for line in status.stdout.splitlines()][-1]
    assert summary["members"] == 0 and summary["owned"] == 0


def test_a_cut_off_replica_stops_its_commands_before_another_can_own_the_shards(
    cli: Callable[..., CliProcess],
    etcd_endpoint: str,
    etcd_prefix: str,
    tmp_path: Path,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    args = ["shards", "run", "jobs", "--shards", "2", "--grace", "0.5"]
    cut = cli(*common(proxy.endpoint, etcd_prefix), *args, "--", *per_shard_child(tmp_path / "a"))
    wait_until(lambda: len(started(cut)) == 2, 30, "two commands started")
    pids = started(cut)
    other = cli(*common(etcd_endpoint, etcd_prefix), *args, "--", *per_shard_child(tmp_path / "b"))
    proxy.blackhole()
    for shard in pids:
        stopped = event_for(cut, "child_exited", shard)
        took = event_for(other, "child_started", shard)
        assert stopped["time"] < took["time"]
        assert pid_gone(pids[shard])
    proxy.heal()
    cut.signal(signal.SIGTERM)
    other.signal(signal.SIGTERM)
    assert cut.wait(30) == other.wait(30) == 128 + signal.SIGTERM


def test_status_and_observe_show_members_owners_tokens_and_moves(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, tmp_path: Path
) -> None:
    observer = cli(*common(etcd_endpoint, etcd_prefix), "shards", "observe", "jobs")
    observer.expect("pending")
    replica = cli(
        *common(etcd_endpoint, etcd_prefix), "shards", "run", "jobs", "--shards", "3",
        "--value", "worker-1", "--", "sleep", "300",
    )  # fmt: skip
    wait_until(lambda: len(started(replica)) == 3, 30, "three commands")
    joined = observer.expect("member_joined")
    assert joined["identity"] == "worker-1"
    owned = {observer.expect("owned")["shard"] for _ in range(3)}
    assert owned == {"0", "1", "2"}

    done = run_cli(*common(etcd_endpoint, etcd_prefix), "shards", "status", "jobs")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    shards = {e["shard"]: e for e in lines if e["event"] == "shard"}
    assert set(shards) == {"0", "1", "2"}
    assert all(
        e["identity"] == "worker-1" and e["token"] > 0 and not e["pending"] for e in shards.values()
    )
    member = next(e for e in lines if e["event"] == "member")
    assert member["owns"] == 3 and member["lease"] == shards["0"]["lease"]

    text = run_cli(
        "--endpoints",
        etcd_endpoint,
        "--namespace",
        etcd_prefix.rstrip("/"),
        "shards",
        "status",
        "jobs",
    )
    assert "1 member(s), 3 shard(s), 3 owned, 0 pending move(s)" in text.stdout
    replica.signal(signal.SIGTERM)
    assert replica.wait(30) == 128 + signal.SIGTERM
    assert observer.expect("member_left")["lease"] == member["lease"]
    observer.signal(signal.SIGTERM)
    assert observer.wait(30) == 128 + signal.SIGTERM


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--shards", "0", "--", "true"], 4, "shard count"),
        (["--shards", "a/b", "--", "true"], 4, "malformed"),
        (["--shards", "2", "--weight", "0", "--", "true"], 4, "weight"),
        (["--shards", "2"], 2, "needs a command"),
        (["--shards", "2", "--", "no-such-command-xyz"], 127, "not found"),
    ],
)
def test_bad_input_is_one_line_and_a_distinct_code(
    etcd_endpoint: str, etcd_prefix: str, extra: list[str], code: int, message: str
) -> None:
    done = run_cli("--endpoints", etcd_endpoint, "shards", "run", "jobs", *extra)
    assert done.returncode == code
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_an_unreachable_etcd_and_a_mismatched_shard_list_fail_clearly(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    done = run_cli("--endpoints", "127.0.0.1:1", "--timeout", "1", "shards", "status", "jobs")
    assert done.returncode == 5 and "cannot connect" in done.stderr
    args = [*common(etcd_endpoint, etcd_prefix), "shards", "run", "jobs"]
    first = cli(*args, "--shards", "2", "--", "sleep", "300")
    wait_until(lambda: len(started(first)) == 2, 30, "two commands")
    other = run_cli(*args, "--shards", "3", "--", "sleep", "300")
    assert other.returncode == 4 and "another shard list" in other.stderr
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 128 + signal.SIGTERM


def test_a_second_signal_kills_the_commands_at_once(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, tmp_path: Path
) -> None:
    replica = cli(
        *common(etcd_endpoint, etcd_prefix), "shards", "run", "jobs", "--shards", "2",
        "--grace", "30", "--ttl", "60", "--", sys.executable, CHILD, str(tmp_path), "ignore",
    )  # fmt: skip
    wait_until(lambda: len(started(replica)) == 2, 30, "two commands")
    pids = list(started(replica).values())
    replica.signal(signal.SIGTERM)
    replica.expect("child_stopping")
    replica.signal(signal.SIGTERM)
    # The repeat kills the commands, but never skips the release: the process still gives
    # its shards and membership back, and exits with the first signal's code.
    assert replica.wait(30) == 128 + signal.SIGTERM
    assert all(pid_gone(pid) for pid in pids)
    assert sorted(e["shard"] for e in replica.events if e.get("event") == "released") == ["0", "1"]
    status = run_cli(*common(etcd_endpoint, etcd_prefix), "shards", "status", "jobs")
    summary = [json.loads(line) for line in status.stdout.splitlines()][-1]
    assert summary["members"] == 0 and summary["owned"] == 0


def test_a_frozen_replica_s_watchdogs_stop_its_commands_before_another_owns_the_shard(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, tmp_path: Path
) -> None:
    """The commands run under ``run``'s watchdog: a replica frozen by SIGSTOP cannot stop
    them, its watchdogs do, at its lease deadline, before etcd can hand the shard over."""
    args = [*common(etcd_endpoint, etcd_prefix), "shards", "run", "jobs", "--shards", "2"]
    frozen = cli(*args, "--value", "A", "--", *per_shard_tree(tmp_path))
    wait_until(lambda: len(started(frozen)) == 2, 30, "two commands")
    other = cli(*args, "--value", "B", "--", "sleep", "300")
    wait_until(lambda: len(started(other)) == 1, 30, "the newcomer running one shard")
    (kept,) = {"0", "1"} - set(started(other))
    tree = tmp_path / kept
    wait_until(lambda: (tree / "pids").exists(), 30, "the kept shard's tree started")
    pids = [int(pid) for pid in (tree / "pids").read_text().split()]
    assert not any(pid_gone(pid) for pid in pids)

    supervisor = frozen.proc.pid
    os.kill(supervisor, signal.SIGSTOP)
    try:
        wait_until(lambda: _state(supervisor) == "T", 10, "the replica is stopped")
        took = event_for(other, "acquired", kept, timeout=30)
        # Still frozen: the watchdogs alone stopped the tree (SIGTERM ignored: SIGKILL), and
        # no process of it ran once the other replica owned the shard.
        assert _state(supervisor) == "T"
        assert all(pid_gone(pid) for pid in pids), [p for p in pids if not pid_gone(p)]
        beats = [float(path.read_text() or 0) for path in tree.glob("beat.*")]
        assert len(beats) == 4 and max(beats) < took["time"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGCONT)
    exited = event_for(frozen, "child_exited", kept, timeout=20)
    assert exited["sent"] == "SIGKILL" and exited["killed"] == 4
    frozen.signal(signal.SIGTERM)
    other.signal(signal.SIGTERM)
    assert frozen.wait(30) == other.wait(30) == 128 + signal.SIGTERM
