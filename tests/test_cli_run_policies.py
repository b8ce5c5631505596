"""``campaign`` and ``run`` at their edges: waiting for etcd at start (``--wait-for-etcd``),
giving a term up after repeated failures (``--max-failures``), scripts whose interpreter is
missing, how a command's end is reported, leftovers of a command that exits, and the
capped-grace warning. Real etcd, real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.cli_process import CliProcess, pid_gone, run_cli, wait_until

from etcd_elector import Client
from etcd_elector.cli._etcd_wait import KUBERNETES_WAIT, resolve_wait
from etcd_elector.cli._exit import ExitCode
from etcd_elector.cli._parser import parse_args
from etcd_elector.testing import FaultProxy

pytestmark = pytest.mark.timeout(90)

CHILD = str(Path(__file__).parent / "helpers" / "cli_child.py")
NOWHERE = "127.0.0.1:1"  # nothing listens: a command that got this far would exit 5


def _common(endpoint: str, prefix: str, ttl: int = 10) -> list[str]:
    return ["--json", "--endpoints", endpoint, "--namespace", prefix, "--ttl", str(ttl)]


def _waiting(process: CliProcess) -> bool:
    return any("retrying for up to" in line for line in process.stderr_lines)


# -- --wait-for-etcd ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["campaign", "run"])
def test_wait_for_etcd_rides_out_an_etcd_that_is_down_at_start(
    cli: Callable[..., CliProcess],
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
    command: str,
) -> None:
    proxy = fault_proxy(etcd_endpoint)
    proxy.refuse()
    extra = ["--", sys.executable, CHILD, str(tmp_path), "trap"] if command == "run" else []
    candidate = cli(
        *_common(proxy.endpoint, etcd_prefix), command, "late", "--wait-for-etcd", "60s", *extra
    )
    wait_until(lambda: _waiting(candidate), 20, "it says it is waiting for etcd")
    assert candidate.proc.poll() is None
    proxy.heal()
    candidate.expect("elected", timeout=30)
    candidate.signal(signal.SIGTERM)
    candidate.expect("resigned")
    assert candidate.wait() == 128 + signal.SIGTERM


def test_wait_for_etcd_gives_up_with_exit_5_and_says_so() -> None:
    done = run_cli("--endpoints", NOWHERE, "run", "x", "--wait-for-etcd", "1.5s", "--", "true")
    assert done.returncode == ExitCode.UNREACHABLE, done.stderr
    lines = done.stderr.splitlines()
    assert "retrying for up to" in lines[0] and "--wait-for-etcd" in lines[0]
    assert lines[-1].startswith("etcd-elector: error: ") and NOWHERE in lines[-1]
    assert "Traceback" not in done.stderr


def test_wait_for_etcd_comes_from_the_environment_and_a_bad_value_is_refused() -> None:
    env = {"ETCD_ELECTOR_WAIT_FOR_ETCD": "1s"}
    done = run_cli("--endpoints", NOWHERE, "campaign", "x", env=env)
    assert done.returncode == ExitCode.UNREACHABLE
    assert "retrying for up to" in done.stderr
    bad = run_cli("campaign", "x", env={"ETCD_ELECTOR_WAIT_FOR_ETCD": "soon"})
    assert bad.returncode == ExitCode.CONFIGURATION
    assert "ETCD_ELECTOR_WAIT_FOR_ETCD 'soon' is malformed" in bad.stderr
    flag = run_cli("campaign", "x", "--wait-for-etcd", "-1")
    assert flag.returncode == ExitCode.CONFIGURATION and "--wait-for-etcd" in flag.stderr


def test_a_stop_signal_ends_the_wait_for_etcd(cli: Callable[..., CliProcess]) -> None:
    waiting = cli("--json", "--endpoints", NOWHERE, "campaign", "x", "--wait-for-etcd", "5m")
    wait_until(lambda: _waiting(waiting), 20, "it says it is waiting for etcd")
    waiting.signal(signal.SIGTERM)
    assert waiting.wait() == 128 + signal.SIGTERM
    assert waiting.events == []


def test_the_wait_defaults_to_none_but_to_30s_in_kubernetes() -> None:
    args = parse_args(["campaign", "x"])
    assert resolve_wait(args, {}) == 0
    assert resolve_wait(args, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == KUBERNETES_WAIT == 30
    both = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "ETCD_ELECTOR_WAIT_FOR_ETCD": "0"}
    assert resolve_wait(args, both) == 0
    assert resolve_wait(parse_args(["run", "x", "--wait-for-etcd", "2m", "--", "t"]), both) == 120


# -- --max-failures ----------------------------------------------------------------------------


def test_a_command_that_keeps_failing_gives_the_term_to_a_healthy_candidate(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, tmp_path: Path
) -> None:
    common = _common(etcd_endpoint, etcd_prefix, ttl=30)
    failing = cli(
        *common,
        "run",
        "jobs",
        "--value",
        "broken",
        "--restart",
        "on-failure",
        "--max-failures",
        "2",
        "--failure-window",
        "1m",
        "--",
        sys.executable,
        CHILD,
        str(tmp_path),
        "exit",
        "1",
    )
    elected = failing.expect("elected")
    healthy = cli(*common, "campaign", "jobs", "--value", "healthy")
    healthy.expect("campaigning")
    assert failing.expect("child_exited")["code"] == 1
    failing.expect("child_restarting")
    assert failing.expect("child_exited")["code"] == 1
    giving_up = failing.expect("child_giving_up")
    assert (giving_up["failures"], giving_up["code"]) == (2, 1)
    assert failing.expect("resigned")["reason"] == "work_done"
    # The lease lives on (TTL 30): only the resignation lets the healthy candidate in now.
    took_over = healthy.expect("elected", timeout=10)
    assert took_over["token"] > elected["token"]
    failing.expect("campaigning")  # and queues again, behind it
    assert failing.proc.poll() is None
    failing.signal(signal.SIGTERM)
    assert failing.wait() == 128 + signal.SIGTERM


def test_with_once_a_command_that_keeps_failing_ends_the_run_with_its_code(
    etcd_endpoint: str, etcd_prefix: str, tmp_path: Path
) -> None:
    done = run_cli(
        *_common(etcd_endpoint, etcd_prefix),
        "run",
        "jobs",
        "--once",
        "--restart",
        "always",
        "--max-failures",
        "2",
        "--",
        sys.executable,
        CHILD,
        str(tmp_path),
        "exit",
        "4",
    )
    assert done.returncode == 4, done.stderr
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert events.count("child_exited") == 2 and "child_giving_up" in events
    assert events[-1] == "resigned"


# -- scripts and their interpreters ------------------------------------------------------------


def _script(tmp_path: Path, first_line: bytes) -> str:
    script = tmp_path / "job.sh"
    script.write_bytes(first_line + b"\necho hello\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("first_line", "code", "words"),
    [
        (b"#!/nonexistent/interp", ExitCode.NOT_FOUND, ["'/nonexistent/interp'", "not found"]),
        (b"#! /nonexistent/interp -x", ExitCode.NOT_FOUND, ["'/nonexistent/interp'"]),
        (b"#!/bin/sh\r", ExitCode.NOT_FOUND, ["'/bin/sh\\r'", "carriage return"]),
        (b"#!/usr/bin/env no-such-interpreter-here", ExitCode.NOT_FOUND, ["through env"]),
        (b"#!/usr/bin/env -S no-such-interpreter-here -u", ExitCode.NOT_FOUND, ["through env"]),
        (b"#!/usr/bin/env sh -e", ExitCode.NOT_FOUND, ["'sh -e'"]),  # env looks for 'sh -e'
        (b"#!{tmp}/plain-file", ExitCode.NOT_EXECUTABLE, ["plain-file'", "not executable"]),
    ],
)
def test_a_script_whose_interpreter_cannot_run_fails_before_campaigning(
    tmp_path: Path, first_line: bytes, code: int, words: list[str]
) -> None:
    (tmp_path / "plain-file").write_text("not a program\n")
    first_line = first_line.replace(b"{tmp}", bytes(tmp_path))
    done = run_cli("--endpoints", NOWHERE, "run", "x", "--", _script(tmp_path, first_line))
    (line,) = done.stderr.splitlines()
    assert line.startswith("etcd-elector: error: command ") and "#! line" in line
    for word in words:
        assert word in line, line
    assert done.returncode == code


@pytest.mark.parametrize("first_line", [b"#!/bin/sh", b"#!/usr/bin/env sh", b"echo no shebang"])
def test_a_script_with_a_working_interpreter_passes_the_check(
    tmp_path: Path, first_line: bytes
) -> None:
    done = run_cli("--endpoints", NOWHERE, "run", "x", "--", _script(tmp_path, first_line))
    assert done.returncode == ExitCode.UNREACHABLE, done.stderr  # it got as far as etcd


# -- how a command's end is reported -----------------------------------------------------------


def test_a_command_killed_by_a_signal_is_reported_with_the_signal_name(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    base = ["--endpoints", etcd_endpoint, "--namespace", etcd_prefix, "run", "crash", "--"]
    done = run_cli(*base, "bash", "-c", "kill -SEGV $$")
    assert done.returncode == 128 + signal.SIGSEGV, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("child_exited")]
    # Died of SIGSEGV; we sent it nothing.
    assert line.endswith(" code=139 signal=SIGSEGV"), line
    assert "sent=" not in line


def test_a_command_that_exits_leaves_nothing_behind_even_in_another_session(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "escaped"
    command = f"setsid sleep 303 & echo $! > {pid_file}; exit 3"
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix), "run", "leaves", "--", "bash", "-c", command
    )
    try:
        exited = supervisor.expect("child_exited")
        escaped = int(pid_file.read_text())
        assert (exited["code"], exited["signal"], exited["sent"]) == (3, None, None)
        # Reported only once the whole tree is gone, the escaped sleep included.
        assert pid_gone(escaped)
        assert supervisor.wait() == 3
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


# -- the capped-grace warning ------------------------------------------------------------------


@pytest.mark.parametrize("grace", [None, "5"])
def test_the_grace_cap_warns_once_and_only_for_a_grace_that_was_asked_for(
    cli: Callable[..., CliProcess],
    etcd_endpoint: str,
    etcd_prefix: str,
    tmp_path: Path,
    grace: str | None,
) -> None:
    # TTL 3 caps the grace at 1 s. Each failure gives the term up, so terms follow quickly.
    supervisor = cli(
        *_common(etcd_endpoint, etcd_prefix, ttl=3),
        "run",
        "short",
        *(["--grace", grace] if grace else []),
        "--restart",
        "on-failure",
        "--max-failures",
        "1",
        "--",
        sys.executable,
        CHILD,
        str(tmp_path),
        "exit",
        "1",
    )
    for _ in range(3):
        supervisor.expect("elected")
        supervisor.expect("resigned")
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait() == 128 + signal.SIGTERM
    warnings = [line for line in supervisor.stderr_lines if "capped" in line]
    assert len(warnings) == (1 if grace else 0), supervisor.stderr_lines
    if grace:
        assert "--grace 5.00s capped to 1.00s" in warnings[0]


def test_the_withdrawal_is_bounded_when_etcd_cannot_be_reached(
    cli: Callable[..., CliProcess],
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: Callable[[str], FaultProxy],
) -> None:
    """Two signals with etcd cut off: each withdrawal call gives up after --timeout, the key is
    left to its lease, and the process exits instead of hanging."""
    proxy = fault_proxy(etcd_endpoint)
    candidate = cli(
        *_common(proxy.endpoint, etcd_prefix, ttl=30), "--timeout", "1", "campaign", "cut"
    )
    elected = candidate.expect("elected")
    proxy.blackhole()
    candidate.signal(signal.SIGTERM)
    candidate.signal(signal.SIGINT)
    assert candidate.wait(timeout=30) in (128 + signal.SIGTERM, 128 + signal.SIGINT)
    assert any("expire" in line for line in candidate.stderr_lines), candidate.stderr_lines
    with Client(etcd_endpoint) as client:
        assert client.get(elected["key"]).kv is not None  # until its lease expires


def test_a_candidate_key_is_never_left_after_a_clean_exit(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """``run`` whose command exits by itself resigns before it exits."""
    done = run_cli(
        "--endpoints", etcd_endpoint, "--namespace", etcd_prefix, "run", "once", "--", "true"
    )
    assert done.returncode == 0, done.stderr
    with Client(etcd_endpoint) as client:
        assert client.get_prefix(etcd_prefix).kvs == ()
