"""The bounded fault run: seeded schedules against real candidate processes and real etcd.

A long soak runs from the command line (``etcd-elector chaos --duration 30m``); here a few
seeds run briefly on every submission.
"""

from __future__ import annotations

import pytest

from etcd_elector.testing import ChaosSettings, run_chaos


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("seed", "members"), [(11, 1), (12, 1), (13, 3)])
def test_no_split_brain_under_random_faults(seed: int, members: int) -> None:
    result = run_chaos(ChaosSettings(duration=20, seed=seed, ttl=2, candidates=3, members=members))
    assert result.report.ok, result.summary()
    assert result.trials >= 3
    assert result.report.writes_committed > 0, "leaders did no fenced work"
    assert len(result.report.intervals) >= 2, "no failover happened at all"
