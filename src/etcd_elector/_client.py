"""``AsyncClient``: the etcd client, with the entry points of leader election on top.

It is :class:`~.etcd.AsyncEtcdClient` (every etcd call) plus the factories that build what the
election layer offers on it: sessions, electors and read-only views. The factories live here,
above what they build, so that the etcd client below knows nothing of elections.
"""

from __future__ import annotations

from typing import Any

from ._election._elector import AsyncElector
from ._election._session import AsyncSession
from ._election._view import ElectionView
from .etcd._client import AsyncEtcdClient

__all__ = ["AsyncClient"]


class AsyncClient(AsyncEtcdClient):
    __doc__ = AsyncEtcdClient.__doc__

    def election_view(self, name: str, *, namespace: str | None = None) -> ElectionView:
        """Read-only access to an election (leader, candidates, observe); needs no session."""
        if namespace is None:
            return ElectionView(self, name)
        return ElectionView(self, name, namespace=namespace)

    def elector(self, name: str, **options: Any) -> AsyncElector:
        """Run work only while leader; see :class:`AsyncElector` for the options."""
        return AsyncElector(self, name, **options)

    def session(self, ttl: float = 10.0, **options: Any) -> AsyncSession:
        """A lease kept alive in the background; see :class:`AsyncSession`."""
        return AsyncSession(self, ttl=ttl, **options)
