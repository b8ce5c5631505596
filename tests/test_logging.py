"""Logs: the library's records carry ``election``, ``key``, ``lease`` (hex), ``identity`` and
``token`` as attributes (not only in the text); the JSON formatter keeps every field; the CLI
writes JSON lines on stderr with ``--log-format json``."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable

import pytest
from helpers.cli_process import CliProcess, run_cli
from helpers.election_kit import WAIT_S, namespace_of, wait_until

from etcd_elector import AsyncClient, AsyncElection, EndReason, JsonLogFormatter, Term
from etcd_elector._bounded import bounded
from etcd_elector._log import log_event

pytestmark = pytest.mark.timeout(60)


def one(records: list[logging.LogRecord], start: str) -> logging.LogRecord:
    found = [r for r in records if r.getMessage().startswith(start)]
    assert len(found) == 1, (start, [r.getMessage() for r in records])
    return found[0]


def fields(record: logging.LogRecord, *names: str) -> dict[str, object]:
    return {name: getattr(record, name, "<missing>") for name in names}


async def test_session_and_election_records_carry_the_structured_fields(
    etcd_endpoint: str, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="etcd_elector")
    async with AsyncClient(etcd_endpoint) as client:
        session = await client.session(ttl=2).start()
        lease = f"{session.lease_id:x}"
        election = AsyncElection(session, "logged", namespace=namespace_of(etcd_prefix))
        term = await election.campaign("host-a")
        await wait_until(
            lambda: any(r.getMessage().startswith("lease renewed") for r in caplog.records),
            "one renewal",
            WAIT_S,
        )
        await election.resign()
        await session.close()
    records = [r for r in caplog.records if r.name.startswith("etcd_elector")]

    started = one(records, "session started")
    assert started.levelno == logging.INFO and started.name == "etcd_elector._election._session"
    assert fields(started, "lease", "ttl") == {"lease": lease, "ttl": session.ttl}
    assert f"lease={lease}" in started.getMessage()

    renewed = next(r for r in records if r.getMessage().startswith("lease renewed"))
    assert renewed.levelno == logging.DEBUG
    assert getattr(renewed, "lease", None) == lease
    assert 0 <= getattr(renewed, "rtt", -1) < 2 and 0 < getattr(renewed, "margin_left", 0) < 2

    about_term = {
        "election": "logged",
        "key": term.key,
        "lease": lease,
        "identity": "host-a",
    }
    campaign = one(records, "campaign started")
    assert campaign.levelno == logging.INFO
    assert fields(campaign, *about_term) == about_term

    elected = one(records, "elected")
    assert elected.levelno == logging.INFO
    assert fields(elected, *about_term, "token") == {**about_term, "token": term.token}
    for text in (f"key={term.key}", f"lease={lease}", f"token={term.token}", "identity=host-a"):
        assert text in elected.getMessage()

    ended = one(records, "leadership ended")
    assert ended.levelno == logging.INFO
    assert fields(ended, *about_term, "token", "reason") == {
        **about_term,
        "token": term.token,
        "reason": "resigned",
    }
    assert getattr(ended, "duration", -1) >= 0

    closed = one(records, "session ended")
    assert fields(closed, "lease", "reason") == {"lease": lease, "reason": "closed"}


async def test_the_elector_reports_each_term_with_its_fields(
    etcd_endpoint: str, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="etcd_elector")
    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector(
            "logged-elector", ttl=2, namespace=namespace_of(etcd_prefix), requeue=False
        )
        async with elector:

            async def work(term: Term) -> int:
                return term.token

            token = await asyncio.wait_for(elector.run(work), WAIT_S)
    over = one(
        [r for r in caplog.records if r.name == "etcd_elector._election._elector"], "term over"
    )
    assert fields(over, "election", "token", "identity", "reason") == {
        "election": "logged-elector",
        "token": token,
        "identity": elector.value.decode(),
        "reason": "work_done",
    }
    lease = getattr(over, "lease", "")
    assert lease and getattr(over, "key", "").endswith(f"/{lease}")


def test_the_json_formatter_keeps_every_field() -> None:
    record = logging.LogRecord(
        "etcd_elector._election._election",
        logging.INFO,
        __file__,
        1,
        "elected key=%s",
        ("/k",),
        None,
    )
    for name, value in {"election": "e", "key": "/k", "lease": "1f", "token": 7}.items():
        setattr(record, name, value)
    record.message = "clash"  # a standard attribute, set by other formatters: not a field
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonLogFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["time"].endswith("Z") and parsed["time"][10] == "T"
    assert (parsed["level"], parsed["logger"], parsed["message"]) == (
        "INFO",
        "etcd_elector._election._election",
        "elected key=/k",
    )
    assert {k: parsed[k] for k in ("election", "key", "lease", "token")} == {
        "election": "e",
        "key": "/k",
        "lease": "1f",
        "token": 7,
    }
    assert "ValueError: boom" in parsed["exception"]


# -- the command line ---------------------------------------------------------------------------


def test_cli_log_format_json_writes_json_lines_with_the_fields(
    cli: Callable[..., CliProcess], etcd_endpoint: str, etcd_prefix: str
) -> None:
    candidate = cli(
        "--json",
        "--endpoints",
        etcd_endpoint,
        "--namespace",
        etcd_prefix.rstrip("/"),
        "--log-level",
        "info",
        "campaign",
        "json-logs",
        "--value",
        "jay",
        "--log-format",
        "json",
    )
    elected = candidate.expect("elected")
    candidate.signal(signal.SIGTERM)
    assert candidate.wait() == 128 + signal.SIGTERM
    lines = [json.loads(line) for line in candidate.stderr_lines]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    won = [line for line in lines if line["message"].startswith("elected ")]
    assert len(won) == 1
    assert won[0]["level"] == "INFO" and won[0]["logger"] == "etcd_elector._election._election"
    assert {k: won[0][k] for k in ("election", "key", "lease", "token", "identity")} == {
        "election": "json-logs",
        "key": elected["key"],
        "lease": elected["lease"],
        "token": elected["token"],
        "identity": "jay",
    }
    assert any(line["message"].startswith("session started") for line in lines)


def test_cli_log_format_from_the_environment(etcd_endpoint: str) -> None:
    quiet = run_cli(
        "--endpoints",
        etcd_endpoint,
        "--log-level",
        "debug",
        "leader",
        "nobody-here",
        env={"ETCD_ELECTOR_LOG_FORMAT": "json"},
    )
    assert quiet.returncode == 3, quiet.stderr
    assert quiet.stderr.strip(), "debug logging should say something"
    for line in quiet.stderr.splitlines():
        assert json.loads(line)["level"] in ("DEBUG", "INFO", "WARNING")
    bad = run_cli(
        "--endpoints", etcd_endpoint, "leader", "x", env={"ETCD_ELECTOR_LOG_FORMAT": "xml"}
    )
    assert bad.returncode == 4
    assert bad.stderr == (
        "etcd-elector: error: ETCD_ELECTOR_LOG_FORMAT must be one of text, json, got 'xml'\n"
    )


def test_log_event_states_each_field_once_in_the_text_and_as_an_attribute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One set of fields makes both the line and the record's attributes: values bounded and
    printable, ``None`` left out, a float shown as seconds, an enum as its value, a ``%`` in a
    value shown as it is."""
    logger = logging.getLogger("etcd_elector.test_log_event")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    huge = b"v" * 5000
    log_event(
        logger,
        logging.INFO,
        "elected",
        election="e%s",
        key="/k\x1b[2J",
        lease="1f",
        identity=huge,
        token=81,
        waited=0.0041,
        reason=EndReason.RESIGNED,
        floor=None,
        detail=ValueError("x" * 2000),
    )
    (record,) = caplog.records
    text = record.getMessage()
    assert text.startswith(
        "elected election=e%s key=/k\\x1b[2J lease=1f identity=" + "v" * 120 + "…[5000 bytes] "
        "token=81 waited=0.004s reason=resigned: " + "x" * 500 + "…[2000 characters]"
    )
    assert fields(record, "election", "key", "lease", "token", "waited", "reason") == {
        "election": "e%s",
        "key": "/k\\x1b[2J",
        "lease": "1f",
        "token": 81,
        "waited": 0.0041,
        "reason": "resigned",
    }
    assert fields(record, "identity") == {"identity": bounded(huge)}
    assert not hasattr(record, "floor") and not hasattr(record, "detail")
    assert type(fields(record, "reason")["reason"]) is str  # a plain string for any handler

    caplog.clear()
    logger.setLevel(logging.WARNING)
    log_event(logger, logging.INFO, "below the level", key=huge)
    assert caplog.records == []
