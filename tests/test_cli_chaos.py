"""``etcd-elector chaos`` end to end: a short soak reports its table and exits 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys


def chaos(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etcd_elector.cli", "chaos", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_short_soak_reports_and_passes() -> None:
    done = chaos("--duration", "6s", "--seed", "5", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["event"] == "chaos_started" and events[0]["seed"] == 5
    finished = events[-1]
    assert finished["event"] == "chaos_finished"
    assert finished["violations"] == []
    assert finished["trials"] >= 1 and finished["writes_committed"] > 0


def test_bad_duration_is_one_line_and_code_4() -> None:
    done = chaos("--duration", "soon")
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "duration 'soon' is malformed" in done.stderr


def test_peer_partitions_alone_with_three_members() -> None:
    done = chaos(
        "--duration",
        "3s",
        "--seed",
        "6",
        "--members",
        "3",
        "--faults",
        "partition_standby_member",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["faults"] == ["partition_standby_member"]
    cut = [e["detail"] for e in events if e["event"] == "progress" and "cut off" in e["detail"]]
    assert cut and all("from its peers (used by" in line for line in cut), cut
    finished = events[-1]
    assert finished["violations"] == []
    assert finished["faults"] == {"partition_standby_member": finished["trials"]}


def test_faults_that_do_not_fit_are_one_line_and_code_4() -> None:
    unknown = chaos("--faults", "kill,unplug")
    assert unknown.returncode == 4
    assert unknown.stderr.count("\n") == 1
    assert "unknown chaos fault 'unplug': choose from kill, " in unknown.stderr
    one_member = chaos("--faults", "partition_leader_member")
    assert one_member.returncode == 4
    assert "'partition_leader_member' needs three etcd members" in one_member.stderr


def test_data_loss_faults_print_the_table_one_row_a_line() -> None:
    done = chaos("--duration", "2s", "--seed", "7", "--faults", "wipe")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "\\n" not in done.stdout  # no row folded into an escaped line
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("seed ")) :]
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in table)
    assert rows["faults"].startswith("wipe ")
    losses = int(rows["faults"].removeprefix("wipe "))
    # Each of the three candidates reported each wipe; the repair left nothing to excuse.
    assert rows["etcd data losses / reports"] == f"{losses} / {3 * losses} from candidates"
    assert rows["regressions after a report"] == "0"
    assert rows["token / revision / loss violations"] == "0"
    assert "moved the revision past" in rows["longest repair"]
    repairs = [line for line in lines if line.strip().startswith("wipe: etcd back in")]
    assert len(repairs) == losses, lines
