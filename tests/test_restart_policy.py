"""``run``'s restart rules (``--restart``, ``--max-failures``, ``--failure-window``): pure
timing logic, checked with a fake clock."""

from __future__ import annotations

from etcd_elector.cli._restart import RESTART_BACKOFF, STABLE_RUN, Decision, RestartPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_never_exits_and_on_failure_exits_only_on_success() -> None:
    assert RestartPolicy("never", max_failures=5, window=60).after_exit(1, 1).action == "exit"
    on_failure = RestartPolicy("on-failure", max_failures=5, window=60)
    assert on_failure.after_exit(0, 1) == Decision("exit")
    assert on_failure.after_exit(2, 1).action == "restart"
    assert RestartPolicy("always", max_failures=5, window=60).after_exit(0, 1).action == "restart"


def test_backoff_doubles_up_to_its_cap_and_resets_after_a_stable_run() -> None:
    policy = RestartPolicy("always", max_failures=0, window=60)
    delays = [policy.after_exit(0, 0.1).delay for _ in range(7)]
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, RESTART_BACKOFF[1], RESTART_BACKOFF[1]]
    assert policy.after_exit(0, STABLE_RUN).delay == RESTART_BACKOFF[0]


def test_the_term_is_given_up_at_max_failures_within_the_window() -> None:
    clock = FakeClock()
    policy = RestartPolicy("on-failure", max_failures=3, window=60, clock=clock)
    assert policy.after_exit(1, 1).action == "restart"
    clock.now += 30
    assert policy.after_exit(1, 1).action == "restart"
    clock.now += 31  # the first failure has left the window
    assert policy.after_exit(1, 1).action == "restart"
    clock.now += 1
    assert policy.after_exit(1, 1) == Decision("resign", failures=3)


def test_successes_are_not_failures_and_zero_never_gives_up() -> None:
    clock = FakeClock()
    policy = RestartPolicy("always", max_failures=2, window=60, clock=clock)
    for _ in range(5):
        assert policy.after_exit(0, 1).action == "restart"
    patient = RestartPolicy("always", max_failures=0, window=60, clock=clock)
    for _ in range(50):
        assert patient.after_exit(1, 1).action == "restart"
