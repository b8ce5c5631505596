"""A chaos process is never signalled once it has exited: its pid may belong to another
process or thread by then (a long soak wraps the pid space; a stale SIGTERM once killed the
chaos runner itself through one of its own threads)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from etcd_elector.testing._chaos_process import ChaosProcess


def test_an_exited_process_is_not_signalled(
    etcd_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    # `python -m site --endpoints ...` refuses the option and exits at once.
    process = ChaosProcess("gone", "site", [], [etcd_endpoint], lines.append, str(tmp_path))
    try:
        assert process.process.wait(timeout=30) != 0
        sent: list[tuple[int, int]] = []
        monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
        process.signal(signal.SIGKILL)
        process.signal(signal.SIGSTOP)
        assert not process.alive
        process.finish(timeout=5)  # asks for a clean exit only of a live process
        assert sent == []
    finally:
        monkeypatch.undo()
        process.finish(timeout=5)


def test_a_live_process_is_signalled(etcd_endpoint: str, etcd_prefix: str, tmp_path: Path) -> None:
    lines: list[str] = []
    args = ["--name", "e", "--namespace", etcd_prefix.rstrip("/"), "--ttl", "2", "--id", "c1"]
    module = "etcd_elector.testing._chaos_candidate"
    process = ChaosProcess("c1", module, args, [etcd_endpoint], lines.append, str(tmp_path))
    try:
        deadline = time.monotonic() + 30
        while not any('"elected"' in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling its output: the only way it reports
        assert any('"elected"' in line for line in lines), lines
        process.signal(signal.SIGTERM)
        assert process.process.wait(timeout=30) == 0  # a clean exit, asked by the signal
    finally:
        process.finish(timeout=5)
    assert any('"exited"' in line for line in lines), lines
