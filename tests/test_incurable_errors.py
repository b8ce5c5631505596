"""Errors that no retry can cure are raised, not retried forever, and say what to do; values,
keys and identities reach log lines bounded and printable.

Whether retrying can cure an error is a property of its class (``retriable``), drawn in the
error tree at the top of ``_errors.py``; the tests hold the drawing and the classes together.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from helpers.cli_process import run_cli
from helpers.election_kit import WAIT_S, namespace_of

import etcd_elector
from etcd_elector import (
    AsyncClient,
    EtcdElectorError,
    JsonLogFormatter,
    Op,
    RequestRejected,
    RequestTooLarge,
    _errors,
)
from etcd_elector._bounded import LIMIT, bounded
from etcd_elector._repeats import RepeatThrottle
from etcd_elector.cli._exit import ExitCode
from etcd_elector.testing import EtcdCluster

pytestmark = pytest.mark.timeout(60)

BIG = 1_600_000  # over etcd's default --max-request-bytes (1.5 MiB)


# -- the error tree ------------------------------------------------------------------------------


def _error_classes() -> dict[str, type[EtcdElectorError]]:
    return {name: getattr(_errors, name) for name in _errors.__all__}


def test_the_error_tree_marks_exactly_the_errors_retrying_cannot_cure() -> None:
    assert _errors.__doc__ is not None
    drawn = dict(re.findall(r"[─└├]\s*(\w+)\s+(!?)", _errors.__doc__))
    drawn[_errors.EtcdElectorError.__name__] = ""  # the root, drawn without a branch
    classes = _error_classes()
    assert set(drawn) == set(classes)
    incurable = {name for name, mark in drawn.items() if mark == "!" and name != "EtcdElectorError"}
    assert incurable == {name for name, cls in classes.items() if not cls.retriable} - {
        "EtcdElectorError"
    }
    assert set(_errors.__all__) <= set(etcd_elector.__all__)


# -- etcd's refusals -------------------------------------------------------------------------


async def test_requests_etcd_refuses_map_to_errors_that_say_what_to_do(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        too_large = await _raised(client.put(etcd_prefix + "big", b"v" * BIG))
        far_too_large = await _raised(client.put(etcd_prefix + "big", b"v" * 3_000_000))
        too_many = await _raised(
            client.txn([], [Op.put(f"{etcd_prefix}{i}", "v") for i in range(200)])
        )
        twice = await _raised(
            client.txn([], [Op.put(etcd_prefix + "k", "1"), Op.put(etcd_prefix + "k", "2")])
        )
        empty = await _raised(client.put(b"", "v"))
    for error in (too_large, far_too_large):
        assert isinstance(error, RequestTooLarge)
        assert "--max-request-bytes" in str(error)
    assert isinstance(too_many, RequestRejected) and "--max-txn-ops" in str(too_many)
    assert isinstance(twice, RequestRejected) and "only once" in str(twice)
    assert isinstance(empty, RequestRejected) and "non-empty key" in str(empty)
    for error in (too_large, far_too_large, too_many, twice, empty):
        assert not error.retriable
        assert error.__cause__ is not None


async def test_an_elector_with_a_value_too_large_ends_run_with_the_limit_and_the_fix(
    etcd_endpoint: str, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: "request is too large" logged every second, forever, with the whole value in each
    line. Now ``run()`` raises at the first refusal, and no line carries the value."""
    caplog.set_level(logging.DEBUG, logger="etcd_elector")
    value = b"\x1b[31m\r\n" + b"v" * BIG
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.elector("big", namespace=namespace_of(etcd_prefix), value=value, ttl=5) as elector,
    ):
        async with asyncio.timeout(WAIT_S):
            with pytest.raises(RequestTooLarge, match="--max-request-bytes"):
                await elector.run(_never_called)
        assert await elector.view.candidates() == ()  # the campaign left no key behind
    records = [r for r in caplog.records if r.name.startswith("etcd_elector")]
    assert any("identity=" in r.getMessage() for r in records)
    formatter = JsonLogFormatter()
    for record in records:
        line = formatter.format(record)
        assert len(line) < 4 * LIMIT + 1000, line[:300]
        assert "\x1b" not in line and "\r" not in record.getMessage()
        if "identity" in json.loads(line):
            assert json.loads(line)["identity"].endswith(f"[{len(value)} bytes]")


def test_the_cli_says_a_value_is_over_etcds_limit(etcd_binary: str) -> None:
    """A command-line argument cannot hold 1.5 MiB; an etcd with a lower limit shows the path."""
    limit = 32 * 1024
    with EtcdCluster.start(
        1, binary=etcd_binary, extra_args=("--max-request-bytes", str(limit))
    ) as cluster:
        done = run_cli(
            "--endpoints", cluster.endpoint_string, "campaign", "x", "--value", "v" * 2 * limit
        )
    lines = done.stderr.splitlines()
    assert done.returncode == ExitCode.CONFIGURATION, done.stderr[:500]
    assert len(lines) == 1 and lines[0].startswith("etcd-elector: error: ")
    assert "--max-request-bytes" in lines[0]
    assert len(lines[0]) < 1000


# -- bounded values --------------------------------------------------------------------------


def test_bounded_keeps_short_printable_values_as_they_are() -> None:
    assert bounded("host-a:1234") == "host-a:1234"
    assert bounded(b"/etcd-elector/x/694d8a1b") == "/etcd-elector/x/694d8a1b"
    assert bounded("") == ""


def test_bounded_escapes_what_is_not_printable() -> None:
    assert bounded("a\x1b[31mb\n\t") == "a\\x1b[31mb\\n\\t"
    assert bounded(b"caf\xc3\xa9 \xff") == "café \\xff"
    assert bounded("line\u2028sep") == "line\\u2028sep"


def test_bounded_cuts_long_values_and_says_how_long_they_were() -> None:
    big = bounded(b"v" * BIG)
    assert big == "v" * LIMIT + f"…[{BIG} bytes]"
    assert bounded("w" * 500, limit=10) == "w" * 10 + "…[500 characters]"
    escaped = bounded("\x00" * 100, limit=10)
    assert escaped == "\\x00\\x00…[100 characters]"  # escapes count against the limit
    assert all(c.isprintable() for c in bounded(bytes(range(256)) * 10))
    assert len(bounded(bytes(range(256)) * 10)) <= LIMIT + len("…[2560 bytes]")


# -- how often a repeating failure is logged -------------------------------------------------


def test_a_repeating_failure_warns_when_new_then_once_per_interval() -> None:
    now = [100.0]
    throttle = RepeatThrottle(interval=60.0, clock=lambda: now[0])
    assert throttle.level("full") == (logging.WARNING, 0)
    for _ in range(5):
        now[0] += 5
        assert throttle.level("full") == (logging.DEBUG, 0)
    assert throttle.level("unreachable") == (logging.WARNING, 0)  # another kind: at once
    now[0] += 1
    assert throttle.level("unreachable") == (logging.DEBUG, 0)
    now[0] += 60
    assert throttle.level("unreachable") == (logging.WARNING, 1)  # with the quiet count
    throttle.reset()  # an attempt succeeded
    assert throttle.level("unreachable") == (logging.WARNING, 0)


async def _raised(call: object) -> EtcdElectorError:
    assert asyncio.iscoroutine(call)
    try:
        await call
    except EtcdElectorError as exc:
        return exc
    raise AssertionError("etcd accepted the request")


async def _never_called(term: object) -> None:
    raise AssertionError("a campaign with a value etcd refuses was won")
