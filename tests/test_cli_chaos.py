"""``etcd-elector chaos`` end to end: a short soak reports its table and exits 0."""

from __future__ import annotations

import json
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
