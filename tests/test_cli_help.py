"""The command follows the conventions users expect: ``--version``, ``python -m
etcd_elector``, help that shows a command's own options with their defaults (the global
options and exit codes once, at the top), and global options that a command does not use
refused by name instead of being ignored or checked against it."""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli_process import run_cli

from etcd_elector.cli._exit import EXIT_CODES_HELP, ExitCode
from etcd_elector.cli._parser import COMMAND_GLOBALS, GLOBALS, _build

pytestmark = pytest.mark.timeout(60)

CONSOLE_SCRIPT = Path(sys.executable).parent / "etcd-elector"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in _build()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def run(argv: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=30, check=False)


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout == f"etcd-elector {importlib.metadata.version('etcd-elector')}\n"


@pytest.mark.parametrize(
    "args", [["--version"], ["--help"], ["leader", "--help"], ["leader"], ["--bogus", "x"]]
)
def test_python_dash_m_etcd_elector_is_the_console_script(args: list[str]) -> None:
    script = run([str(CONSOLE_SCRIPT)], *args)
    module = run([sys.executable, "-m", "etcd_elector"], *args)
    assert (module.returncode, module.stdout, module.stderr) == (
        script.returncode,
        script.stdout,
        script.stderr,
    )


def test_run_usage_shows_where_the_command_goes() -> None:
    done = run_cli("run", "--help")
    usage = done.stdout.split("\n\n", 1)[0]
    assert usage.startswith("usage: etcd-elector run ")
    assert usage.endswith("name -- COMMAND [ARG...]")


def test_a_subcommand_help_is_its_own_options_not_the_globals() -> None:
    done = run_cli("campaign", "--help")
    assert done.returncode == 0
    text = done.stdout
    # 74 lines when every global option was repeated here; its own options grow with features.
    assert len(text.splitlines()) <= 45
    assert "--value VALUE" in text and "--once" in text and "--health-addr" in text
    assert "exit codes:" not in text and "environment:" not in text
    for global_option in ("--endpoints LIST", "--cacert FILE", "--timeout SECONDS", "--ttl"):
        assert f"  {global_option}" not in text  # named in the list below, never described
    # ... but it names the global options it takes, and where to read about them.
    assert "global options it takes" in text and "--endpoints" in text
    assert "etcd-elector --help" in text


def test_the_top_help_has_every_global_option_the_environment_and_exit_codes() -> None:
    text = run_cli("--help").stdout
    for option in GLOBALS:
        assert option.flags[-1] in text, option
    assert EXIT_CODES_HELP.strip() in text
    assert text.count("exit codes:") == 1 and "ETCD_ELECTOR_TTL" in text


@pytest.mark.parametrize("name", sorted(COMMAND_GLOBALS))
def test_every_option_shows_its_default(name: str) -> None:
    parser = subcommands()[name]
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings or action.nargs == 0:
            continue  # hidden globals, positionals, switches and --help
        assert "default" in (action.help or ""), (name, action.option_strings)
    help_text = parser.format_help()
    assert "exit codes:" not in help_text


def test_every_top_level_option_shows_its_default() -> None:
    for option in GLOBALS:
        assert "default" in option.help, option.flags


@pytest.mark.parametrize(
    ("argv", "option", "command"),
    [
        (["--ttl", "0", "leader", "x"], "--ttl", "leader"),
        (["status", "x", "--ttl", "5"], "--ttl", "status"),
        (["--cacert", "ca.pem", "etcd"], "--cacert", "etcd"),
        (["demo", "--endpoints", "127.0.0.1:1"], "--endpoints", "demo"),
        (["--namespace", "/x", "chaos"], "--namespace", "chaos"),
        (["check-config", "--timeout", "3"], "--timeout", "check-config"),
        (["--user", "alice", "demo"], "--user", "demo"),
        (["--server-name", "etcd.test", "etcd"], "--server-name", "etcd"),
    ],
)
def test_a_global_option_a_command_does_not_use_is_a_usage_error(
    argv: list[str], option: str, command: str
) -> None:
    done = run_cli(*argv)
    assert done.returncode == ExitCode.USAGE, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"etcd-elector: error: {option} does not apply to '{command}'")
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--json", "-w", "simple", "leader", "x"], ["--json", "-w simple"]),
        (["leader", "x", "--print-value-only", "--json"], ["--print-value-only"]),
        (["leader", "x", "--print-value-only", "-w", "json"], ["--print-value-only"]),
        (["-w", "yaml", "leader", "x"], ["yaml"]),
    ],
)
def test_output_options_that_contradict_each_other_are_usage_errors(
    argv: list[str], words: list[str]
) -> None:
    done = run_cli(*argv)
    assert done.returncode == ExitCode.USAGE
    (line,) = done.stderr.splitlines()
    for word in words:
        assert word in line
