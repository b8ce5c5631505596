"""``AsyncEtcdClient``: etcd's calls (KV, transactions, leases, watches, cluster) over one
:class:`~._transport.Transport`, as typed results. Nothing here knows about elections; the
public ``AsyncClient`` adds the election entry points on top.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import Self, Unpack

from .._config import ClientConfig, ClientSettings
from .._errors import ClientClosed, ConfigurationError, TransportError
from .._keys import KeyLike, as_bytes, prefix_range_end
from .._proto import rpc_pb2
from .._seconds import seconds
from . import _rpc
from ._history_guard import HistoryGuard
from ._keepalive import KeepAliveStream
from ._transport import Transport
from ._txn import Compare, Op, build_txn_request, reads_only
from ._types import (
    DeleteResult,
    GetResult,
    Lease,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TxnResult,
)
from ._watch import AsyncWatch, WatchHub

__all__ = ["AsyncEtcdClient"]

_NOT_OPEN = "the client is not open: use 'async with AsyncClient(...)' or await client.open() first"


class AsyncEtcdClient:
    """An etcd v3 client on ``grpc.aio``, made for leader election.

    ::

        async with AsyncClient("127.0.0.1:2379") as client:
            await client.put("k", "v")

    :param endpoints: ``"host:port,host:port"`` or a list; default ``ETCD_ENDPOINTS`` or
        ``127.0.0.1:2379``.
    :param config: a :class:`ClientConfig` built beforehand, instead of the settings.
    :param settings: the keyword arguments of :class:`ClientSettings`: ``timeout`` (each
        call's deadline in seconds, failover included, default 5), ``connect_timeout``,
        ``stream_timeout``; ``ca_file`` (a PEM CA bundle, turns TLS on), ``cert_file`` and
        ``key_file`` (a client certificate and its unencrypted key), ``server_name``;
        ``username`` with ``password`` (a str or a :class:`Secret`) or ``password_file``.
    :param token_file: a file that keeps the highest fencing token this process knows of
        across restarts, so that a restarted process also refuses a token that went back
        after etcd lost history (see :class:`HistoryGuard`, reachable as ``client.history``).
    :raises ConfigurationError: for malformed endpoints or timeouts, or a certificate file
        that is missing, unreadable or unusable, or a token file that cannot be used. See
        :class:`ClientConfig` for the environment variables.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        *,
        config: ClientConfig | None = None,
        token_file: str | os.PathLike[str] | None = None,
        **settings: Unpack[ClientSettings],
    ) -> None:
        if config is None:
            config = ClientConfig.build(endpoints, **settings)
        elif endpoints is not None or any(value is not None for value in settings.values()):
            raise ConfigurationError(
                "pass either config= or endpoints, timeouts, TLS files and credentials, not both"
            )
        self.config = config
        # Every answer's header is shown to the guard: etcd's history must never go back.
        self.history = HistoryGuard(token_file)
        self._transport = Transport(config, self.history)
        self._watch_hub: WatchHub | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> Self:
        """Prepare channels (connections are made lazily, on first use)."""
        if not self._transport.opened:
            self._transport.open()
            self._watch_hub = WatchHub(self._transport)
        return self

    async def close(self) -> None:
        """Cancel watches and close every connection. Idempotent."""
        if self._watch_hub is not None:
            await self._watch_hub.close()
        await self._transport.close()
        await self.history.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        endpoints = ",".join(str(e) for e in self.config.endpoints)
        user = f" user={self.config.username}" if self.config.username else ""
        return f"<{type(self).__name__} endpoints={endpoints}{user}>"

    # -- KV ------------------------------------------------------------------------------------

    async def get(
        self,
        key: KeyLike,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> GetResult:
        """Read one key (linearizable unless ``serializable``)."""
        result = await self._range(
            as_bytes(key),
            b"",
            revision=revision,
            limit=0,
            serializable=serializable,
            timeout=timeout,
        )
        return GetResult(kv=result.kvs[0] if result.kvs else None, revision=result.revision)

    async def get_prefix(
        self,
        prefix: KeyLike,
        *,
        revision: int = 0,
        limit: int = 0,
        sort_by_create_revision: bool = False,
        descending: bool = False,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        max_create_revision: int = 0,
        timeout: float | None = None,
    ) -> RangeResult:
        """Read every key starting with ``prefix``, by key or by create revision.

        ``max_create_revision`` keeps only keys created at or before that revision.
        """
        raw = as_bytes(prefix)
        return await self._range(
            raw,
            prefix_range_end(raw),
            revision=revision,
            limit=limit,
            serializable=serializable,
            timeout=timeout,
            sort_by_create=sort_by_create_revision,
            descending=descending,
            keys_only=keys_only,
            count_only=count_only,
            max_create_revision=max_create_revision,
        )

    async def _range(
        self,
        key: bytes,
        range_end: bytes,
        *,
        revision: int,
        limit: int,
        serializable: bool,
        timeout: float | None,
        sort_by_create: bool = False,
        descending: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        max_create_revision: int = 0,
    ) -> RangeResult:
        request = rpc_pb2.RangeRequest(
            key=key,
            range_end=range_end,
            revision=revision,
            limit=limit,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            max_create_revision=max_create_revision,
        )
        if sort_by_create:
            request.sort_target = rpc_pb2.RangeRequest.CREATE
            request.sort_order = (
                rpc_pb2.RangeRequest.DESCEND if descending else rpc_pb2.RangeRequest.ASCEND
            )
        response = await self._transport.call(_rpc.RANGE, request, timeout=timeout, write=False)
        return RangeResult.from_proto(response)

    async def put(
        self,
        key: KeyLike,
        value: KeyLike,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> PutResult:
        """Write a key. :raises AmbiguousResult: if sent but its outcome is unknown."""
        request = rpc_pb2.PutRequest(
            key=as_bytes(key), value=as_bytes(value), lease=lease, prev_kv=prev_kv
        )
        response = await self._transport.call(_rpc.PUT, request, timeout=timeout, write=True)
        return PutResult.from_proto(response)

    async def delete(
        self,
        key: KeyLike,
        *,
        prefix: bool = False,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> DeleteResult:
        """Delete a key, or every key with the prefix."""
        raw = as_bytes(key)
        request = rpc_pb2.DeleteRangeRequest(
            key=raw, range_end=prefix_range_end(raw) if prefix else b"", prev_kv=prev_kv
        )
        response = await self._transport.call(
            _rpc.DELETE_RANGE, request, timeout=timeout, write=True
        )
        return DeleteResult.from_proto(response)

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResult:
        """An atomic compare-and-swap. Never retried once sent, unless it only reads.

        :raises AmbiguousResult: if it was sent and may or may not have committed.
        """
        request = build_txn_request(tuple(compares), tuple(success), tuple(failure))
        # A transaction of reads alone changes nothing: it fails over like a read.
        write = not reads_only(request)
        response = await self._transport.call(_rpc.TXN, request, timeout=timeout, write=write)
        return TxnResult.from_proto(response)

    async def compact(
        self, revision: int, *, physical: bool = True, timeout: float | None = None
    ) -> None:
        """Discard history before ``revision`` (watches from earlier revisions then fail)."""
        request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        await self._transport.call(_rpc.COMPACT, request, timeout=timeout, write=True)

    def watch(
        self,
        key: KeyLike,
        *,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
    ) -> AsyncWatch:
        """Watch a key or prefix; use as ``async with client.watch(...) as w: async for b in w``.

        Watches share one gRPC stream. A compacted start revision raises ``WatchCompacted``; a
        broken or silent stream raises ``ConnectionFailed``/``NoLeader``/``RequestTimeout``.

        :raises ClientClosed: before :meth:`open` (and iterating, once the client is closed).
        """
        raw = as_bytes(key)
        filters = []
        if no_put:
            filters.append(rpc_pb2.WatchCreateRequest.NOPUT)
        if no_delete:
            filters.append(rpc_pb2.WatchCreateRequest.NODELETE)
        request = rpc_pb2.WatchCreateRequest(
            key=raw,
            range_end=prefix_range_end(raw) if prefix else b"",
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
            filters=filters,
        )
        if self._watch_hub is None:
            raise ClientClosed(_NOT_OPEN)
        return AsyncWatch(self._watch_hub, request)

    # -- leases --------------------------------------------------------------------------------

    async def lease_grant(
        self, ttl: float, *, lease_id: int = 0, timeout: float | None = None
    ) -> Lease:
        """Grant a lease. etcd may grant a longer TTL than asked (its minimum); read ``.ttl``.

        :raises TransportError: if etcd cannot be reached or refuses the grant.
        """
        request = rpc_pb2.LeaseGrantRequest(
            TTL=max(1, round(seconds(ttl, "lease TTL"))), ID=lease_id
        )
        response = await self._transport.call(
            _rpc.LEASE_GRANT, request, timeout=timeout, write=True
        )
        if response.error:
            raise TransportError(f"etcd refused to grant a lease: {response.error}")
        return Lease(id=response.ID, ttl=response.TTL)

    async def lease_revoke(self, lease_id: int, *, timeout: float | None = None) -> None:
        """Revoke a lease and delete its keys. :raises LeaseNotFound: if it is already gone."""
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        # Revoking twice is harmless, so a revoke may be retried like a read.
        await self._transport.call(_rpc.LEASE_REVOKE, request, timeout=timeout, write=False)

    async def lease_time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseInfo:
        """A lease's remaining TTL (``-1`` when it does not exist) and, optionally, its keys."""
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        response = await self._transport.call(
            _rpc.LEASE_TIME_TO_LIVE, request, timeout=timeout, write=False
        )
        return LeaseInfo(
            id=response.ID,
            ttl=response.TTL,
            granted_ttl=response.grantedTTL,
            keys=tuple(response.keys),
        )

    async def lease_list(self, *, timeout: float | None = None) -> tuple[int, ...]:
        """Ids of every lease etcd holds."""
        response = await self._transport.call(
            _rpc.LEASE_LEASES, rpc_pb2.LeaseLeasesRequest(), timeout=timeout, write=False
        )
        return tuple(status.ID for status in response.leases)

    def lease_keepalive(self, lease_id: int, *, every: float | None = None) -> KeepAliveStream:
        """A keepalive stream for one lease; each ``ping()`` answer carries its send time.

        ``every``: the caller pings at least this often (a session's keepalive interval); the
        stream then vouches for its connection from the start, and the client's watches on it
        send etcd no liveness probes of their own (see ``Transport.vouch``).
        """
        return KeepAliveStream(self._transport, lease_id, every=every)

    # -- cluster -------------------------------------------------------------------------------

    async def member_list(self, *, timeout: float | None = None) -> tuple[Member, ...]:
        response = await self._transport.call(
            _rpc.MEMBER_LIST, rpc_pb2.MemberListRequest(), timeout=timeout, write=False
        )
        return tuple(
            Member(
                id=m.ID,
                name=m.name,
                peer_urls=tuple(m.peerURLs),
                client_urls=tuple(m.clientURLs),
                is_learner=m.isLearner,
            )
            for m in response.members
        )

    async def status(self, endpoint: str | None = None, *, timeout: float | None = None) -> Status:
        """One member's status: the given endpoint, or whichever answers first.

        :raises ConfigurationError: for an endpoint that is not one of this client's.
        :raises TransportError: if the member cannot be reached.
        """
        response, target = await self._transport.status(endpoint, timeout)
        return Status(
            endpoint=str(target),
            member_id=response.header.member_id,
            leader=response.leader,
            version=response.version,
            revision=response.header.revision,
            raft_term=response.raftTerm,
            raft_index=response.raftIndex,
            db_size=response.dbSize,
            errors=tuple(response.errors),
        )
