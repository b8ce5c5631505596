"""``AsyncClient``: the one place that talks to etcd.

Reads fail over to another endpoint on any transport trouble. Writes fail over only when the
request never left (no connection); once a write was sent, a failure of unknown outcome raises
``AmbiguousResult`` and the caller re-reads. Every call, stream request and connection attempt
has a deadline. Every request carries etcd's require-leader metadata, so a member that lost
quorum refuses at once instead of hanging, and, with credentials, etcd's auth token: a call
refused for its token alone gets a fresh token and is sent again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

import grpc

from . import _clock, _tls
from ._config import ClientConfig, ClientSettings, Endpoint, parse_endpoints
from ._errors import (
    AmbiguousResult,
    ClientClosed,
    ConfigurationError,
    ConnectionFailed,
    NoLeader,
    RequestTimeout,
    TransportError,
)
from ._keys import KeyLike, as_bytes, prefix_range_end
from ._proto import rpc_pb2
from ._seconds import seconds
from .etcd import _rpc
from .etcd._auth import AuthManager
from .etcd._channels import EndpointPool
from .etcd._history_guard import HistoryGuard, is_linearizable
from .etcd._keepalive import KeepAliveStream
from .etcd._txn import Compare, Op, build_txn_request
from .etcd._types import (
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
from .etcd._watch import Watch, WatchHub

if TYPE_CHECKING:
    from ._elector import AsyncElector
    from ._session import AsyncSession
    from ._view import ElectionView

__all__ = ["AsyncClient"]

log = logging.getLogger(__name__)

# etcd's require-leader marker: without it a stream on a member that lost quorum hangs.
_REQUIRE_LEADER = ("hasleader", "true")

_NOT_OPEN = "the client is not open: use 'async with AsyncClient(...)' or await client.open() first"


class AsyncClient:
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
        self._auth = (
            AuthManager(self, config.username, config.password)
            if config.username is not None and config.password is not None
            else None
        )
        self._pool: EndpointPool | None = None
        self._watch_hub: WatchHub | None = None
        # Every answer's header is shown to the guard: etcd's history must never go back.
        self.history = HistoryGuard(token_file)
        self.history.set_probe(self._probe_history)
        self._readable: tuple[bytes, bytes] | None = None  # a range etcd let us read

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> AsyncClient:
        """Prepare channels (connections are made lazily, on first use)."""
        if self._pool is None:
            self._pool = EndpointPool(self.config)
            self._watch_hub = WatchHub(self)
        return self

    async def close(self) -> None:
        """Cancel watches and close every connection. Idempotent."""
        if self._watch_hub is not None:
            await self._watch_hub.close()
        if self._pool is not None:
            await self._pool.close()
        await self.history.close()

    async def __aenter__(self) -> AsyncClient:
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
        return f"<AsyncClient endpoints={endpoints}{user}>"

    # -- plumbing shared with streams ---------------------------------------------------------

    @property
    def pool(self) -> EndpointPool:
        """The endpoints' channels. :raises ClientClosed: before :meth:`open`."""
        if self._pool is None:
            raise ClientClosed(_NOT_OPEN)
        return self._pool

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata sent with every call and stream: require-leader, and the auth token once
        one was obtained (streams call :meth:`authenticate` first)."""
        token = self.token
        return (_REQUIRE_LEADER,) if token is None else (_REQUIRE_LEADER, ("token", token))

    @property
    def token(self) -> str | None:
        """The auth token calls carry now (None without credentials)."""
        return None if self._auth is None else self._auth.token

    async def authenticate(self, deadline: float) -> None:
        """Get a token if there are credentials and no token yet (no-op otherwise).

        :raises AuthenticationFailed: for a wrong user name or password.
        """
        if self._auth is not None:
            await self._auth.ensure(deadline)

    async def renew_token(self, stale: str | None, deadline: float) -> bool:
        """After etcd refused a call or stream for its token ``stale``: get a new one.

        Returns False when this client has no credentials (nothing to renew).
        """
        if self._auth is None:
            return False
        await self._auth.refresh(stale, deadline)
        return True

    def deadline(self, timeout: float | None) -> float:
        budget = self.config.timeout if timeout is None else seconds(timeout, "timeout")
        return _clock.now() + budget

    async def connect(self, deadline: float) -> Endpoint:
        """An endpoint with a ready connection, in preference order, before ``deadline``.

        :raises ConnectionFailed: when none can be reached; the message lists each endpoint.
        """
        failures: list[Endpoint] = []
        for endpoint in self.pool.candidates():
            remaining = deadline - _clock.now()
            if remaining <= 0:
                break
            if await self.pool.ready(endpoint, min(remaining, self.config.connect_timeout)):
                return endpoint
            failures.append(endpoint)
            self.pool.demote(endpoint)
        explained = await self._explain(failures, deadline)
        if explained is not None:
            raise explained
        tried = ", ".join(map(str, failures)) or ", ".join(str(e) for e in self.pool.endpoints)
        raise ConnectionFailed(
            f"cannot connect to etcd at {tried}: check that etcd is running and the endpoints "
            "are right (--endpoints / ETCD_ENDPOINTS)"
        )

    async def _explain(self, failed: list[Endpoint], deadline: float) -> ConnectionFailed | None:
        """A clearer error than "cannot connect" when gRPC knows why a connection failed:
        a TLS handshake problem, or plaintext spoken to a TLS port."""
        for endpoint in failed:
            budget = min(0.25, deadline - _clock.now())  # never past the caller's deadline
            if budget <= 0.01:
                break
            details = await self.pool.failure_details(endpoint, budget)
            if details is None:
                continue
            error: ConnectionFailed | None
            if endpoint.secure:
                error = _tls.handshake_error(
                    details,
                    str(endpoint),
                    server_name=self.config.server_name,
                    client_certificate=self.config.cert_file,
                )
            else:
                error = _tls.plaintext_hint(details, endpoint.address)
            if error is not None:
                return error
        return None

    def endpoint_failed(
        self, endpoint: Endpoint, error: TransportError, *, since: float | None = None
    ) -> None:
        """Steer future calls and streams away from an endpoint that just failed.

        A silent connection never fails by itself, so a timeout or a broken call resets it:
        unless something else on it was answered after ``since`` (when the failed call or
        stream last heard from etcd). Resetting a live connection would cancel every other
        call in flight on it.
        """
        self.pool.demote(endpoint)
        silent = isinstance(error, RequestTimeout | ConnectionFailed | AmbiguousResult)
        if not silent or isinstance(error, NoLeader):
            return
        if since is not None and self.pool.answered_since(endpoint, since):
            return
        self.pool.reset(endpoint)

    async def call(
        self,
        method: _rpc.Method,
        request: Any,
        *,
        timeout: float | None,
        write: bool,
        authenticate: bool = True,
    ) -> Any:
        """Send one unary request with failover, within ``timeout`` seconds in all.

        A request refused for its auth token alone is sent once more with a fresh token
        (etcd refuses such a request before applying it, so even a write is safe to resend).
        ``authenticate=False`` sends no token (for ``Authenticate`` itself).

        :raises TransportError: the mapped error of the last attempt: ``ConnectionFailed``,
            ``RequestTimeout``, ``AmbiguousResult`` (a write that may have committed),
            ``AuthenticationFailed``, ``PermissionDenied``, ...
        """
        deadline = self.deadline(timeout)
        last: TransportError | None = None
        attempts = len(self.pool.endpoints)
        renewed = False
        while attempts > 0:
            attempts -= 1
            endpoint = await self.connect(deadline)
            if authenticate:
                await self.authenticate(deadline)
            remaining = deadline - _clock.now()
            if remaining <= 0:
                break
            stub = self.pool.callable(endpoint, method, "unary")
            token = self.token if authenticate else None
            metadata = self.metadata() if authenticate else (_REQUIRE_LEADER,)
            attempt_started = _clock.now()
            expected = self.history.expect() if is_linearizable(method, request) else None
            try:
                try:
                    response = await stub(request, timeout=remaining, metadata=metadata)
                    self.pool.answered(endpoint)
                    self.history.check(response.header, expected, endpoint=str(endpoint))
                    if method is _rpc.RANGE:
                        self._readable = (request.key, request.range_end)
                    return response
                except asyncio.CancelledError:
                    if _rpc.cancelled_by_us():
                        raise
                    # gRPC cancels calls on a channel that another call just reset.
                    raise _reset_error(endpoint) from None
            except grpc.aio.AioRpcError as exc:
                if (
                    authenticate
                    and not renewed
                    and _rpc.token_rejected(exc.details())
                    and await self.renew_token(token, deadline)
                ):
                    renewed, attempts = True, attempts + 1
                    log.debug(
                        "%s: etcd refused the auth token (%s), sending again",
                        method.path,
                        exc.details(),
                    )
                    continue
                error = _rpc.map_rpc_error(exc, str(endpoint), write=write)
                retriable = isinstance(error, NoLeader) or (
                    not write and isinstance(error, ConnectionFailed | RequestTimeout)
                )
                if isinstance(error, ConnectionFailed | RequestTimeout) or write:
                    self.endpoint_failed(endpoint, error, since=attempt_started)
                if not retriable:
                    raise error from exc
                log.debug(
                    "%s failed on %s, trying another endpoint: %s", method.path, endpoint, error
                )
                last = error
        if last is not None:
            raise last
        raise RequestTimeout(f"{method.path} got no answer from etcd within the timeout")

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
        response = await self.call(_rpc.RANGE, request, timeout=timeout, write=False)
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
        response = await self.call(_rpc.PUT, request, timeout=timeout, write=True)
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
        response = await self.call(_rpc.DELETE_RANGE, request, timeout=timeout, write=True)
        return DeleteResult.from_proto(response)

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResult:
        """An atomic compare-and-swap. Never retried once sent.

        :raises AmbiguousResult: if it was sent and may or may not have committed.
        """
        request = build_txn_request(tuple(compares), tuple(success), tuple(failure))
        response = await self.call(_rpc.TXN, request, timeout=timeout, write=True)
        return TxnResult.from_proto(response)

    async def compact(
        self, revision: int, *, physical: bool = True, timeout: float | None = None
    ) -> None:
        """Discard history before ``revision`` (watches from earlier revisions then fail)."""
        request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        await self.call(_rpc.COMPACT, request, timeout=timeout, write=True)

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
    ) -> Watch:
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
        return Watch(self._watch_hub, request)

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
        response = await self.call(_rpc.LEASE_GRANT, request, timeout=timeout, write=True)
        if response.error:
            raise TransportError(f"etcd refused to grant a lease: {response.error}")
        return Lease(id=response.ID, ttl=response.TTL)

    async def lease_revoke(self, lease_id: int, *, timeout: float | None = None) -> None:
        """Revoke a lease and delete its keys. :raises LeaseNotFound: if it is already gone."""
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        # Revoking twice is harmless, so a revoke may be retried like a read.
        await self.call(_rpc.LEASE_REVOKE, request, timeout=timeout, write=False)

    async def lease_time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseInfo:
        """A lease's remaining TTL (``-1`` when it does not exist) and, optionally, its keys."""
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        response = await self.call(_rpc.LEASE_TIME_TO_LIVE, request, timeout=timeout, write=False)
        return LeaseInfo(
            id=response.ID,
            ttl=response.TTL,
            granted_ttl=response.grantedTTL,
            keys=tuple(response.keys),
        )

    async def lease_list(self, *, timeout: float | None = None) -> tuple[int, ...]:
        """Ids of every lease etcd holds."""
        response = await self.call(
            _rpc.LEASE_LEASES, rpc_pb2.LeaseLeasesRequest(), timeout=timeout, write=False
        )
        return tuple(status.ID for status in response.leases)

    def lease_keepalive(self, lease_id: int) -> KeepAliveStream:
        """A keepalive stream for one lease; each ``ping()`` answer carries its send time."""
        return KeepAliveStream(self, lease_id)

    # -- cluster -------------------------------------------------------------------------------

    async def member_list(self, *, timeout: float | None = None) -> tuple[Member, ...]:
        response = await self.call(
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
        deadline = self.deadline(timeout)
        if endpoint is None:
            target = await self.connect(deadline)
        else:
            wanted = parse_endpoints(endpoint)[0].address
            matches = [e for e in self.pool.endpoints if e.address == wanted]
            if not matches:
                raise ConfigurationError(f"{endpoint!r} is not one of this client's endpoints")
            target = matches[0]
        stub = self.pool.callable(target, _rpc.STATUS, "unary")
        try:
            response = await stub(
                rpc_pb2.StatusRequest(),
                timeout=max(0.0, deadline - _clock.now()),
                metadata=(),  # status must answer even from a member without a leader
            )
        except grpc.aio.AioRpcError as exc:
            error = _rpc.map_rpc_error(exc, str(target), write=False)
            self.endpoint_failed(target, error)
            raise error from exc
        self.history.check(response.header, None, endpoint=str(target))
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

    async def _probe_history(self, timeout: float) -> None:
        """One linearizable read for the history guard, of a range etcd let us read before
        (so that a user with access to one prefix only is not refused)."""
        key, range_end = self._readable or (b"\0", b"")
        request = rpc_pb2.RangeRequest(key=key, range_end=range_end, limit=1, keys_only=True)
        await self.call(_rpc.RANGE, request, timeout=timeout, write=False)

    # -- election entry point ----------------------------------------------------------------

    def election_view(self, name: str, *, namespace: str | None = None) -> ElectionView:
        """Read-only access to an election (leader, candidates, observe); needs no session."""
        from ._view import ElectionView

        if namespace is None:
            return ElectionView(self, name)
        return ElectionView(self, name, namespace=namespace)

    def elector(self, name: str, **options: Any) -> AsyncElector:
        """Run work only while leader; see :class:`AsyncElector` for the options."""
        from ._elector import AsyncElector

        return AsyncElector(self, name, **options)

    def session(self, ttl: float = 10.0, **options: Any) -> AsyncSession:
        """A lease kept alive in the background; see :class:`AsyncSession`."""
        from ._session import AsyncSession

        return AsyncSession(self, ttl=ttl, **options)


def _reset_error(endpoint: Endpoint) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.CANCELLED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="the connection was reset while the call was in flight",
    )
