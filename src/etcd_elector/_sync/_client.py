"""``Client``: the blocking etcd client, and ``Watch``, its blocking watch."""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar, Unpack

from .._client import AsyncClient
from .._config import ClientConfig, ClientSettings
from .._errors import ClientClosed
from .._portal import Portal, SyncIterator
from ..etcd._client import AsyncEtcdClient
from ..etcd._history_guard import HistoryGuard
from ..etcd._types import KeepAliveAnswer, WatchBatch
from ..etcd._watch import AsyncWatch
from ._bridge import Twin, blocking
from ._elector import Elector
from ._session import ElectionView, Session

__all__ = ["Client", "Watch"]

P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W")


def _twin(
    method: Callable[Concatenate[AsyncClient, P], R], twin: Callable[[Client, R], W]
) -> Callable[Concatenate[Client, P], W]:
    """A factory of the blocking client that makes the blocking twin of what ``method`` makes:
    the same parameters as the async factory."""

    @functools.wraps(method)
    def make(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> W:
        self.open()  # what is made may need an open client (a watch does)
        return twin(self, method(self.aio, *args, **kwargs))

    signature = inspect.signature(method)
    make.__signature__ = signature.replace(return_annotation=twin)  # type: ignore[attr-defined]
    return make


class Watch(Twin[AsyncWatch]):
    """Blocking watch: a context manager and a plain iterator of :class:`WatchBatch`;
    ``with client.watch(key) as w: for batch in w: ...``."""

    def __init__(self, client: Client, watch: AsyncWatch) -> None:
        super().__init__(client, watch)
        self._iterator = SyncIterator(client.portal, watch)

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchBatch:
        return next(self._iterator)


class Client:
    """Blocking etcd client, for threaded code::

        with Client("127.0.0.1:2379") as client, client.session(ttl=10) as session:
            election = session.election("scheduler")
            term = election.campaign("host-a")  # blocks until elected
            while term.is_leader():
                ...

    Same arguments as :class:`AsyncClient`, and the same methods without ``await`` (``get``,
    ``get_prefix``, ``put``, ``delete``, ``txn``, ``compact``, ``lease_grant``,
    ``lease_revoke``, ``lease_time_to_live``, ``lease_list``, ``status``, ``member_list``,
    each :class:`AsyncClient`'s own, carried to the loop); ``watch()``, ``session()``,
    ``election_view()`` and ``elector()`` make the blocking twins. Making a
    client starts nothing: its first use (or ``with``, or :meth:`open`) starts one background
    thread, where the async core runs; :meth:`close` stops it. A client used without ``with``
    must be closed.

    :raises ConfigurationError: for malformed endpoints or timeouts, or unusable TLS files.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        *,
        config: ClientConfig | None = None,
        token_file: str | os.PathLike[str] | None = None,
        **settings: Unpack[ClientSettings],
    ) -> None:
        self.aio = AsyncClient(endpoints, config=config, token_file=token_file, **settings)
        self._portal: Portal | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def portal(self) -> Portal:
        """The loop the async core runs on, in its own thread, started (and the client opened)
        at the first use.

        :raises ClientClosed: once the client is closed.
        """
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._portal is None:
                portal = Portal()
                try:
                    portal.call(self.aio.open)
                except BaseException:
                    portal.close()
                    raise
                self._portal = portal
            return self._portal

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def config(self) -> ClientConfig:
        return self.aio.config

    @property
    def history(self) -> HistoryGuard:
        """The guard that checks etcd's history never goes back (safe from any thread)."""
        return self.aio.history

    def open(self) -> Client:
        """Start the background thread and open the client (its first use does it anyway).

        :raises ClientClosed: once the client is closed.
        """
        _ = self.portal
        return self

    def close(self) -> None:
        """Close connections and stop the background thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            portal, self._portal = self._portal, None
        if portal is None:
            return
        try:
            portal.call(self.aio.close)
        finally:
            portal.close()

    def __enter__(self) -> Client:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self.aio).replace("AsyncClient", "Client")

    # KV, leases and the cluster: AsyncEtcdClient's calls, blocking.
    get = blocking(AsyncEtcdClient.get)
    get_prefix = blocking(AsyncEtcdClient.get_prefix)
    put = blocking(AsyncEtcdClient.put)
    delete = blocking(AsyncEtcdClient.delete)
    txn = blocking(AsyncEtcdClient.txn)
    compact = blocking(AsyncEtcdClient.compact)
    lease_grant = blocking(AsyncEtcdClient.lease_grant)
    lease_revoke = blocking(AsyncEtcdClient.lease_revoke)
    lease_time_to_live = blocking(AsyncEtcdClient.lease_time_to_live)
    lease_list = blocking(AsyncEtcdClient.lease_list)
    status = blocking(AsyncEtcdClient.status)
    member_list = blocking(AsyncEtcdClient.member_list)

    def lease_keepalive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> KeepAliveAnswer:
        """One keepalive on a fresh stream (sessions keep leases alive for you)."""

        async def once() -> KeepAliveAnswer:
            async with self.aio.lease_keepalive(lease_id) as stream:
                return await stream.ping(timeout)

        return self.portal.call(once)

    # What the async factories make, as blocking twins.
    watch = _twin(AsyncClient.watch, Watch)
    """A :class:`Watch`: ``with client.watch(key) as w: for batch in w: ...``; the arguments of
    :meth:`AsyncClient.watch`."""
    session = _twin(AsyncClient.session, Session)
    """A :class:`Session`: ``with client.session(ttl=10) as session:``; the arguments of
    :meth:`AsyncClient.session`."""
    election_view = _twin(AsyncClient.election_view, ElectionView)
    """An :class:`ElectionView` of an election: leader, candidates, observe."""
    elector = _twin(AsyncClient.elector, Elector)
    """An :class:`Elector`: ``with client.elector("scheduler") as elector: elector.run(work)``;
    the arguments of :class:`AsyncElector` after the client."""
