"""A recorded history of an election under faults: what each candidate believed, and when.

Every record carries a stamp on :func:`etcd_elector._clock.now` (``CLOCK_BOOTTIME``), which is
system-wide, so stamps from different processes on one host are comparable. Records are JSON
lines so candidates in other processes can append them to a pipe or file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Record", "RecordKind", "dump_records", "load_records"]


class RecordKind:
    # The highest ``revision`` a candidate's library had seen by then: its first answer from
    # etcd, then again whenever it grew (or went back, after a history loss).
    SEEN = "seen"
    ELECTED = "elected"  # token = the term's fencing token
    LOST = "lost"  # ``until`` = when the candidate stopped believing it led
    WRITE = "write"  # a fenced write: ``ok`` if committed, ``revision`` of the commit
    KILLED = "killed"  # written by the nemesis: the process died at ``time``
    EXITED = "exited"  # the candidate exited cleanly; ``leases`` it campaigned with
    FAULT = "fault"  # written by the nemesis: ``detail`` says which
    HEALED = "healed"  # written by the nemesis: every fault is undone
    # Written by the nemesis between the death of an etcd and the start of the etcd that
    # replaces it with an older history (its data wiped, or an older snapshot restored):
    # etcd goes back from ``previous_revision`` to ``revision`` (at most).
    DATA_LOST = "data_lost"
    # A candidate's library reported that etcd's history went back: ``previous_revision`` is
    # the highest revision it had seen, ``revision`` what etcd answered then (so revisions
    # ``revision + 1 .. previous_revision`` will be issued again), ``reason`` the kind of loss.
    HISTORY_LOST = "history_lost"
    WORK_END = "work_end"  # the work of term ``token`` stopped acting (returned or cancelled)


@dataclass(frozen=True)
class Record:
    kind: str
    time: float
    candidate: str = ""
    token: int = 0
    until: float = 0.0
    reason: str = ""
    ok: bool = False
    revision: int = 0
    previous_revision: int = 0
    detail: str = ""
    leases: tuple[int, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in ("", 0, 0.0, False, ())}
        data["kind"], data["time"] = self.kind, self.time
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Record:
        data: dict[str, Any] = json.loads(line)
        if "leases" in data:
            data["leases"] = tuple(data["leases"])
        return cls(**data)


def dump_records(records: Iterable[Record]) -> str:
    return "".join(record.to_json() + "\n" for record in records)


def load_records(lines: Iterable[str]) -> Iterator[Record]:
    for line in lines:
        if line.strip():
            yield Record.from_json(line)
