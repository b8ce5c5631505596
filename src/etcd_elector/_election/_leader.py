"""Who leads an election, decided in one place for every way of reading etcd.

The leader is the candidate key with the lowest create revision under the election's prefix;
keys under the prefix that are not candidate keys are skipped. :func:`nearest_reads` is that
rule as a plan of prefix reads, free of I/O: the asynchronous view drives it over the gRPC
client, and the one-shot ``leader`` command over etcd's JSON gateway (a blocking client), so
neither writes the rule, the paging or the skipping a second time.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Protocol

from ..etcd._reads import KeyValue, RangeResult
from ._names import is_candidate_key

__all__ = [
    "BlockingReader",
    "LeaderInfo",
    "NearestReads",
    "PrefixRead",
    "first_candidate",
    "nearest_reads",
    "read_leader_blocking",
]

PAGE = 8  # candidates per read: the first is nearly always a candidate


@dataclass(frozen=True)
class LeaderInfo:
    """A candidate (or the leader) as etcd sees it. ``token`` is its key's create revision."""

    key: str
    value: bytes
    token: int
    lease_id: int
    mod_revision: int = field(compare=False, default=0)

    @property
    def value_text(self) -> str:
        return self.value.decode(errors="replace")

    @property
    def lease_hex(self) -> str:
        return f"{self.lease_id:x}"

    @classmethod
    def from_kv(cls, kv: KeyValue) -> LeaderInfo:
        return cls(
            key=kv.key.decode(errors="replace"),
            value=kv.value,
            token=kv.create_revision,
            lease_id=kv.lease,
            mod_revision=kv.mod_revision,
        )


@dataclass(frozen=True)
class PrefixRead:
    """One linearizable read of the election's prefix, sorted by create revision.

    ``limit`` 0 reads everything; ``revision`` 0 reads the latest; ``max_create_revision`` 0
    sets no bound."""

    descending: bool
    limit: int
    max_create_revision: int
    revision: int


# Yields reads, is sent their results, returns the candidate found (None: there is none) and
# the revision of the read.
NearestReads = Generator[PrefixRead, RangeResult, tuple[KeyValue | None, int]]


def nearest_reads(
    prefix: bytes, *, descending: bool, max_create_revision: int = 0, revision: int = 0
) -> NearestReads:
    """The first candidate by create revision (the lowest: the leader; or, ``descending``, the
    highest at or below ``max_create_revision``), with the revision of the read: further
    pages are read at the first page's revision."""
    bound = max_create_revision
    while True:
        result = yield PrefixRead(descending, PAGE, bound, revision)
        revision = revision or result.revision  # further pages at the same revision
        kv = first_candidate(prefix, result)
        if kv is not None:
            return kv, revision
        if not result.more or not result.kvs:
            return None, revision
        if descending:
            bound = result.kvs[-1].create_revision - 1
        else:  # rare: a page of foreign keys first; read the rest in one go
            everything = yield PrefixRead(False, 0, 0, revision)
            return first_candidate(prefix, everything), revision


def first_candidate(prefix: bytes, result: RangeResult) -> KeyValue | None:
    """The first key of ``result`` that is a candidate key of the election at ``prefix``."""
    return next((kv for kv in result.kvs if is_candidate_key(prefix, kv.key)), None)


class BlockingReader(Protocol):
    """A blocking client that reads a prefix (the JSON gateway's ``GatewayClient``)."""

    def get_prefix(
        self,
        prefix: bytes,
        *,
        revision: int,
        limit: int,
        sort_by_create_revision: bool,
        descending: bool,
        max_create_revision: int,
    ) -> RangeResult: ...


def read_leader_blocking(reader: BlockingReader, prefix: bytes) -> LeaderInfo | None:
    """The leader, read linearizably through a blocking ``reader`` (the plan of
    :func:`nearest_reads`, as ``AsyncElectionView.leader`` runs it over gRPC)."""
    plan = nearest_reads(prefix, descending=False)
    try:
        step = next(plan)
        while True:
            result = reader.get_prefix(
                prefix,
                sort_by_create_revision=True,
                descending=step.descending,
                limit=step.limit,
                max_create_revision=step.max_create_revision,
                revision=step.revision,
            )
            step = plan.send(result)
    except StopIteration as done:
        found: tuple[KeyValue | None, int] = done.value
    return None if found[0] is None else LeaderInfo.from_kv(found[0])
