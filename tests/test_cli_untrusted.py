"""Values, keys and names are untrusted: whatever bytes a candidate publishes, ``leader`` and
``status`` never put a control character on the operator's terminal, ``--json`` gives the
exact bytes back, and ``--print-value-only`` hands a script the bytes themselves."""

from __future__ import annotations

import asyncio
import base64
import errno
import io
import json
import logging
import os
import pty
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from helpers.cli_process import run_cli
from helpers.election_kit import namespace_of, wait_until

from etcd_elector import AsyncClient, AsyncElection
from etcd_elector.cli import _PrintableFormatter
from etcd_elector.cli._exit import ExitCode
from etcd_elector.cli._output import Printer, printable

pytestmark = pytest.mark.timeout(60)

# A terminal title change, a screen clear, NUL, a newline, CR, DEL, a right-to-left override
# and bytes that are not UTF-8.
HOSTILE = b"\x1b]0;pwned\x07\x1b[2J\x00one\ntwo\rthree\x7f\xe2\x80\xae\xff\xfe"
# Valid UTF-8 with a control character: JSON keeps it as text, exactly.
UTF8_WITH_NEWLINE = "naïve ✓\nsecond line".encode()


def assert_terminal_safe(text: str) -> None:
    """Nothing a terminal would act on: no C0/C1 control, no DEL, no bidi override."""
    bad = [char for char in text if not char.isprintable() and char != "\n"]
    assert not bad, (bad, text)


@dataclass
class Published:
    common: list[str]  # --endpoints and --namespace


@pytest.fixture
async def published(etcd_endpoint: str, etcd_prefix: str) -> AsyncIterator[Published]:
    """Two candidates published with the library: HOSTILE leads, UTF8_WITH_NEWLINE waits."""
    namespace = namespace_of(etcd_prefix)
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=30) as first,
        client.session(ttl=30) as second,
    ):
        await AsyncElection(first, "odd", namespace=namespace).campaign(HOSTILE)
        waiting = AsyncElection(second, "odd", namespace=namespace)
        queued = asyncio.create_task(waiting.campaign(UTF8_WITH_NEWLINE))

        async def both_listed() -> bool:
            return len(await waiting.view.candidates()) == 2

        try:
            await wait_until(both_listed, "the second candidate is queued")
            yield Published(["--endpoints", etcd_endpoint, "--namespace", namespace])
        finally:
            queued.cancel()
            await asyncio.gather(queued, return_exceptions=True)


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args)


async def test_text_output_escapes_every_control_character(published: Published) -> None:
    leader = await cli(*published.common, "leader", "odd")
    assert leader.returncode == 0, leader.stderr
    (line,) = leader.stdout.splitlines()
    assert_terminal_safe(leader.stdout)
    assert "value=\\x1b]0;pwned\\x07\\x1b[2J\\x00one\\ntwo\\rthree\\x7f\\u202e\\xff\\xfe" in line

    status = await cli(*published.common, "status", "odd")
    assert status.returncode == 0, status.stderr
    assert_terminal_safe(status.stdout)
    _title, _columns, first, second = status.stdout.splitlines()  # one line per candidate
    assert first.split()[:2] == ["1", "leader"] and "\\x1b]0;pwned" in first
    assert "naïve ✓\\nsecond line" in second


async def test_json_gives_a_consumer_the_exact_bytes(published: Published) -> None:
    leader = await cli(*published.common, "--json", "leader", "odd")
    record = json.loads(leader.stdout)
    assert record["value"] is None  # not UTF-8: no lossy text stands in for it
    assert base64.b64decode(record["value_base64"], validate=True) == HOSTILE
    assert leader.stdout.isascii() and leader.stdout.count("\n") == 1

    status = await cli(*published.common, "-w", "json", "status", "odd")
    candidates = [json.loads(line) for line in status.stdout.splitlines()][:-1]
    assert [base64.b64decode(c["value_base64"]) for c in candidates] == [
        HOSTILE,
        UTF8_WITH_NEWLINE,
    ]
    assert candidates[1]["value"] == UTF8_WITH_NEWLINE.decode()  # valid UTF-8: kept as text


async def test_print_value_only_gives_a_pipe_the_bytes_and_a_terminal_escapes(
    published: Published,
) -> None:
    argv = [*published.common, "leader", "odd", "--print-value-only"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "etcd_elector", *argv],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == HOSTILE + b"\n"  # byte for byte, as etcdctl prints it

    code, shown = await asyncio.to_thread(run_on_a_terminal, argv)
    assert code == 0
    assert_terminal_safe(shown.rstrip("\r\n"))
    assert shown.rstrip("\r\n") == printable(HOSTILE)


def run_on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run the CLI with stdout on a pseudo-terminal; return its exit code and what it wrote."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "etcd_elector", *argv],
            stdout=terminal,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(terminal)
    chunks = []
    try:
        for _ in range(10_000):
            try:
                chunk = os.read(controller, 4096)
            except OSError as exc:  # EIO: the other side is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    return process.wait(timeout=30), b"".join(chunks).decode()


async def test_print_value_only_with_no_leader_prints_nothing(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    argv = ["--endpoints", etcd_endpoint, "--namespace", namespace_of(etcd_prefix)]
    done = await cli(*argv, "leader", "nobody", "--print-value-only")
    assert (done.returncode, done.stdout, done.stderr) == (ExitCode.NO_LEADER, "", "")


def test_errors_that_quote_the_command_line_are_escaped() -> None:
    done = run_cli("leader", "x", "\x1b[2J\x1b]0;pwned\x07")  # argparse quotes it raw
    assert done.returncode == ExitCode.USAGE
    assert_terminal_safe(done.stderr)
    assert "\\x1b[2J" in done.stderr and done.stderr.count("\n") == 1
    done = run_cli("leader", "\x1b[31mred")
    assert done.returncode == ExitCode.CONFIGURATION
    assert_terminal_safe(done.stderr)


def test_log_lines_escape_values_but_keep_tracebacks() -> None:
    formatter = _PrintableFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "etcd_elector.x", logging.INFO, "f", 1, "value=%s", ("\x1b[2J\n",), None
    )
    assert formatter.format(record) == "INFO value=\\x1b[2J\\n"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    lines = formatter.format(record).splitlines()
    assert lines[0] == "INFO value=\\x1b[2J\\n" and lines[1].startswith("Traceback")


def test_printable_is_idempotent_and_bounded() -> None:
    once = printable(HOSTILE)
    assert printable(once) == once
    assert printable("plain text, é ✓") == "plain text, é ✓"
    assert printable("\u2028\u00a0") == "\\u2028\\xa0"
    assert printable("x" * 50, limit=10) == "x" * 10 + "... (40 more characters)"


def test_text_events_are_one_line_whatever_a_field_holds() -> None:
    stream = io.StringIO()
    printer = Printer(json_lines=False, stream=stream)
    printer.event("lost", "job", reason="odd\nreason\x1b[0m", value=b"a\nb")
    assert stream.getvalue() == "lost job reason=odd\\nreason\\x1b[0m value=a\\nb\n"
