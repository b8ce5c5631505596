"""The history guard's comparison rules, as pure logic on response headers (no I/O), and the
token file's format and atomic writes. The same rules against real etcd, wiped and restored,
are in tests/test_history_loss.py.

The rules that keep a healthy cluster free of false alarms: a linearizable answer is compared
with what was seen *when its request was sent*; an answer that may lag is compared for its
cluster id only; after a loss, answers to requests sent before it are not compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etcd_elector import ConfigurationError, HistoryLoss
from etcd_elector._proto import rpc_pb2
from etcd_elector.etcd import HistoryGuard
from etcd_elector.etcd._token_file import TokenFile, TokenRecord

CLUSTER = 0x1C2D
OTHER_CLUSTER = 0x9E8F


def header(revision: int, cluster_id: int = CLUSTER) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(revision=revision, cluster_id=cluster_id, member_id=7)


def guard_with_losses(token_file: Path | None = None) -> tuple[HistoryGuard, list[HistoryLoss]]:
    guard = HistoryGuard(token_file)
    losses: list[HistoryLoss] = []
    guard.add_listener(losses.append)
    return guard, losses


def test_a_linearizable_answer_below_what_was_seen_before_it_was_sent_is_a_loss() -> None:
    guard, losses = guard_with_losses()
    guard.check(header(40), guard.expect(), endpoint="e1")
    guard.check(header(3), guard.expect(), endpoint="e1")
    assert [(loss.kind, loss.previous_revision, loss.revision) for loss in losses] == [
        (HistoryLoss.REVISION_WENT_BACK, 40, 3)
    ]
    assert guard.floor == 40
    assert not guard.token_allowed(40)
    assert guard.token_allowed(41)
    assert guard.revision == 3  # the new history is adopted


def test_concurrent_requests_answered_out_of_order_raise_no_alarm() -> None:
    """Two requests in flight: the later one is answered first with a higher revision. The
    earlier one's answer is lower, and legitimately so: it was sent before that was seen."""
    guard, losses = guard_with_losses()
    guard.check(header(10), guard.expect(), endpoint="e1")
    first_sent = guard.expect()
    second_sent = guard.expect()
    guard.check(header(12), second_sent, endpoint="e2")
    guard.check(header(11), first_sent, endpoint="e1")
    assert losses == []
    assert guard.revision == 12


def test_an_answer_that_may_lag_is_compared_for_its_cluster_id_only() -> None:
    guard, losses = guard_with_losses()
    guard.check(header(50), guard.expect(), endpoint="e1")
    guard.check(header(1), None, endpoint="e2")  # a member installing a snapshot says 1
    assert losses == []
    guard.check(header(60), None, endpoint="e2")  # but a lagging answer's revision is real
    guard.check(header(55), guard.expect(), endpoint="e1")
    assert [loss.previous_revision for loss in losses] == [60]


def test_a_new_cluster_id_is_a_loss_even_with_higher_revisions() -> None:
    guard, losses = guard_with_losses()
    guard.check(header(50), guard.expect(), endpoint="e1")
    guard.check(header(1_000_000_050, OTHER_CLUSTER), None, endpoint="e1")
    (loss,) = losses
    assert loss.kind == HistoryLoss.CLUSTER_ID_CHANGED
    assert loss.cluster_changed
    assert (loss.previous_cluster_id, loss.cluster_id) == (CLUSTER, OTHER_CLUSTER)
    assert guard.token_allowed(1_000_000_051)  # a bumped restore: tokens stay monotonic
    assert "1c2d -> 9e8f" in loss.describe()


def test_answers_to_requests_sent_before_a_loss_are_not_compared() -> None:
    """After a loss the guard adopts the new history; a request sent before may be answered
    from either history, and must not raise a second alarm."""
    guard, losses = guard_with_losses()
    guard.check(header(40), guard.expect(), endpoint="e1")
    sent_before = guard.expect()
    guard.check(header(2), guard.expect(), endpoint="e1")
    guard.check(header(3), sent_before, endpoint="e1")
    guard.check(header(4), guard.expect(), endpoint="e1")
    assert len(losses) == 1


def test_answers_without_a_header_are_ignored() -> None:
    guard, losses = guard_with_losses()
    guard.check(header(40), guard.expect(), endpoint="e1")
    guard.check(rpc_pb2.ResponseHeader(), guard.expect(), endpoint="e1")
    assert losses == []


def test_the_override_accepts_the_current_history() -> None:
    guard, losses = guard_with_losses()
    guard.check(header(40), guard.expect(), endpoint="e1")
    guard.check(header(2), guard.expect(), endpoint="e1")
    assert guard.accept_reset() == 40
    assert guard.token_allowed(3)
    guard.check(header(3), guard.expect(), endpoint="e1")
    assert len(losses) == 1


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    guard, losses = guard_with_losses()

    def broken(loss: HistoryLoss) -> None:
        raise RuntimeError("listener bug")

    guard.add_listener(broken)
    late: list[HistoryLoss] = []
    remove = guard.add_listener(late.append)
    guard.check(header(40), guard.expect(), endpoint="e1")
    guard.check(header(2), guard.expect(), endpoint="e1")
    remove()
    guard.check(header(9, OTHER_CLUSTER), guard.expect(), endpoint="e1")
    assert len(losses) == 2 and len(late) == 1
    assert "history loss listener" in caplog.text


# -- the token file ------------------------------------------------------------------------------


def test_the_token_file_is_read_at_start_and_the_floor_refuses_tokens_at_or_below(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token.json"
    TokenFile(path).raise_to(90, CLUSTER)
    guard, losses = guard_with_losses(path)
    assert guard.floor == 90 and not guard.token_allowed(90) and guard.token_allowed(91)
    guard.check(header(5), guard.expect(), endpoint="e1")  # etcd now below the file: a loss
    (loss,) = losses
    assert loss.from_token_file and loss.previous_revision == 90
    assert "recorded in the token file" in loss.describe()


def test_a_token_file_is_never_lowered_except_by_the_override(tmp_path: Path) -> None:
    file = TokenFile(tmp_path / "token.json")
    assert file.read() is None
    file.raise_to(50, CLUSTER)
    file.raise_to(20, CLUSTER)
    assert file.read() == TokenRecord(50, CLUSTER)
    file.raise_to(70, OTHER_CLUSTER)
    assert file.read() == TokenRecord(70, OTHER_CLUSTER)
    file.reset(TokenRecord(0, None))
    assert file.read() == TokenRecord(0, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token.json"]  # no temporary left
    assert json.loads((tmp_path / "token.json").read_text())["format"] == 1


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"not json", "not JSON"),
        (b'{"format": 2, "highest_token": 1}', "no format 1"),
        (b'{"format": 1, "highest_token": -1}', "not a revision"),
        (b'{"format": 1, "highest_token": true}', "not a revision"),
        (b'{"format": 1, "highest_token": 5, "cluster_id": "zz"}', "not a hex id"),
        (b"\x00" * 5000, "larger than"),
    ],
)
def test_a_damaged_token_file_is_a_clear_configuration_error(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "token.json"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=why) as raised:
        HistoryGuard(path)
    assert str(path) in str(raised.value) and "delete it" in str(raised.value)


def test_a_token_file_in_a_missing_directory_or_naming_a_directory_is_refused_at_once(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        HistoryGuard(tmp_path / "missing" / "token.json")
    with pytest.raises(ConfigurationError, match="is a directory"):
        HistoryGuard(tmp_path)
