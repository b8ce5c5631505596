"""The bounded fault run: seeded schedules against real candidate processes and real etcd.

A long soak runs from the command line (``etcd-elector chaos --duration 30m``); here a few
seeds run briefly on every submission.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from etcd_elector._errors import ConfigurationError
from etcd_elector.testing import ChaosSettings, run_chaos
from etcd_elector.testing._chaos import DATA_LOSS_FAULTS, MOVE_FAULTS, PEER_FAULTS


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("seed", "members"), [(11, 1), (12, 1), (13, 3)])
def test_no_split_brain_under_random_faults(seed: int, members: int) -> None:
    result = run_chaos(ChaosSettings(duration=20, seed=seed, ttl=2, candidates=3, members=members))
    assert result.report.ok, result.summary()
    assert result.trials >= 3
    assert result.report.writes_committed > 0, "leaders did no fenced work"
    assert len(result.report.intervals) >= 2, "no failover happened at all"


@pytest.mark.timeout(300)
def test_no_split_brain_when_etcd_members_are_cut_off_from_their_peers() -> None:
    # Every fault comes once before any comes twice: two trials cover both partitions, the
    # member the leader talks to and the member a standby talks to.
    settings = ChaosSettings(
        duration=8, seed=14, ttl=2, candidates=3, members=3, faults=PEER_FAULTS, min_trials=2
    )
    result = run_chaos(settings)
    assert result.report.ok, result.summary()
    assert all(result.faults[fault] >= 1 for fault in PEER_FAULTS), result.faults
    assert result.report.writes_committed > 0, "leaders did no fenced work"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("members", "faults"),
    # With one member, mixed with a candidate killed (and replaced) and one frozen.
    [(1, ("kill", "pause_long", *DATA_LOSS_FAULTS)), (3, ("restore_old_snapshot",))],
)
def test_terms_end_and_tokens_resume_above_the_floor_when_etcd_loses_its_data(
    members: int, faults: tuple[str, ...]
) -> None:
    # Each fault once, however long it takes: bounded by the count, not by the clock.
    settings = ChaosSettings(
        duration=0,
        seed=15,
        ttl=2,
        candidates=3,
        members=members,
        faults=faults,
        min_trials=len(faults),
    )
    result = run_chaos(settings)
    report = result.report
    assert report.ok, result.summary()
    assert result.faults == dict.fromkeys(faults, 1), result.faults
    losses = sum(fault in DATA_LOSS_FAULTS for fault in faults)
    assert report.data_losses == len(result.repairs) == losses
    # Every candidate running at a loss (three, a killed one replaced) told of it, and the
    # repair moved the revision past every token seen: no token or revision was excused.
    assert report.loss_reports == 3 * losses
    assert report.regressions_reported == 0
    assert all(repair.bumped > 0 for repair in result.repairs)
    assert report.writes_committed > 0, "leaders did no fenced work"


@pytest.mark.parametrize(
    ("faults", "members", "message"),
    [
        (("partition_leader_member",), 1, "'partition_leader_member' needs three etcd members"),
        (("quorum_loss",), 1, "'quorum_loss' needs three etcd members"),
        (("wipe",), 3, "'wipe' needs a one-member etcd"),
        (("kill", "unplug"), 3, "unknown chaos fault 'unplug': choose from kill, "),
    ],
)
def test_faults_that_cannot_run_are_refused_before_starting(
    faults: tuple[str, ...], members: int, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        run_chaos(ChaosSettings(duration=1, members=members, faults=faults))


@pytest.mark.timeout(300)
def test_planned_moves_mixed_with_crashes_keep_one_leader_and_drain_before_release() -> None:
    """Handoffs (to a chosen standby and to the next in line), a preferred candidate joining
    and leaving, and pauses, mixed with kills and short freezes: no overlap, no stale write,
    and no work of a moved leader still acting once its successor's term began."""
    faults = (*MOVE_FAULTS, "kill", "pause_short")
    settings = ChaosSettings(
        duration=25, seed=21, ttl=2, candidates=3, faults=faults, min_trials=len(faults)
    )  # each fault at least once, however slow the machine
    result = run_chaos(settings)
    assert result.report.ok, result.summary()
    moves = sum(result.faults[fault] for fault in MOVE_FAULTS)
    assert moves >= 4, result.faults
    ends = Counter(interval.how_ended for interval in result.report.intervals)
    assert ends["handed_off"] >= 1 and ends["paused"] >= 1, ends
    assert result.report.writes_committed > 0, "leaders did no fenced work"
