"""``etcd-elector demo`` runs by itself to the end, with or without a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time

import pytest
from helpers.cli_process import run_cli

pytestmark = pytest.mark.timeout(120)

_ROW = re.compile(r"^\s+(\d+)\s+(kill|pause|resign)\s+(c\d)\s+(c\d)\s+(\d+)\s+(\d+)\s+(\w+)\s*$")


def _summary_rows(output: str) -> list[tuple[str, ...]]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("summary:"))
    assert "never two leaders at once" in lines[start], lines[start]
    rows = []
    for line in lines[start + 2 :]:
        match = _ROW.match(line)
        if match:
            rows.append(match.groups())
    return rows


@pytest.mark.slow
def test_demo_runs_to_completion_without_a_terminal() -> None:
    started = time.monotonic()
    done = run_cli("demo", "--no-tty", "--rounds", "2", timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    assert "TWO LEADERS" not in done.stdout + done.stderr
    rows = _summary_rows(done.stdout)
    assert [(number, fault) for number, fault, *_ in rows] == [("1", "kill"), ("2", "pause")]
    for _, _, old, new, failover_ms, bound_ms, _ in rows:
        assert old != new
        # Never faster than a lease expiry minus the margin: the old leader's lease held.
        assert 1000 <= int(failover_ms) <= int(bound_ms) + 3000


@pytest.mark.slow
def test_demo_live_view_on_a_terminal_cleans_up_after_itself() -> None:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "etcd_elector.cli", "demo", "--rounds", "1"],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(60)
        assert process.stderr is not None
        errors = process.stderr.read()
        process.stderr.close()
        assert code == 0, errors
    finally:
        os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[2J" in screen and "CANDIDATE" in screen and "LEASE TTL" in screen
    assert len(_summary_rows(screen.replace("\r\n", "\n"))) == 1


def test_the_demo_check_flags_overlapping_leaders() -> None:
    from etcd_elector.cli._demo_check import LeaderLog

    alarms: list[str] = []
    log = LeaderLog(alarms.append)
    first, second, again = object(), object(), object()
    log.opened(first, "c1", 1, 10.0)
    log.opened(second, "c2", 2, 12.5)
    log.closed(first, 1, 12.0)  # ended before c2 began: a clean handover
    assert log.is_open(second) and not log.is_open(first)
    log.closed(second, 2, 20.0)
    log.opened(again, "c1", 3, 19.0)  # a restarted c1 led while c2 still did
    assert alarms == []  # open terms are not judged
    log.closed(again, None, 25.0)
    assert len(alarms) == 1
    assert alarms == log.overlaps
    assert "TWO LEADERS AT ONCE: c1 led 19.000-25.000 and c2 led 12.500-20.000" in alarms[0]


def test_grace_cap_leaves_room_for_late_renewals() -> None:
    from etcd_elector._election._timing import Timing
    from etcd_elector.cli._supervisor import grace_cap

    # TTL 10: margin 1.5, keepalive every 3.33 s: up to 3.5 s of grace.
    assert grace_cap(Timing(10), 10) == pytest.approx(3.5)
    # TTL 2: margin 0.5, keepalive every 0.67 s: 0.5 s.
    assert grace_cap(Timing(2), 2) == pytest.approx(0.5)
