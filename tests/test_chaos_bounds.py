"""The recovery bound the checker holds each fault to, and how it reports a slow recovery."""

from __future__ import annotations

from etcd_elector.testing import Record, RecordKind, check_history, recovery_bound
from etcd_elector.testing._chaos import (
    DATA_LOSS_FAULTS,
    FAULTS,
    MEMBER_FAULTS,
    PEER_FAULTS,
    fault_kind,
)


def test_a_candidate_fault_allows_one_lease_expiry_and_a_campaign() -> None:
    bound = recovery_bound("candidate", ttl=2, election_timeout=0.5, heartbeat=0.05)
    # The TTL, etcd's 0.5 s expiry sweep, 1.5 s to reconnect and campaign.
    assert bound.seconds == 2 + 0.5 + 1.5
    assert "expiry sweep" in bound.why


def test_an_etcd_fault_allows_an_etcd_election_and_restarted_leases() -> None:
    bound = recovery_bound("etcd", ttl=2, election_timeout=0.5, heartbeat=0.05)
    # A lease about to run out (TTL), two election timeouts without an etcd leader, every
    # lease restarted at TTL + election timeout, the sweep, then the campaign.
    assert bound.seconds == 2 + 2 * 0.5 + (2 + 0.5) + 0.5 + 1.5
    longer = recovery_bound("etcd", ttl=2, election_timeout=1.0, heartbeat=0.1)
    assert longer.seconds > bound.seconds  # it follows etcd's settings


def test_a_data_loss_allows_restored_leases_and_a_campaign_after_the_repair() -> None:
    bound = recovery_bound("history", ttl=2, election_timeout=0.5, heartbeat=0.05)
    # Healed once etcd serves again, repaired: a key restored from the snapshot lives TTL +
    # election timeout after etcd's restart (before the heal), then the sweep, the campaign.
    assert bound.seconds == 2 + 0.5 + 0.5 + 1.5
    assert "restored from a snapshot" in bound.why
    assert bound.seconds < recovery_bound("etcd", ttl=2, election_timeout=0.5).seconds


def test_every_fault_that_can_cost_etcd_its_leader_gets_the_etcd_bound() -> None:
    for fault in FAULTS:
        if fault in DATA_LOSS_FAULTS:
            expected = "history"
        elif fault in MEMBER_FAULTS + PEER_FAULTS:
            expected = "etcd"
        else:
            expected = "candidate"
        assert fault_kind(fault) == expected, fault
    assert {fault_kind(f) for f in PEER_FAULTS} == {"etcd"}
    assert {fault_kind(f) for f in DATA_LOSS_FAULTS} == {"history"}


def test_a_slow_recovery_names_the_fault() -> None:
    history = [
        Record(RecordKind.ELECTED, time=1.0, candidate="a", token=5),
        Record(RecordKind.LOST, time=2.0, candidate="a", until=2.0),
        Record(RecordKind.HEALED, time=3.0, until=4.0, detail="partition_leader_member: m1"),
        Record(RecordKind.ELECTED, time=7.5, candidate="b", token=9),
    ]
    report = check_history(history)
    assert [v.kind for v in report.violations] == ["failover"]
    assert "fault (partition_leader_member: m1) healed" in report.violations[0].message
    assert "after 4.500s" in report.violations[0].message
