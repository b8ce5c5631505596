"""check_timing and ``etcd-elector check-config``: the failover bounds, drift tolerance and
warnings follow from the session's own rules and etcd's lease behaviour."""

from __future__ import annotations

import json

import pytest

from etcd_elector import ConfigurationError, check_timing
from etcd_elector._election._timing import default_margin, etcd_min_ttl
from etcd_elector.cli import main


def test_defaults_match_the_session_and_etcd() -> None:
    report = check_timing()
    assert report.ttl == report.granted_ttl == 10
    assert report.margin == default_margin(10) == 1.5
    assert report.keepalive_interval == pytest.approx(10 / 3)
    assert report.leader_stops_after == 8.5
    assert report.renewal_headroom == pytest.approx(10 - 1.5 - 10 / 3)
    assert report.drift_tolerance_ppm == pytest.approx(150_000)
    assert report.warnings == ()
    bounds = {f.event: (f.seconds, f.round_trips) for f in report.failovers}
    assert bounds == {
        "resign": (0.0, 1),
        "crash": (10.5, 1),  # TTL + etcd's 0.5 s expiry sweep
        "partition": (10.5, 1),
        "etcd-leader-change": (23.5, 1),  # 2 TTL + 2 elections + Promote's extension + sweep
    }


@pytest.mark.parametrize(
    ("election", "heartbeat", "expected"),
    [(1.0, 0.1, 2), (0.5, 0.1, 1), (2.0, 0.1, 3), (5.0, 0.5, 8), (1.0, 0.2, 2)],
)
def test_etcd_minimum_ttl_uses_whole_ticks(
    election: float, heartbeat: float, expected: int
) -> None:
    assert etcd_min_ttl(election, heartbeat) == expected


def test_a_ttl_below_etcds_minimum_is_computed_with_the_granted_ttl() -> None:
    report = check_timing(ttl=1)
    assert report.granted_ttl == 2
    assert any("below etcd's minimum of 2 s" in warning for warning in report.warnings)
    assert {f.event: f.seconds for f in report.failovers}["crash"] == 2.5


def test_a_long_keepalive_interval_warns_that_one_late_renewal_costs_the_lease() -> None:
    report = check_timing(ttl=10, keepalive_interval=5)
    assert report.renewal_headroom == pytest.approx(3.5)
    assert any("single late renewal" in warning for warning in report.warnings)


def test_a_short_ttl_warns_about_etcd_leader_elections() -> None:
    report = check_timing(ttl=3)
    assert any("etcd leader election" in warning for warning in report.warnings)
    assert not check_timing(ttl=10).warnings


def test_a_tiny_margin_warns_about_clock_drift() -> None:
    report = check_timing(ttl=10, margin=0.005)
    assert report.drift_tolerance_ppm == pytest.approx(500)
    assert any("ppm" in warning for warning in report.warnings)


@pytest.mark.parametrize(
    "settings",
    [
        {"ttl": 0},
        {"ttl": 2.5},
        {"ttl": 10, "margin": 10},
        {"ttl": 10, "margin": -1},
        {"ttl": 10, "keepalive_interval": 9},
        {"ttl": 10, "election_timeout": 0},
        {"ttl": 10, "election_timeout": 0.3, "heartbeat": 0.1},  # etcd wants 5 heartbeats
    ],
)
def test_settings_a_session_would_refuse_raise(settings: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        check_timing(**settings)


@pytest.fixture(autouse=True)
def no_ttl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETCD_ELECTOR_TTL", raising=False)


def test_cli_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    for text in ("leader crash", "10.5 s", "etcd leader change", "150000 ppm", "warnings: none"):
        assert text in out


def test_cli_json_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--json", "--ttl", "4", "check-config", "--margin", "1", "--etcd-election-timeout", "2"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["event"] == "check_config"
    assert (record["ttl"], record["margin"], record["etcd_min_ttl"]) == (4, 1.0, 3)
    assert record["warnings"]  # headroom 1.67 s < 2 x 2 s election timeout


@pytest.mark.parametrize(
    "argv",
    [
        ["--ttl", "10", "check-config", "--margin", "12"],
        ["--ttl", "abc", "check-config"],
        ["check-config", "--keepalive-interval", "-1"],
        ["check-config", "--etcd-election-timeout", "0"],
    ],
)
def test_cli_invalid_settings_exit_4(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 4
    assert capsys.readouterr().err.startswith("etcd-elector: error: ")


def test_the_docstring_example_holds() -> None:
    import doctest

    from etcd_elector._election import _timing

    result = doctest.testmod(_timing)
    assert result.attempted >= 3 and result.failed == 0
