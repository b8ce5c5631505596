"""``Transport``: the connection to etcd that every call and stream goes through.

Reads fail over to another endpoint on any transport trouble. Writes fail over only when the
request never left (no connection); once a write was sent, a failure of unknown outcome raises
``AmbiguousResult`` and the caller re-reads. Every call, stream request and connection attempt
has a deadline. Every request carries etcd's require-leader metadata, so a member that lost
quorum refuses at once instead of hanging, and, with credentials, etcd's auth token: a call
refused for its token alone gets a fresh token and is sent again. Every answer's header is
shown to the history guard.

Streams (watches, keepalives) open their calls here and report back what happened to them; the
client's calls (:mod:`._client`) are built on :meth:`Transport.call`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import grpc

from .. import _clock, _tls
from .._config import ClientConfig, Endpoint, parse_endpoints
from .._errors import (
    AmbiguousResult,
    ClientClosed,
    ConfigurationError,
    ConnectionFailed,
    NoLeader,
    RequestTimeout,
    TransportError,
)
from .._proto import rpc_pb2
from .._seconds import seconds
from . import _rpc
from ._auth import AuthManager
from ._channels import EndpointPool
from ._history_guard import HistoryGuard, is_linearizable
from ._status import cannot_connect

__all__ = ["Stream", "Transport"]

log = logging.getLogger(__name__)

# etcd's require-leader marker: without it a stream on a member that lost quorum hangs.
_REQUIRE_LEADER = ("hasleader", "true")
# Built once: gRPC would convert a tuple of pairs into its Metadata on every call.
_LEADER_ONLY = grpc.aio.Metadata(_REQUIRE_LEADER)

_NOT_OPEN = "the client is not open: use 'async with AsyncClient(...)' or await client.open() first"


@dataclass(frozen=True)
class Stream:
    """A streaming call opened on ``endpoint`` with the auth ``token`` of that moment (for
    :meth:`Transport.renew_token`, should etcd end it for that token)."""

    call: Any
    endpoint: Endpoint
    token: str | None


class Transport:
    """Endpoints, deadlines, credentials and failover for one client; see the module docs.

    Nothing is connected before :meth:`open`; connections are made lazily, on first use.
    """

    def __init__(self, config: ClientConfig, history: HistoryGuard) -> None:
        self.config = config
        self.history = history
        self._auth = (
            AuthManager(self._authenticate, config.username, config.password)
            if config.username is not None and config.password is not None
            else None
        )
        self._pool: EndpointPool | None = None
        self._readable: tuple[bytes, bytes] | None = None  # a range etcd let us read
        self._sent_metadata: tuple[str | None, grpc.aio.Metadata] = (None, _LEADER_ONLY)
        history.set_probe(self._probe_history)

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Prepare the channels (idempotent)."""
        if self._pool is None:
            self._pool = EndpointPool(self.config)

    @property
    def opened(self) -> bool:
        return self._pool is not None

    async def close(self) -> None:
        """Close every connection. Idempotent."""
        if self._pool is not None:
            await self._pool.close()

    @property
    def _endpoints(self) -> EndpointPool:
        if self._pool is None:
            raise ClientClosed(_NOT_OPEN)
        return self._pool

    # -- deadlines and endpoints ---------------------------------------------------------------

    def deadline(self, timeout: float | None) -> float:
        """The clock time by which a call given ``timeout`` (default: the client's) must end.

        :raises ConfigurationError: for a timeout that is not a positive number of seconds.
        """
        budget = self.config.timeout if timeout is None else seconds(timeout, "timeout")
        return _clock.now() + budget

    async def connect(self, deadline: float) -> Endpoint:
        """An endpoint with a ready connection, in preference order, before ``deadline``.

        :raises ConnectionFailed: when none can be reached; the message lists each endpoint.
        :raises ClientClosed: if the client is not open.
        """
        pool = self._endpoints
        preferred = pool.ready_preferred()
        if preferred is not None:
            return preferred  # the usual case, without waiting on anything
        failures: list[Endpoint] = []
        for endpoint in pool.candidates():
            remaining = deadline - _clock.now()
            if remaining <= 0:
                break
            if await pool.ready(endpoint, min(remaining, self.config.connect_timeout)):
                return endpoint
            failures.append(endpoint)
            pool.demote(endpoint)
        explained = await self._explain(failures, deadline)
        if explained is not None:
            raise explained
        tried = ", ".join(map(str, failures)) or ", ".join(str(e) for e in pool.endpoints)
        raise cannot_connect(tried)

    async def _explain(self, failed: list[Endpoint], deadline: float) -> ConnectionFailed | None:
        """A clearer error than "cannot connect" when gRPC knows why a connection failed:
        a TLS handshake problem, or plaintext spoken to a TLS port."""
        for endpoint in failed:
            budget = min(0.25, deadline - _clock.now())  # never past the caller's deadline
            if budget <= 0.01:
                break
            details = await self._endpoints.failure_details(endpoint, budget)
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

    def answered(self, endpoint: Endpoint) -> None:
        """A call or stream on ``endpoint`` just got an answer: its connection is alive."""
        self._endpoints.answered(endpoint)

    def vouch(self, endpoint: Endpoint, until: float) -> None:
        """A lease keepalive stream on ``endpoint`` will ask etcd again, and hear back or reset
        the connection at its own deadline, by ``until``: until then nothing else on that
        connection needs a liveness probe of its own."""
        self._endpoints.vouch(endpoint, until)

    def preferred(self) -> Endpoint:
        """The endpoint calls and streams go to first."""
        return self._endpoints.candidates()[0]

    def vouched(self, endpoint: Endpoint, now: float) -> bool:
        """Whether a keepalive stream vouches for ``endpoint``'s connection at ``now``."""
        return self._endpoints.vouched(endpoint, now)

    def endpoint_failed(
        self, endpoint: Endpoint, error: TransportError, *, since: float | None = None
    ) -> None:
        """Steer future calls and streams away from an endpoint that just failed.

        A silent connection never fails by itself, so a timeout or a broken call resets it:
        unless something else on it was answered after ``since`` (when the failed call or
        stream last heard from etcd). Resetting a live connection would cancel every other
        call in flight on it.
        """
        pool = self._endpoints
        pool.demote(endpoint)
        silent = isinstance(error, RequestTimeout | ConnectionFailed | AmbiguousResult)
        if not silent or isinstance(error, NoLeader):
            return
        if since is not None and pool.answered_since(endpoint, since):
            return
        pool.reset(endpoint)

    def check_header(self, header: Any, endpoint: Endpoint) -> None:
        """Show the header of an answer that may lag (a stream's, or a member's local state)
        to the history guard: its cluster id is checked."""
        self.history.check(header, None, endpoint=endpoint)

    # -- credentials -------------------------------------------------------------------------

    def _metadata(self) -> grpc.aio.Metadata:
        """Metadata sent with every call and stream: require-leader, and the auth token once
        one was obtained (built again only when the token changes)."""
        token = self._token
        sent_token, metadata = self._sent_metadata
        if token != sent_token:
            metadata = (
                _LEADER_ONLY
                if token is None
                else grpc.aio.Metadata(_REQUIRE_LEADER, ("token", token))
            )
            self._sent_metadata = (token, metadata)
        return metadata

    @property
    def _token(self) -> str | None:
        return None if self._auth is None else self._auth.token

    async def renew_token(self, stale: str | None, deadline: float) -> bool:
        """After etcd refused a call or stream for its token ``stale``: get a new one.

        Returns False when this client has no credentials (nothing to renew).

        :raises AuthenticationFailed: for a wrong user name or password.
        """
        if self._auth is None:
            return False
        await self._auth.refresh(stale, deadline)
        return True

    async def _authenticate(
        self, request: rpc_pb2.AuthenticateRequest, deadline: float
    ) -> rpc_pb2.AuthenticateResponse:
        """The ``Authenticate`` call itself: the one request sent without a token."""
        response: rpc_pb2.AuthenticateResponse = await self._send(
            _rpc.AUTHENTICATE, request, deadline, write=False, with_token=False
        )
        return response

    # -- calls -----------------------------------------------------------------------------------

    async def call(
        self, method: _rpc.Method, request: Any, *, timeout: float | None, write: bool
    ) -> Any:
        """Send one unary request with failover, within ``timeout`` seconds in all.

        A request refused for its auth token alone is sent once more with a fresh token
        (etcd refuses such a request before applying it, so even a write is safe to resend).

        :raises TransportError: the mapped error of the last attempt: ``ConnectionFailed``,
            ``RequestTimeout``, ``AmbiguousResult`` (a write that may have committed),
            ``AuthenticationFailed``, ``PermissionDenied``, ...
        :raises ClientClosed: if the client is not open.
        """
        return await self._send(method, request, self.deadline(timeout), write=write)

    async def _send(
        self,
        method: _rpc.Method,
        request: Any,
        deadline: float,
        *,
        write: bool,
        with_token: bool = True,
    ) -> Any:
        last: TransportError | None = None
        attempts = len(self._endpoints.endpoints)
        renewed = False
        while attempts > 0:
            attempts -= 1
            endpoint = await self.connect(deadline)
            if with_token and self._auth is not None:
                await self._auth.ensure(deadline)
            attempt_started = _clock.now()
            remaining = deadline - attempt_started
            if remaining <= 0:
                break
            stub = self._endpoints.callable(endpoint, method, "unary")
            token = self._token if with_token else None
            metadata = self._metadata() if with_token else _LEADER_ONLY
            expected = self.history.expect() if is_linearizable(method, request) else None
            try:
                try:
                    response = await stub(request, timeout=remaining, metadata=metadata)
                    self.answered(endpoint)
                    self.history.check(response.header, expected, endpoint=endpoint)
                    if method is _rpc.RANGE:
                        self._readable = (request.key, request.range_end)
                    return response
                except asyncio.CancelledError:
                    if _rpc.cancelled_by_us():
                        raise
                    # gRPC cancels calls on a channel that another call just reset.
                    raise _reset_error() from None
            except grpc.aio.AioRpcError as exc:
                if (
                    with_token
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

    async def open_stream(self, method: _rpc.Method, deadline: float) -> Stream:
        """Open a streaming call for ``method`` on the preferred endpoint that can be reached,
        with the current auth token (getting one first if there are credentials).

        :raises ConnectionFailed: if no endpoint can be reached before ``deadline``.
        :raises AuthenticationFailed: for a wrong user name or password.
        """
        endpoint = await self.connect(deadline)
        if self._auth is not None:
            await self._auth.ensure(deadline)
        stub = self._endpoints.callable(endpoint, method, "stream")
        token = self._token
        return Stream(stub(metadata=self._metadata()), endpoint, token)

    async def status(
        self, endpoint: str | None, timeout: float | None
    ) -> tuple[rpc_pb2.StatusResponse, Endpoint]:
        """One member's status: ``endpoint``'s, or the first that can be reached. Sent without
        require-leader: a member without a leader must still answer.

        :raises ConfigurationError: for an endpoint that is not one of this client's.
        :raises TransportError: if the member cannot be reached.
        """
        deadline = self.deadline(timeout)
        if endpoint is None:
            target = await self.connect(deadline)
        else:
            wanted = parse_endpoints(endpoint)[0].address
            matches = [e for e in self._endpoints.endpoints if e.address == wanted]
            if not matches:
                raise ConfigurationError(f"{endpoint!r} is not one of this client's endpoints")
            target = matches[0]
        stub = self._endpoints.callable(target, _rpc.STATUS, "unary")
        try:
            response = await stub(
                rpc_pb2.StatusRequest(), timeout=max(0.0, deadline - _clock.now()), metadata=()
            )
        except grpc.aio.AioRpcError as exc:
            error = _rpc.map_rpc_error(exc, str(target), write=False)
            self.endpoint_failed(target, error)
            raise error from exc
        self.check_header(response.header, target)
        return response, target

    async def _probe_history(self, timeout: float) -> None:
        """One linearizable read for the history guard, of a range etcd let us read before
        (so that a user with access to one prefix only is not refused)."""
        key, range_end = self._readable or (b"\0", b"")
        request = rpc_pb2.RangeRequest(key=key, range_end=range_end, limit=1, keys_only=True)
        await self.call(_rpc.RANGE, request, timeout=timeout, write=False)

    def __repr__(self) -> str:
        return f"<Transport {','.join(map(str, self.config.endpoints))}>"


def _reset_error() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.CANCELLED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="the connection was reset while the call was in flight",
    )
