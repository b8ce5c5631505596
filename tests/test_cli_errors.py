"""Every error of the ``etcd-elector`` command is one line on stderr with its documented exit
code, and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers.cli_process import run_cli

from etcd_elector.cli._exit import EXIT_CODES_HELP, ExitCode
from etcd_elector.testing import EtcdMember

pytestmark = pytest.mark.timeout(60)

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _assert_one_error_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("etcd-elector: error: "), lines[0]
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("argv", "env", "code", "words"),
    [
        (["--endpoints", "127.0.0.1:1", "leader", "x"], {}, ExitCode.UNREACHABLE, ["127.0.0.1:1"]),
        (["--endpoints", "127.0.0.1:1", "campaign", "x"], {}, ExitCode.UNREACHABLE, ["etcd"]),
        (["--endpoints", "127.0.0.1:1", "run", "x", "--", "true"], {}, ExitCode.UNREACHABLE, []),
        (["--endpoints", "no-port", "leader", "x"], {}, ExitCode.CONFIGURATION, ["--endpoints"]),
        (["leader", "x"], {"ETCD_ENDPOINTS": "a:b:c"}, ExitCode.CONFIGURATION, ["ETCD_ENDPOINTS"]),
        (["leader", "a/b"], {}, ExitCode.CONFIGURATION, ["'a/b'"]),
        (["leader", " "], {}, ExitCode.CONFIGURATION, ["empty"]),
        (["--namespace", "a//b", "leader", "x"], {}, ExitCode.CONFIGURATION, ["--namespace"]),
        (["--ttl", "0", "campaign", "x"], {}, ExitCode.CONFIGURATION, ["--ttl '0' cannot"]),
        (["--ttl", "1.5", "campaign", "x"], {}, ExitCode.CONFIGURATION, ["whole"]),
        (["--ttl", "ten", "campaign", "x"], {}, ExitCode.CONFIGURATION, ["--ttl"]),
        (
            ["campaign", "x"],
            {"ETCD_ELECTOR_TTL": "-3"},
            ExitCode.CONFIGURATION,
            ["ETCD_ELECTOR_TTL"],
        ),
        (["--timeout", "0", "leader", "x"], {}, ExitCode.CONFIGURATION, ["--timeout"]),
        (["run", "x", "--grace", "-1", "--", "true"], {}, ExitCode.CONFIGURATION, ["--grace"]),
        (["run", "x", "--"], {}, ExitCode.USAGE, ["COMMAND"]),
        (["run", "x"], {}, ExitCode.USAGE, ["COMMAND"]),
        (["leader", "x", "--", "true"], {}, ExitCode.USAGE, ["'--'"]),
        (["leader"], {}, ExitCode.USAGE, ["name"]),
        (["--bogus", "leader", "x"], {}, ExitCode.USAGE, ["--bogus"]),
        ([], {}, ExitCode.USAGE, ["COMMAND"]),
        (["run", "x", "--", "no-such-command-here"], {}, ExitCode.NOT_FOUND, ["not found"]),
        (["demo", "--candidates", "1"], {}, ExitCode.CONFIGURATION, ["--candidates"]),
        (["leader", "é"], {}, ExitCode.CONFIGURATION, ["ASCII letters"]),
        (["--namespace", "", "leader", "x"], {}, ExitCode.CONFIGURATION, ["write '/'"]),
        (["--namespace", "/a//", "leader", "x"], {}, ExitCode.CONFIGURATION, ["as '/a'"]),
        (["--namespace", "/a/../b", "leader", "x"], {}, ExitCode.CONFIGURATION, ["'..'"]),
        (["--namespace", "/a\x7f", "leader", "x"], {}, ExitCode.CONFIGURATION, ["\\x7f"]),
        (
            ["leader", "x"],
            {"ETCD_ELECTOR_NAMESPACE": "/" + "n" * 100_000},
            ExitCode.CONFIGURATION,
            ["ETCD_ELECTOR_NAMESPACE", "100001 characters long: the limit is 256"],
        ),
        (["--ttl", "0.0", "campaign", "x"], {}, ExitCode.CONFIGURATION, ["--ttl '0.0' cannot"]),
        (
            ["--ttl", "9223372036854775807", "campaign", "x"],
            {},
            ExitCode.CONFIGURATION,
            ["--ttl '9223372036854775807' cannot be granted"],
        ),
        (["campaign", "x", "--value", "a\nb"], {}, ExitCode.CONFIGURATION, ["--value", "\\n"]),
        (
            ["run", "x", "--", "true"],
            {"ETCD_ELECTOR_IDENTITY": "host\x1b[2J"},
            ExitCode.CONFIGURATION,
            ["ETCD_ELECTOR_IDENTITY", "\\x1b"],
        ),
        (["--timeout", "inf", "leader", "x"], {}, ExitCode.CONFIGURATION, ["between 0.01 and"]),
        (["--timeout", "2 days", "leader", "x"], {}, ExitCode.CONFIGURATION, ["500ms, 5s, 2m"]),
        (["handoff", "x", "--wait", "5x"], {}, ExitCode.CONFIGURATION, ["--wait", "'5x'"]),
        (["leader", "x"], {"ETCD_ENDPOINTS": "u:pw@h:1"}, ExitCode.CONFIGURATION, ["***@h:1"]),
    ],
)
def test_errors_are_one_line_with_their_exit_code(
    argv: list[str], env: dict[str, str], code: int, words: list[str]
) -> None:
    done = run_cli(*argv, env=env)
    _assert_one_error_line(done, code, *words)
    assert len(done.stderr) < 400


@pytest.mark.parametrize(
    "endpoint", ["alice:Pw-9c1f@127.0.0.1:2379", "https://alice:Pw-9c1f@etcd:2379", "Pw-9c1f@h:1"]
)
def test_a_password_in_an_endpoint_is_never_echoed(endpoint: str) -> None:
    done = run_cli("--endpoints", endpoint, "leader", "x")
    _assert_one_error_line(done, ExitCode.CONFIGURATION, "carries credentials", "--user")
    assert "Pw-9c1f" not in done.stderr


def test_a_command_that_is_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    done = run_cli("run", "x", "--", str(script))
    _assert_one_error_line(done, ExitCode.NOT_EXECUTABLE, "not executable")


def _gateway(endpoint: str, path: str, body: dict[str, str]) -> None:
    request = urllib.request.Request(
        f"http://{endpoint}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with _HTTP.open(request, timeout=5) as response:
        response.read()


def test_an_etcd_that_requires_credentials_is_an_auth_error(etcd_member: EtcdMember) -> None:
    endpoint = etcd_member.client_endpoint
    _gateway(endpoint, "/v3/auth/user/add", {"name": "root", "password": "secret"})
    _gateway(endpoint, "/v3/auth/user/grant", {"user": "root", "role": "root"})
    _gateway(endpoint, "/v3/auth/enable", {})
    for argv in (["leader", "x"], ["campaign", "x"]):
        done = run_cli("--endpoints", endpoint, *argv)
        _assert_one_error_line(done, ExitCode.AUTH, "credentials")


def test_help_documents_every_exit_code_and_the_grace_cap() -> None:
    done = run_cli("run", "--help")
    assert done.returncode == 0
    assert "capped" in done.stdout
    assert "parent-death" in done.stdout
    for code in ExitCode:
        assert f"\n  {code.value} " in EXIT_CODES_HELP
    top = run_cli("--help")
    assert EXIT_CODES_HELP.strip() in top.stdout


def test_python_dash_m_and_the_console_script_agree() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from etcd_elector.cli import main; sys.exit(main())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == ExitCode.USAGE and done.stderr.count("\n") == 1


_BROKEN = """
import sys
import etcd_elector.cli as cli

async def broken(args, options, printer):
    raise RuntimeError("boom")

cli._command = lambda name: broken
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_an_internal_error_70(debug: bool) -> None:
    argv = ["--log-level", "debug"] if debug else []
    done = subprocess.run(
        [sys.executable, "-c", _BROKEN, *argv, "leader", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == ExitCode.INTERNAL
    errors = [line for line in done.stderr.splitlines() if line.startswith("etcd-elector:")]
    assert errors == [
        "etcd-elector: error: internal error (RuntimeError: boom), please report it; "
        "run with --log-level debug for the traceback"
    ]
    assert ("Traceback" in done.stderr) is debug
    if not debug:
        assert done.stderr.count("\n") == 1
