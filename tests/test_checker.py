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
