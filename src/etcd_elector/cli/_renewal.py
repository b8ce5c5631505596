"""How fresh a candidate's lease is, as etcd sees it: for ``leader`` and ``status``.

etcd keeps a killed candidate's key, and so keeps it leader, until its lease expires. An
operator looking at that leader needs to see that nobody has renewed the lease for a while
and when etcd will drop it. etcd reports the remaining TTL in whole seconds, rounded down
(``int64(Remaining().Seconds())``), so the true remainder is in ``[ttl, ttl + 1)``: the lease
was renewed at most ``granted - ttl`` seconds ago and expires at the latest ``ttl + 1``
seconds after etcd answered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..etcd._reads import LeaseInfo

if TYPE_CHECKING:
    from ..etcd._client import AsyncEtcdClient

__all__ = ["Renewal", "read_renewal"]


@dataclass(frozen=True)
class Renewal:
    """A lease's remaining and granted TTL, and the Unix time we received etcd's answer
    (later than etcd sent it, so ``expires_at`` stays an upper bound)."""

    ttl: int  # -1: the lease is gone
    granted_ttl: int
    answered_at: float

    @classmethod
    def from_info(cls, info: LeaseInfo, answered_at: float) -> Renewal:
        return cls(ttl=info.ttl, granted_ttl=info.granted_ttl, answered_at=answered_at)

    @property
    def gone(self) -> bool:
        return self.ttl < 0

    @property
    def renewed_ago(self) -> int | None:
        """Seconds since etcd last renewed the lease (an upper bound), None if it is gone."""
        return None if self.gone else max(0, self.granted_ttl - self.ttl)

    @property
    def expires_within(self) -> int | None:
        """Seconds from etcd's answer to the lease's expiry, at the latest."""
        return None if self.gone else self.ttl + 1

    def fields(self) -> dict[str, Any]:
        """For JSON: ``ttl`` (remaining, as etcd says), ``granted_ttl``, ``renewed_ago``
        and ``expires_at`` (Unix time, at the latest); None for a lease that is gone."""
        within = self.expires_within
        return {
            "ttl": self.ttl,
            "granted_ttl": None if self.gone else self.granted_ttl,
            "renewed_ago": self.renewed_ago,
            "expires_at": None if within is None else self.answered_at + within,
        }

    def text(self) -> str:
        """For people: ``renewed_ago=3s expires_within=8s`` (or ``lease_gone``)."""
        if self.gone:
            return "lease_gone"
        return f"renewed_ago={self.renewed_ago}s expires_within={self.expires_within}s"


async def read_renewal(client: AsyncEtcdClient, lease_id: int) -> Renewal:
    """Ask etcd (its leader answers) about one lease.

    :raises TransportError: if etcd cannot answer.
    """
    info = await client.lease_time_to_live(lease_id)
    return Renewal.from_info(info, answered_at=time.time())
