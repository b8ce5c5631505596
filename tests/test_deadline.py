"""``LeaseDeadline``: pure timing logic, checked on a fake clock (no etcd, no sleeping)."""

from __future__ import annotations

import math

import pytest

from etcd_elector._election._deadline import LeaseDeadline


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_a_new_deadline_has_already_passed() -> None:
    clock = FakeClock()
    deadline = LeaseDeadline(clock, margin=0.5)
    assert deadline.at == -math.inf
    assert deadline.passed()
    assert deadline.remaining() == 0.0


def test_deadline_is_send_time_plus_granted_ttl_minus_margin() -> None:
    clock = FakeClock()
    deadline = LeaseDeadline(clock, margin=0.5)
    sent_at = clock()
    clock.advance(0.3)  # the answer arrives 0.3 s after the request left
    deadline.renewed(sent_at, granted_ttl=2)
    # Counted from the send time, never from the receipt.
    assert deadline.at == pytest.approx(sent_at + 2 - 0.5)
    assert deadline.remaining() == pytest.approx(2 - 0.5 - 0.3)
    assert not deadline.passed()


def test_passes_exactly_at_the_deadline_without_any_timer() -> None:
    clock = FakeClock()
    deadline = LeaseDeadline(clock, margin=1.0)
    deadline.renewed(clock(), granted_ttl=5)
    clock.advance(3.999)
    assert not deadline.passed()
    assert deadline.remaining() == pytest.approx(0.001)
    clock.advance(0.001)
    assert deadline.passed()
    assert deadline.remaining() == 0.0
    # A long jump (a paused process) is seen at the very next check.
    clock.advance(3600)
    assert deadline.passed()
    assert deadline.remaining() == 0.0


def test_renewals_extend_the_deadline() -> None:
    clock = FakeClock()
    deadline = LeaseDeadline(clock, margin=0.5)
    deadline.renewed(clock(), granted_ttl=3)
    first = deadline.at
    clock.advance(1)
    deadline.renewed(clock(), granted_ttl=3)
    assert deadline.at == pytest.approx(first + 1)


def test_a_late_answer_to_an_older_request_never_shortens_the_deadline() -> None:
    clock = FakeClock()
    deadline = LeaseDeadline(clock, margin=0.5)
    old_sent = clock()
    clock.advance(1)
    new_sent = clock()
    deadline.renewed(new_sent, granted_ttl=3)
    at = deadline.at
    deadline.renewed(old_sent, granted_ttl=3)  # arrives after the newer one
    assert deadline.at == at
    # Nor does a smaller granted TTL on a later answer pull it back.
    deadline.renewed(new_sent, granted_ttl=1)
    assert deadline.at == at


def test_an_answer_older_than_the_margin_leaves_it_passed() -> None:
    clock = FakeClock()
    deadline = LeaseDeadline(clock, margin=0.5)
    sent_at = clock()
    clock.advance(2.6)  # the answer took longer than ttl - margin to come back
    deadline.renewed(sent_at, granted_ttl=3)
    assert deadline.passed()
    assert deadline.remaining() == 0.0


def test_zero_margin() -> None:
    clock = FakeClock()
    deadline = LeaseDeadline(clock, margin=0.0)
    deadline.renewed(clock(), granted_ttl=2)
    assert deadline.remaining() == pytest.approx(2)
    clock.advance(2)
    assert deadline.passed()
