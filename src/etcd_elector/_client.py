"""``AsyncClient``: the etcd client, with the entry points of leader election on top.

It is :class:`~.etcd.AsyncEtcdClient` (every etcd call) plus the factories that build what the
election layer offers on it: sessions, electors and read-only views. The factories live here,
above what they build, so that the etcd client below knows nothing of elections.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from ._election._elector import AsyncElector
from ._election._session import AsyncSession
from ._election._timing import Timing
from ._election._view import AsyncElectionView
from .etcd._client import AsyncEtcdClient

__all__ = ["AsyncClient", "as_method_of"]

P = ParamSpec("P")
R = TypeVar("R")


def as_method_of(factory: Callable[..., object], make: Callable[..., object], doc: str) -> None:
    """Show ``factory``, a method that calls ``make(owner, ...)``, with ``make``'s parameters
    after its first, and ``doc``: what help(), IDEs and the reference read."""
    parameters = list(inspect.signature(make).parameters.values())[1:]
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    returns = make if inspect.isclass(make) else inspect.signature(make).return_annotation
    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [self, *parameters], return_annotation=returns
    )
    factory.__doc__ = doc


def _made_here(
    make: Callable[Concatenate[AsyncEtcdClient, P], R], doc: str
) -> Callable[Concatenate[AsyncEtcdClient, P], R]:
    """A factory method: ``make(client, ...)`` as ``client.<name>(...)``, with ``make``'s own
    parameters (written once, where ``make`` is defined)."""

    def factory(self: AsyncEtcdClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return make(self, *args, **kwargs)

    as_method_of(factory, make, doc)
    return factory


class AsyncClient(AsyncEtcdClient):
    __doc__ = AsyncEtcdClient.__doc__

    def election_view(self, name: str, *, namespace: str | None = None) -> AsyncElectionView:
        """Read-only access to an election (leader, candidates, observe); needs no session."""
        if namespace is None:
            return AsyncElectionView(self, name)
        return AsyncElectionView(self, name, namespace=namespace)

    elector = _made_here(
        AsyncElector,
        """Run work only while leader: ``client.elector("scheduler", ttl=10)`` makes an
        :class:`AsyncElector` on this client, with the same arguments after the client.""",
    )
    """An :class:`AsyncElector` on this client: ``client.elector("scheduler", ttl=10)``, with
    the arguments of :class:`AsyncElector` after the client."""

    def session(
        self,
        ttl: float = 10.0,
        *,
        margin: float | None = None,
        keepalive_interval: float | None = None,
    ) -> AsyncSession:
        """A lease kept alive in the background; see :class:`AsyncSession`.

        :param ttl: seconds etcd keeps the lease without renewal (whole seconds; etcd may
            grant more).
        :param margin: seconds of the TTL held back as a safety margin (default 15% of the
            TTL, at least 0.5 s): the local deadline is ``send time + granted TTL - margin``.
        :param keepalive_interval: seconds between renewals (default a third of the granted
            TTL).
        :raises ConfigurationError: for a TTL etcd cannot grant, a margin not below the TTL or
            an interval that leaves no room before the deadline.
        """
        return AsyncSession(self, Timing(ttl, margin, keepalive_interval))
