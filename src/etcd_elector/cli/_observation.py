"""How the CLI prints what an observer learns: the leader, outages, and history losses.

Event names (``--json``): ``leader`` / ``no_leader`` (with ``restated: true`` when said again
unchanged after an outage or a history loss, and ``below_floor: true`` for a leader whose token
is at or below the highest etcd issued before it lost history), ``etcd_unreachable``,
``etcd_reachable`` and ``history_lost``. Text from etcd (error details) is untrusted: it is
cut short here, and the printer escapes every control character.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._election._leader import LeaderInfo
from ._output import Printer, printable, unix_time
from ._renewal import Renewal

if TYPE_CHECKING:  # observers only: `leader` prints without loading the observation loop
    from .._election._observe import EtcdReachable, EtcdUnreachable, ObservationEvent
    from ..etcd._history_guard import HistoryLoss

__all__ = ["print_history_loss", "print_leader", "print_observation"]

_MAX_TEXT = 300  # error details from etcd


def print_leader(
    printer: Printer,
    name: str,
    leader: LeaderInfo | None,
    renewal: Renewal | None = None,
    *,
    restated: bool = False,
    floor: int = 0,
) -> None:
    """``leader`` or ``no_leader``, with how fresh the leader's lease is when ``renewal`` is
    known; ``restated`` and ``below_floor`` appear only when they say something."""
    extra: dict[str, Any] = {"restated": True} if restated else {}
    if leader is None:
        text = f"no leader in election {name}" + (" (re-stated)" if restated else "")
        printer.event("no_leader", name, text=text, **extra)
        return
    if leader.token <= floor:
        extra["below_floor"] = True  # a token etcd issued before, in a history it lost
    if renewal is None:
        printer.event("leader", name, leader, **extra)
        return
    line = (
        f"leader {name} key={leader.key} lease={leader.lease_hex} token={leader.token} "
        f"value={printable(leader.value)} {renewal.text()}"
    )
    printer.event("leader", name, leader, text=line, **renewal.fields(), **extra)


def print_history_loss(printer: Printer, name: str, loss: HistoryLoss) -> None:
    printer.event(
        "history_lost",
        name,
        text=(
            f"history_lost {name}: {loss.describe()}; etcd lost history, leadership with a "
            f"token at or below {loss.floor} is refused"
        ),
        kind=loss.kind,
        previous_revision=loss.previous_revision,
        revision=loss.revision,
        previous_cluster_id=(
            None if loss.previous_cluster_id is None else f"{loss.previous_cluster_id:x}"
        ),
        cluster_id=f"{loss.cluster_id:x}",
        floor=loss.floor,
        endpoint=loss.endpoint,
        from_token_file=loss.from_token_file,
        detected_at=unix_time(loss.detected_at),
    )


def _clock_text(stamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix_time(stamp)))


def _print_unreachable(printer: Printer, name: str, event: EtcdUnreachable) -> None:
    leader = event.last_leader
    if leader is None:
        stale = "no leader had been seen"
    else:
        stale = (
            f"the last leader seen, {printable(leader.value, limit=80)} (token {leader.token}), "
            "may be stale"
        )
    printer.event(
        "etcd_unreachable",
        name,
        leader,
        text=(
            f"etcd_unreachable {name}: cannot reach etcd since {_clock_text(event.since)} "
            f"({printable(event.error, limit=_MAX_TEXT)}); {stale}"
        ),
        since=unix_time(event.since),
        error=printable(event.error, limit=_MAX_TEXT),
        stale=leader is not None,
    )


def _print_reachable(printer: Printer, name: str, event: EtcdReachable) -> None:
    printer.event(
        "etcd_reachable",
        name,
        text=(
            f"etcd_reachable {name}: etcd answers again after {event.outage:.1f}s "
            f"(unreachable since {_clock_text(event.since)})"
        ),
        since=unix_time(event.since),
        outage_seconds=round(event.outage, 3),
    )


def print_observation(
    printer: Printer, name: str, event: ObservationEvent, *, floor: int = 0
) -> None:
    """Print one event of ``AsyncElectionView.observe_events``; ``floor`` is the history guard's."""
    from .._election._observe import EtcdReachable, EtcdUnreachable, LeaderObserved

    if isinstance(event, LeaderObserved):
        print_leader(printer, name, event.leader, restated=event.restated, floor=floor)
    elif isinstance(event, EtcdUnreachable):
        _print_unreachable(printer, name, event)
    elif isinstance(event, EtcdReachable):
        _print_reachable(printer, name, event)
    else:
        print_history_loss(printer, name, event)
