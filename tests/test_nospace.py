"""etcd's NOSPACE alarm (its database reached ``--quota-backend-bytes``): a distinct error that
says what an operator must do; the elector rides it out without a warning on every attempt and
wins once space is freed; ``campaign --once`` and ``run --once`` exit with their own code.

Each test fills a real etcd started with a 1 MiB quota.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable, Iterator

import pytest
from helpers.cli_process import CliProcess, run_cli, wait_until
from helpers.election_kit import WAIT_S, namespace_of
from helpers.election_kit import wait_until as wait_for
from helpers.etcd_space import fill_until_full, free_space, start_small_etcd

from etcd_elector import AsyncClient, DatabaseSpaceExceeded, ElectorState, JsonLogFormatter
from etcd_elector.cli._exit import ExitCode
from etcd_elector.testing import EtcdCluster

pytestmark = pytest.mark.timeout(120)

ATTEMPTS = 4  # failed attempts seen before judging how often they were logged
IDENTITY = b"\x1b]0;pwned\x07" + b"i" * 5000  # a value no log line may carry whole


@pytest.fixture
def full_etcd(etcd_binary: str, etcd_prefix: str) -> Iterator[EtcdCluster]:
    """A one-member etcd with a 1 MiB quota, filled until its NOSPACE alarm is raised."""
    with start_small_etcd(etcd_binary) as cluster:

        async def fill() -> None:
            async with AsyncClient(cluster.endpoint_string) as client:
                await fill_until_full(client, etcd_prefix)

        asyncio.run(fill())
        yield cluster


async def test_a_full_etcd_raises_an_error_naming_the_alarm_and_the_fix(
    etcd_binary: str, etcd_prefix: str
) -> None:
    with start_small_etcd(etcd_binary) as cluster:
        async with AsyncClient(cluster.endpoint_string) as client:
            full = await fill_until_full(client, etcd_prefix)
            refused_lease = None
            try:
                await client.lease_grant(5)
            except DatabaseSpaceExceeded as exc:
                refused_lease = exc
    for error in (full, refused_lease):
        assert isinstance(error, DatabaseSpaceExceeded)
        assert error.retriable  # an operator can cure it
        for words in ("NOSPACE", "compact", "defragment", "etcdctl alarm disarm"):
            assert words in str(error)


async def test_the_elector_rides_out_a_full_etcd_quietly_and_wins_once_space_is_freed(
    full_etcd: EtcdCluster, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="etcd_elector._election._elector")
    member = full_etcd.members[0]
    async with (
        AsyncClient(full_etcd.endpoint_string) as client,
        client.elector(
            "full",
            namespace=namespace_of(etcd_prefix),
            value=IDENTITY,
            ttl=5,
            backoff=(0.02, 0.1),
        ) as elector,
    ):
        states = elector.states()
        work_started = asyncio.Event()

        async def work(term: object) -> None:
            work_started.set()
            await asyncio.Event().wait()

        runner = asyncio.create_task(elector.run(work))
        await wait_for(
            lambda: len(_failed_attempts(caplog)) >= ATTEMPTS, f"{ATTEMPTS} failed attempts"
        )
        attempts = _failed_attempts(caplog)
        warnings = [r for r in attempts if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "NOSPACE" in warnings[0].getMessage()
        assert "etcdctl alarm disarm" in warnings[0].getMessage()
        assert not runner.done()  # still trying: an operator can fix it
        for record in attempts:  # and the identity in each line is bounded and printable
            line = JsonLogFormatter().format(record)
            assert "\x1b" not in line and len(line) < 2000, line[:300]
            assert json.loads(line)["identity"].endswith(f"[{len(IDENTITY)} bytes]")

        await free_space(member, client, etcd_prefix)
        async with asyncio.timeout(WAIT_S):
            async for change in states:
                if change.state is ElectorState.LEADING:
                    break
            await work_started.wait()
        await elector.close()
        await runner


def test_campaign_once_exits_with_its_own_code_when_etcd_is_full(full_etcd: EtcdCluster) -> None:
    done = run_cli("--endpoints", full_etcd.endpoint_string, "campaign", "full", "--once")
    _assert_no_space_exit(done.returncode, done.stderr)


def test_run_once_exits_with_its_own_code_when_etcd_is_full(full_etcd: EtcdCluster) -> None:
    done = run_cli("--endpoints", full_etcd.endpoint_string, "run", "full", "--once", "--", "true")
    _assert_no_space_exit(done.returncode, done.stderr)


def test_campaign_without_once_keeps_trying_and_warns_once(
    full_etcd: EtcdCluster, cli: Callable[..., CliProcess]
) -> None:
    process = cli(
        "--endpoints", full_etcd.endpoint_string, "--log-level", "debug", "campaign", "full"
    )

    def attempts() -> list[str]:
        return [line for line in process.stderr_lines if "cannot start a session" in line]

    wait_until(lambda: len(attempts()) >= ATTEMPTS, WAIT_S, f"{ATTEMPTS} failed attempts")
    warned = [line for line in attempts() if " WARNING " in line]
    assert len(warned) == 1, warned
    assert "NOSPACE" in warned[0]
    assert process.proc.poll() is None  # still campaigning
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(timeout=WAIT_S) == 128 + signal.SIGTERM


def _failed_attempts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "etcd_elector._election._elector"
        and r.getMessage().startswith(("cannot start a session", "campaign failed"))
    ]


def _assert_no_space_exit(code: int, stderr: str) -> None:
    lines = stderr.splitlines()
    assert code == ExitCode.NO_SPACE, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("etcd-elector: error: ")
    for words in ("NOSPACE", "etcdctl alarm disarm"):
        assert words in lines[0]
    assert "Traceback" not in stderr
