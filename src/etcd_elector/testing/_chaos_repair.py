"""What an operator does in the chaos run when etcd loses its data: backups taken as the run
goes, and the remedy of docs/operations.md for etcd without ``--bump-revision``: write to a
scratch key until etcd's revision passes the highest token any candidate saw, then delete it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from etcd_elector import AsyncClient

from ._cluster import EtcdCluster

__all__ = ["MIN_LOST_REVISIONS", "Backup", "Backups", "Repair", "bump_revision", "revision_of"]

#: How far back a data loss takes etcd at least. A loss shows only to a candidate whose next
#: answer from etcd is below the highest revision it saw; the others' campaigns write too (two
#: revisions each), so a shorter loss may close before a standby asks again, and then it has
#: nothing to report (docs/operations.md: "small gaps close by themselves").
MIN_LOST_REVISIONS = 1000

#: Writes in flight at once while bumping: etcd commits them in batches, so a few dozen
#: concurrent puts move the revision thousands of times a second on loopback.
BUMP_WORKERS = 32
#: A bump moves the revision by at most the writes of the run so far; this bounds it in time.
BUMP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Repair:
    """One data loss and its repair, timed: ``restart`` from the old etcd's death to the new
    one serving, ``reports`` from then until every candidate reported the loss, ``bump`` to
    move the revision by ``bumped`` writes past ``floor``."""

    fault: str
    restart: float
    reports: float
    bump: float
    bumped: int
    floor: int

    @property
    def seconds(self) -> float:
        return self.restart + self.reports + self.bump

    def describe(self) -> str:
        return (
            f"{self.fault}: etcd back in {self.restart:.1f}s, the candidates' reports in "
            f"{self.reports:.1f}s more, {self.bumped} writes in {self.bump:.1f}s moved the "
            f"revision past {self.floor}"
        )


@dataclass(frozen=True)
class Backup:
    path: Path
    revision: int  # etcd's revision just after the snapshot: the snapshot's is at most that


class Backups:
    """Snapshots of etcd taken during a run (``etcdctl snapshot save``), oldest first."""

    def __init__(self, directory: str) -> None:
        self._directory = Path(directory)
        self._taken: list[Backup] = []

    def take(self, cluster: EtcdCluster) -> None:
        path = self._directory / f"backup-{len(self._taken)}.db"
        member = cluster.wait_for_leader(10) if len(cluster.members) > 1 else cluster.members[0]
        member.snapshot_save(path)
        self._taken.append(Backup(path, asyncio.run(revision_of(cluster.endpoint_string))))

    def before_last(self) -> Backup:
        """The backup taken before the newest one (the only one if there is just one): a
        restore then loses at least everything since the newest backup was taken.

        :raises LookupError: if none was taken.
        """
        if not self._taken:
            raise LookupError("no backup was taken")
        return self._taken[-2] if len(self._taken) > 1 else self._taken[0]


async def revision_of(endpoints: str) -> int:
    """etcd's current revision (a linearizable read)."""
    async with AsyncClient(endpoints) as client:
        return (await client.get("/")).revision


async def bump_revision(endpoints: str, past: int, *, key: str) -> int:
    """Write ``key`` until etcd's revision is above ``past``, then delete it; return how many
    writes it took. Bounded: each worker stops once a write shows the revision past ``past``,
    and the whole bump by :data:`BUMP_TIMEOUT_S`."""
    async with AsyncClient(endpoints) as client:
        revision = (await client.get(key)).revision
        writes = 0

        async def writer() -> None:
            nonlocal revision, writes
            while revision <= past:
                answer = await client.put(key, "bump")
                revision, writes = max(revision, answer.revision), writes + 1

        await asyncio.wait_for(
            asyncio.gather(*(writer() for _ in range(BUMP_WORKERS))), BUMP_TIMEOUT_S
        )
        await client.delete(key)
    return writes
