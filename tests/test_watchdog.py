"""The watchdog program of ``etcd-elector run`` on its own: started as the supervisor starts it
(``python -I -S``, a session of its own, a socketpair), with real process trees, and the test in
the supervisor's seat. The deadlines here are on the watchdog's clock (``CLOCK_BOOTTIME``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli_process import pid_gone, wait_until

from etcd_elector import _clock
from etcd_elector.cli._watched import WATCHDOG_PROGRAM

pytestmark = pytest.mark.timeout(60)

TREE = str(Path(__file__).parent / "helpers" / "tree_child.py")


class Watchdog:
    """A watchdog process, and our end of its control socket."""

    def __init__(self, argv: list[str], *, grace: float, deadline_in: float) -> None:
        ours, theirs = socket.socketpair()
        self.deadline = _clock.now() + deadline_in
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                WATCHDOG_PROGRAM,
                str(theirs.fileno()),
                repr(grace),
                repr(self.deadline),
                "--",
                *argv,
            ],
            pass_fds=(theirs.fileno(),),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.control: socket.socket | None = ours
        self.reader = ours.makefile("rb")

    def line(self) -> list[str]:
        return self.reader.readline().decode().split()

    def send(self, line: str) -> None:
        assert self.control is not None
        self.control.sendall(line.encode() + b"\n")

    def close(self) -> None:
        """Hang up and make sure the watchdog is gone."""
        self.hang_up()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def hang_up(self) -> None:
        """What the supervisor's death looks like to the watchdog."""
        self.reader.close()
        if self.control is not None:
            self.control.close()
            self.control = None


@pytest.fixture
def tree_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    pids = tmp_path / "pids"
    if pids.exists():
        for pid in pids.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _pids(where: Path) -> list[int]:
    wait_until(lambda: (where / "pids").exists(), 20, "the tree started")
    return [int(pid) for pid in (where / "pids").read_text().split()]


def _gone(pids: list[int]) -> bool:
    return all(pid_gone(pid) for pid in pids)


def test_the_deadline_moves_with_each_renewal_and_then_kills_without_a_word(
    tree_dir: Path,
) -> None:
    watchdog = Watchdog(
        [sys.executable, TREE, str(tree_dir), "ignore-term"], grace=0.5, deadline_in=3.0
    )
    try:
        assert watchdog.line()[0] == "started"
        first = watchdog.deadline
        pids = _pids(tree_dir)
        while _clock.now() < first + 1:  # the supervisor's renewals, four a second
            watchdog.send(f"deadline {_clock.now() + 2.0!r}")
            time.sleep(0.25)
        last = _clock.now() + 2.0
        watchdog.send(f"deadline {last!r}")
        assert not any(pid_gone(pid) for pid in pids)  # alive past the first deadline
        assert watchdog.line() == ["stopping", "deadline"]
        assert _clock.now() >= last - 0.5  # not before deadline - grace
        assert watchdog.line() == ["exited", "-9", "SIGKILL"]  # it ignored SIGTERM
        assert _clock.now() >= last  # SIGKILL waited for the deadline itself
        assert watchdog.line() == ["done", "4"]
        assert _gone(pids)
        assert watchdog.process.wait(10) == 0
    finally:
        watchdog.close()


def test_when_the_supervisor_is_gone_the_tree_is_stopped_at_once(tree_dir: Path) -> None:
    watchdog = Watchdog(
        [sys.executable, TREE, str(tree_dir), "ignore-term"], grace=1.0, deadline_in=60.0
    )
    try:
        assert watchdog.line()[0] == "started"
        pids = _pids(tree_dir)
    finally:
        watchdog.hang_up()
    # SIGTERM (ignored), then SIGKILL after the grace: long before the deadline.
    wait_until(lambda: _gone(pids), 15, "the tree died")
    assert watchdog.process.wait(10) == 0


def test_what_an_exited_command_left_behind_gets_sigterm_then_sigkill_after_the_grace(
    tmp_path: Path,
) -> None:
    escaped, marker = tmp_path / "escaped", tmp_path / "marker"
    # A leftover in a session of its own that notes SIGTERM and carries on.
    leftover_script = (
        f"trap 'echo TERM >> {marker}' TERM; echo $$ > {escaped}; while :; do sleep 0.05; done"
    )
    script = (
        f'setsid bash -c "{leftover_script}" & '
        f"while [ ! -s {escaped} ]; do sleep 0.01; done; exit 7"
    )
    watchdog = Watchdog(["bash", "-c", script], grace=1.0, deadline_in=60.0)
    try:
        assert watchdog.line()[0] == "started"
        assert watchdog.line() == ["exited", "7", "-"]
        leftover = int(escaped.read_text())
        done = watchdog.line()
        assert done[0] == "done" and int(done[1]) >= 1  # it needed SIGKILL
        assert pid_gone(leftover)
        assert marker.read_text() == "TERM\n"  # but was asked first
    finally:
        watchdog.close()
        if escaped.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(escaped.read_text()), signal.SIGKILL)


def test_a_command_that_cannot_start_is_reported_as_such() -> None:
    watchdog = Watchdog(["/no/such/program"], grace=1.0, deadline_in=60.0)
    try:
        assert watchdog.line() == ["failed", "127"]
        assert watchdog.process.wait(10) == 0
    finally:
        watchdog.close()
