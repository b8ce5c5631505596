"""The split-brain checker catches what it must: fed histories with planted violations."""

from __future__ import annotations

from etcd_elector.testing import Record, RecordKind, check_history, dump_records, load_records


def elected(who: str, t: float, token: int) -> Record:
    return Record(RecordKind.ELECTED, t, candidate=who, token=token)


def lost(who: str, t: float, token: int, until: float = 0.0, reason: str = "deadline") -> Record:
    return Record(RecordKind.LOST, t, candidate=who, token=token, until=until, reason=reason)


def write(who: str, t: float, token: int, revision: int, ok: bool = True) -> Record:
    return Record(RecordKind.WRITE, t, candidate=who, token=token, revision=revision, ok=ok)


def test_a_clean_history_passes() -> None:
    history = [
        elected("a", 1.0, 5),
        write("a", 1.1, 5, 6),
        lost("a", 3.0, 5, until=2.5),
        elected("b", 2.9, 7),
        write("a", 3.0, 5, 0, ok=False),
        write("b", 3.1, 7, 9),
    ]
    report = check_history(history)
    assert report.ok, report.render()
    assert report.writes_committed == 2 and report.writes_refused == 1
    assert report.worst_failover is not None and abs(report.worst_failover - 0.4) < 1e-9


def test_overlap_is_caught_even_by_a_millisecond() -> None:
    history = [elected("a", 1.0, 5), lost("a", 3.0, 5, until=2.001), elected("b", 2.0, 7)]
    report = check_history(history)
    assert [v.kind for v in report.violations] == ["overlap"]
    assert "a (token 5)" in report.violations[0].message


def test_a_paused_leader_is_judged_by_its_deadline_not_by_when_it_woke() -> None:
    # Paused past its TTL, it noticed the loss only at t=9, but its deadline passed at 2.5.
    history = [elected("a", 1.0, 5), elected("b", 3.0, 7), lost("a", 9.0, 5, until=2.5)]
    assert check_history(history).ok


def test_a_leader_that_never_recorded_its_end_overlaps() -> None:
    history = [elected("a", 1.0, 5), elected("b", 3.0, 7)]
    assert [v.kind for v in check_history(history).violations] == ["overlap"]


def test_a_killed_leader_ends_at_its_kill() -> None:
    history = [
        elected("a", 1.0, 5),
        Record(RecordKind.KILLED, 2.0, candidate="a"),
        elected("b", 4.0, 7),
    ]
    assert check_history(history).ok


def test_reused_token_is_caught() -> None:
    history = [elected("a", 1.0, 5), lost("a", 2.0, 5), elected("b", 3.0, 5)]
    assert [v.kind for v in check_history(history).violations] == ["token"]


def test_token_going_backwards_is_caught() -> None:
    history = [elected("a", 1.0, 8), lost("a", 2.0, 8), elected("b", 3.0, 6)]
    assert [v.kind for v in check_history(history).violations] == ["token"]


def test_stale_fenced_write_is_caught() -> None:
    history = [
        elected("a", 1.0, 5),
        lost("a", 2.0, 5),
        elected("b", 3.0, 7),
        write("b", 3.1, 7, 10),
        write("a", 3.2, 5, 11),  # committed after the newer leader wrote
    ]
    violations = check_history(history).violations
    assert [v.kind for v in violations] == ["stale_write"]
    assert "token 5 at revision 11" in violations[0].message


def test_slow_recovery_after_the_last_heal_is_caught() -> None:
    history = [
        elected("a", 1.0, 5),
        lost("a", 2.0, 5),
        Record(RecordKind.HEALED, 2.5),
        elected("b", 9.0, 7),
    ]
    assert [v.kind for v in check_history(history, failover_bound=3.0).violations] == ["failover"]
    assert check_history(history, failover_bound=7.0).ok


def test_no_leader_ever_after_heal_is_caught() -> None:
    history = [elected("a", 1.0, 5), lost("a", 2.0, 5), Record(RecordKind.HEALED, 2.5)]
    report = check_history(history, failover_bound=3.0)
    assert [v.kind for v in report.violations] == ["failover"]
    assert "never" in report.violations[0].message


def test_history_round_trips_through_json_lines() -> None:
    history = [
        elected("a", 1.0, 5),
        Record(RecordKind.EXITED, 2.0, candidate="a", leases=(1, 2)),
        Record(RecordKind.FAULT, 1.5, detail="sigstop a"),
    ]
    assert list(load_records(dump_records(history).splitlines())) == history


# -- etcd losing its data: tokens and revisions that go back --------------------------------


def data_lost(t: float, back_to: int = 1) -> Record:
    """The nemesis: etcd's history went back at ``t``, to revision ``back_to``."""
    return Record(RecordKind.DATA_LOST, t, revision=back_to, detail="wipe")


def reported(who: str, t: float, previous: int, now: int) -> Record:
    """``who``'s library: etcd went back from revision ``previous`` to ``now``."""
    return Record(
        RecordKind.HISTORY_LOST,
        t,
        candidate=who,
        revision=now,
        previous_revision=previous,
        reason="revision_went_back",
        detail=f"etcd's revision went back from {previous} to {now}",
    )


def seen(who: str, t: float, revision: int) -> Record:
    return Record(RecordKind.SEEN, t, candidate=who, revision=revision)


HISTORY_LOST = "etcd_history_lost"


def regressed_token(*, report_at: float | None) -> list[Record]:
    """a leads with token 4000 and writes up to revision 6000; etcd is wiped; b leads with
    token 5 and writes at 6 and 7 (revisions that a's writes had), after a report made at
    ``report_at``, if any."""
    history = [
        seen("a", 0.5, 1000),
        seen("b", 0.6, 1000),
        elected("a", 1.0, 4000),
        write("a", 1.5, 4000, 5999),
        write("a", 1.6, 4000, 6000),
        seen("b", 1.7, 5990),
        data_lost(2.0),
        lost("a", 2.3, 4000, until=2.3, reason=HISTORY_LOST),
        elected("b", 3.0, 5),
        write("b", 3.1, 5, 6),
        write("b", 3.2, 5, 7),
    ]
    if report_at is not None:
        history += [reported("a", report_at, 6000, 2), reported("b", report_at + 0.01, 5990, 2)]
    return history


def test_a_token_that_went_back_unreported_is_a_violation() -> None:
    report = check_history(regressed_token(report_at=None))
    kinds = [v.kind for v in report.violations]
    assert kinds == ["token", "reused_revision", *["history_lost"] * 2]  # nobody reported
    (token,) = [v for v in report.violations if v.kind == "token"]
    assert "token went backwards: a led with 4000, then b with 5" in token.message
    assert "no candidate had reported etcd going back past 5" in token.message


def test_the_same_regression_reported_before_the_term_began_passes() -> None:
    report = check_history(regressed_token(report_at=2.2))
    assert report.ok, report.render()
    # The token and both writes went back, each after a report that covers it.
    assert report.regressions_reported == 3
    assert (report.data_losses, report.loss_reports) == (1, 2)


def test_a_report_made_after_the_regressed_term_began_does_not_excuse_it() -> None:
    report = check_history(regressed_token(report_at=3.05))
    assert {v.kind for v in report.violations} == {"token", "reused_revision"}


def test_a_report_that_does_not_reach_the_token_does_not_excuse_it() -> None:
    history = regressed_token(report_at=None)
    # etcd went back from 4 to 2 by these reports: revisions 3..4 come again, not 5.
    history += [reported("a", 2.2, 4, 2), reported("b", 2.21, 4, 2)]
    report = check_history(history)
    assert {v.kind for v in report.violations} == {"token", "reused_revision"}


def reused_revision(*, report_at: float | None) -> list[Record]:
    """a's key was created before etcd was restored from a snapshot at revision 4100, and it
    leads with a token above every earlier one, but its writes land on revisions b's writes
    had."""
    history = [
        seen("a", 0.5, 1000),
        seen("b", 0.6, 1000),
        elected("b", 1.0, 4000),
        write("b", 1.5, 4000, 9999),
        write("b", 1.6, 4000, 10000),
        seen("a", 1.7, 9990),
        data_lost(2.0, back_to=4100),
        lost("b", 2.4, 4000, until=2.4, reason=HISTORY_LOST),
        elected("a", 3.0, 4500),
        write("a", 3.1, 4500, 4600),  # at or below 10000: etcd issued it again
        write("a", 3.2, 4500, 4601),
    ]
    if report_at is not None:
        history += [
            reported("b", report_at, 10000, 4100),
            reported("a", report_at + 0.01, 9990, 4100),
        ]
    return history


def test_a_fenced_write_at_a_revision_issued_again_unreported_is_a_violation() -> None:
    report = check_history(reused_revision(report_at=None))
    # Nobody reported the loss either: a and b were both running.
    assert [v.kind for v in report.violations] == ["reused_revision", *["history_lost"] * 2]
    message = report.violations[0].message
    assert "a (token 4500) committed a fenced write at revision 4600" in message
    assert "at or below revision 10000 where b (token 4000) had committed" in message
    assert "(2 such write(s))" in message


def test_the_same_reused_revisions_reported_pass_and_are_ordered_per_history() -> None:
    # Sorted by revision across both histories, a's writes (token 4500) would come before
    # b's (token 4000) and look like a stale leader's: revisions order writes within a
    # history only.
    report = check_history(reused_revision(report_at=2.3))
    assert report.ok, report.render()
    assert report.regressions_reported == 2


def test_writes_in_one_history_are_still_checked_for_staleness_after_a_loss() -> None:
    history = [
        *reused_revision(report_at=2.3),
        lost("a", 4.0, 4500, until=4.0),
        elected("c", 5.0, 4700),
        write("c", 5.1, 4700, 4800),
        write("a", 5.2, 4500, 4801),  # committed after the newer term wrote, in one history
    ]
    assert [v.kind for v in check_history(history).violations] == ["stale_write"]


def term_at_loss(reason: str, until: float) -> list[Record]:
    return [
        seen("a", 0.5, 1000),
        elected("a", 1.0, 4000),
        data_lost(2.0),
        reported("a", 2.5, 6000, 2),
        lost("a", 2.6, 4000, until=until, reason=reason),
    ]


def test_a_term_running_at_the_loss_must_end_with_etcd_history_lost() -> None:
    assert check_history(term_at_loss(HISTORY_LOST, until=2.5)).ok
    report = check_history(term_at_loss("expired", until=2.55))
    assert [v.kind for v in report.violations] == ["history_lost"]
    message = report.violations[0].message
    assert "a (token 4000) was leading when etcd lost its data at 2.000000 (wipe)" in message
    assert "ended with 'expired' at 2.550000, not with 'etcd_history_lost'" in message


def test_a_term_that_ended_before_its_candidate_saw_the_new_history_is_fine() -> None:
    # etcd was down longer than the term had left: it ended at its deadline, the loss was
    # reported when etcd answered again.
    assert check_history(term_at_loss("deadline", until=2.3)).ok


def test_a_leader_that_never_noticed_the_loss_is_a_violation() -> None:
    history = [seen("a", 0.5, 1000), elected("a", 1.0, 4000), data_lost(2.0)]
    kinds = [v.kind for v in check_history(history).violations]
    assert kinds == ["history_lost", "history_lost"]  # still leading, and never reported it


def quiet_standby() -> list[Record]:
    """b had seen revision 2000 when etcd went back to 1, and said nothing."""
    return [
        seen("a", 0.5, 1000),
        seen("b", 0.6, 2000),
        seen("c", 0.7, 400),  # had seen too little to be sure to notice
        data_lost(2.0),
        reported("a", 2.5, 2010, 2),
        Record(RecordKind.HEALED, 4.0, until=5.0),
        elected("a", 4.2, 2011),
        seen("d", 4.5, 2012),  # started after the loss: nothing to report
    ]


def test_every_candidate_that_had_seen_the_lost_history_reports_the_loss() -> None:
    report = check_history(quiet_standby())
    assert [v.kind for v in report.violations] == ["history_lost"]
    message = report.violations[0].message
    assert "b was running when etcd lost its data at 2.000000 (wipe)" in message
    assert "did not report it before the fault healed at 4.000000" in message
    assert check_history([*quiet_standby(), reported("b", 3.0, 2000, 3)]).ok
    # Killed before it could tell: nothing to ask of it.
    assert check_history([*quiet_standby(), Record(RecordKind.KILLED, 2.2, candidate="b")]).ok


def test_what_a_candidate_saw_before_an_earlier_loss_does_not_count() -> None:
    # b saw 2000, then the first loss (reported) took etcd back to 2: for the second loss
    # it knew only revision 2, too little to be sure to notice.
    history = [
        seen("a", 0.5, 3000),
        seen("b", 0.6, 2000),
        data_lost(1.0),
        reported("a", 1.1, 3000, 2),
        reported("b", 1.2, 2000, 2),
        data_lost(2.0),
        reported("a", 2.1, 3001, 1),
    ]
    assert check_history(history).ok, check_history(history).render()
    report = check_history([*history[:6], seen("b", 1.5, 3000), history[6]])
    assert [v.kind for v in report.violations] == ["history_lost"]


def test_a_loss_reported_that_never_happened_is_a_false_alarm() -> None:
    history = [seen("a", 0.5, 1000), reported("a", 1.0, 6000, 2)]
    report = check_history(history)
    assert [v.kind for v in report.violations] == ["history_lost"]
    assert "but etcd had lost no data" in report.violations[0].message
    twice = [seen("a", 0.5, 1000), data_lost(2.0), reported("a", 2.5, 6000, 2)]
    twice.append(reported("a", 3.0, 7000, 3))
    report = check_history(twice)
    assert [v.kind for v in report.violations] == ["history_lost"]
    assert "a second time for the loss at 2.000000" in report.violations[0].message


def test_a_failover_across_a_repair_is_measured_apart() -> None:
    history = [*regressed_token(report_at=2.2)]
    history += [lost("b", 4.0, 5, until=4.0), elected("a", 4.5, 9)]
    report = check_history(history)
    assert report.repair_failovers == [3.0 - 2.3]
    assert report.failovers == [0.5]
    assert report.worst_failover == 0.5 and report.worst_repair_failover == 3.0 - 2.3


def work_end(who: str, t: float, token: int) -> Record:
    return Record(RecordKind.WORK_END, t, candidate=who, token=token)


def test_work_of_a_handed_off_leader_acting_into_the_next_term_is_caught() -> None:
    history = [
        elected("a", 1.0, 5),
        lost("a", 2.0, 5, until=1.5, reason="handed_off"),
        elected("b", 1.6, 7),
        work_end("a", 1.7, 5),  # the key went before the work stopped
    ]
    report = check_history(history)
    assert [v.kind for v in report.violations] == ["work_overlap"]
    assert "a (token 5, handed_off)" in report.violations[0].message


def test_work_stopped_before_the_successor_and_a_frozen_losers_late_stamp_pass() -> None:
    history = [
        elected("a", 1.0, 5),
        work_end("a", 1.4, 5),
        lost("a", 1.5, 5, until=1.45, reason="paused"),
        elected("b", 1.6, 7),
        # b was frozen past its deadline: its work's end is stamped late, judged by the others
        lost("b", 9.0, 7, until=4.0, reason="deadline"),
        elected("c", 4.6, 9),
        work_end("b", 9.0, 7),
    ]
    report = check_history(history)
    assert report.ok, report.render()
