"""A lease keepalive stream: one request, one answer, each answer stamped with its send time.

The stream is opened lazily and reopened (on the next preferred endpoint) after any failure,
including an answer that does not arrive within the stream timeout: a blackholed connection
never fails on its own. A stream etcd ends for its auth token is reopened with a fresh token.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import grpc

from .. import _clock
from .._config import Endpoint
from .._errors import ConnectionFailed, NoLeader, RequestTimeout, TransportError
from .._proto import rpc_pb2
from .._seconds import seconds
from . import _rpc
from ._overdue import Overdue
from ._types import KeepAliveAnswer

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["KeepAliveStream"]

log = logging.getLogger(__name__)

# Sends of one keepalive on fresh streams, when the stream it was written to had ended.
_SEND_ATTEMPTS = 3


class KeepAliveStream:
    """Keeps one lease alive on demand: ``answer = await stream.ping()``."""

    def __init__(self, transport: Transport, lease_id: int, *, every: float | None = None) -> None:
        self._transport = transport
        self.lease_id = lease_id
        self._every = every
        self._call: Any = None
        self._endpoint: Endpoint | None = None
        self._token: str | None = None  # the auth token the stream was opened with
        self._lock = asyncio.Lock()
        self._sent_at: float | None = None
        self._answered_sent_at: float | None = None  # the send time of the last answered ping
        self._request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)  # the same for every ping
        self._overdue = Overdue()  # each answer's deadline, without a timer per ping
        if every is not None and transport.opened:
            # The first ping comes within ``every``, on the preferred endpoint's connection.
            budget = every + transport.config.stream_timeout
            transport.vouch(transport.preferred(), _clock.now() + budget)

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint the stream is open on, if it is open."""
        return self._endpoint

    async def ping(self, timeout: float | None = None) -> KeepAliveAnswer:
        """Send one keepalive and wait for etcd's answer.

        :raises ConnectionFailed: no endpoint reachable, or the stream broke.
        :raises NoLeader: the member lost quorum (the next ping uses another endpoint).
        :raises RequestTimeout: no answer within ``timeout`` (default: the stream timeout).
        """
        budget = (
            self._transport.config.stream_timeout
            if timeout is None
            else seconds(timeout, "keepalive timeout")
        )
        async with self._lock:
            deadline = _clock.now() + budget
            request = self._request
            unsent: list[TransportError] = []
            renewed = False
            while True:
                if self._call is None or self._endpoint is None:
                    await self._open(deadline)
                call, endpoint = self._call, self._endpoint
                assert endpoint is not None
                sent_at = self._sent_at = _clock.now()
                cancelling = self._overdue.start(deadline)
                try:
                    try:
                        try:
                            await call.write(request)
                        except (
                            grpc.aio.AioRpcError,
                            grpc.aio.UsageError,
                            asyncio.InvalidStateError,
                        ) as exc:
                            # The stream had ended (its member died or lost its leader since
                            # the last ping, or refused the new stream at once): the request
                            # never left, so it is safe to send it again on a fresh stream.
                            ended = await _rpc.finished_stream_error(
                                call, str(endpoint), "keepalive"
                            )
                            if _rpc.is_lost_write(exc):
                                self._drop_call()  # says nothing against the connection
                            else:
                                self._fail(endpoint, ended)
                            if not renewed and await self._renew_token(str(ended), deadline):
                                renewed = True
                                continue
                            unsent.append(ended)
                            if len(unsent) < _SEND_ATTEMPTS:
                                continue
                            # The most telling reason: "no leader" over a bare "closed".
                            raise next(
                                (e for e in unsent if isinstance(e, NoLeader)), ended
                            ) from exc
                        response = await call.read()
                        break
                    except asyncio.CancelledError:
                        if self._overdue.expired(cancelling):
                            raise TimeoutError from None
                        raise
                    finally:
                        self._overdue.stop()
                except asyncio.CancelledError:
                    if _rpc.cancelled_by_us():
                        raise
                    reset = ConnectionFailed(
                        f"keepalive stream to {endpoint} was cut by a connection reset",
                        endpoint=str(endpoint),
                    )
                    self._fail(endpoint, reset)
                    raise reset from None
                except TimeoutError:
                    error: Exception = RequestTimeout(
                        f"lease {self.lease_id:x}: no keepalive answer from etcd at {endpoint} "
                        f"within {budget:g}s",
                        endpoint=str(endpoint),
                    )
                    self._fail(endpoint, error)
                    raise error from None
                except grpc.aio.AioRpcError as exc:
                    mapped = _rpc.map_rpc_error(exc, str(endpoint), write=False)
                    self._fail(endpoint, mapped)
                    if not renewed and await self._renew_token(exc.details(), deadline):
                        renewed = True  # the request was refused, not applied: send it again
                        continue
                    raise mapped from exc
                except (grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                    mapped = await _rpc.finished_stream_error(call, str(endpoint), "keepalive")
                    self._fail(endpoint, mapped)
                    raise mapped from exc
            if response is grpc.aio.EOF:
                mapped = ConnectionFailed(
                    f"etcd at {endpoint} closed the keepalive stream", endpoint=str(endpoint)
                )
                self._fail(endpoint, mapped)
                raise mapped
            received_at = _clock.now()
            self._transport.answered(endpoint)
            previous, self._answered_sent_at = self._answered_sent_at, sent_at
            period = self._every if previous is None else (sent_at - previous)
            if period is not None:
                # Pinged at this pace, the next ping is answered, or fails and resets the
                # connection, within one more period and its budget: the connection's watches
                # need no probe of their own till then.
                self._transport.vouch(
                    endpoint, received_at + max(period, self._every or 0.0) + budget
                )
            # A keepalive answer comes from one member's local state: cluster id only.
            self._transport.check_header(response.header, endpoint)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "keepalive lease=%x ttl=%d rtt=%.1fms via %s",
                    self.lease_id,
                    response.TTL,
                    (received_at - sent_at) * 1000,
                    endpoint,
                )
            return KeepAliveAnswer(
                lease_id=self.lease_id,
                ttl=response.TTL,
                sent_at=sent_at,
                received_at=received_at,
                revision=response.header.revision,
            )

    async def _open(self, deadline: float) -> None:
        stream = await self._transport.open_stream(_rpc.LEASE_KEEPALIVE, deadline)
        self._call, self._endpoint, self._token = stream.call, stream.endpoint, stream.token

    async def _renew_token(self, details: str | None, deadline: float) -> bool:
        """If etcd ended the stream for its auth token: get a new one (the stream is reopened
        with it). False when the failure was something else or there are no credentials."""
        return _rpc.token_rejected(details) and await self._transport.renew_token(
            self._token, deadline
        )

    def _fail(self, endpoint: Endpoint, error: Exception) -> None:
        self._drop_call()
        if isinstance(error, ConnectionFailed | RequestTimeout):
            self._transport.endpoint_failed(endpoint, error, since=self._sent_at)

    def _drop_call(self) -> None:
        if self._call is not None:
            self._call.cancel()
        self._call = None
        self._endpoint = None

    async def close(self) -> None:
        """Stop the stream (the lease itself is untouched). Idempotent."""
        async with self._lock:
            self._drop_call()
            self._overdue.close()

    async def __aenter__(self) -> KeepAliveStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
