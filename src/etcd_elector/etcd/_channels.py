"""The gRPC channels to etcd's endpoints, and which endpoint to use next.

Every channel has its own subchannel pool, so resetting a channel really opens a new TCP
connection instead of reusing a dead one that gRPC shares between channels. Endpoints marked
secure get TLS channels, with credentials built once from the configured files.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from .. import _clock
from .._config import ClientConfig, Endpoint
from .._errors import ClientClosed
from .._proto import rpc_pb2
from .._tls import channel_credentials
from ._rpc import STATUS, Method

__all__ = ["EndpointPool"]

log = logging.getLogger(__name__)

_READY = grpc.ChannelConnectivity.READY
_FAILED = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)


def _channel_options(config: ClientConfig) -> list[tuple[str, Any]]:
    return [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.keepalive_time_ms", int(config.grpc_keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.grpc_keepalive_timeout * 1000)),
        # etcd's default enforcement policy forbids pings while no call is open.
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        # Despite its name, gRPC core uses this as the minimum *connect timeout* of each
        # attempt (default 20 s); 100 ms would abort any handshake slower than the backoff.
        ("grpc.min_reconnect_backoff_ms", int(config.connect_timeout * 1000)),
        ("grpc.max_reconnect_backoff_ms", 1000),
        ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ] + ([("grpc.ssl_target_name_override", config.server_name)] if config.server_name else [])


class EndpointPool:
    """One lazily opened channel per endpoint, and a preference order that failures rotate."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._endpoints = list(config.endpoints)
        self._preferred = 0
        self._channels: dict[Endpoint, grpc.aio.Channel] = {}
        self._callables: dict[tuple[Endpoint, str, str], Any] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._last_answer: dict[Endpoint, float] = {}
        self._vouched_until: dict[Endpoint, float] = {}  # see Transport.vouch
        self._closed = False
        self._credentials = (
            channel_credentials(config.ca_file, config.cert_file, config.key_file)
            if config.tls
            else None
        )

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(self._endpoints)

    def candidates(self) -> list[Endpoint]:
        """All endpoints, the preferred one first."""
        n = len(self._endpoints)
        return [self._endpoints[(self._preferred + i) % n] for i in range(n)]

    def ready_preferred(self) -> Endpoint | None:
        """The preferred endpoint if its connection is ready now (no waiting), else ``None``."""
        endpoint = self._endpoints[self._preferred]
        channel = self._channels.get(endpoint)
        if channel is not None and channel.get_state() == _READY:
            return endpoint
        return None

    def channel(self, endpoint: Endpoint) -> grpc.aio.Channel:
        channel = self._channels.get(endpoint)
        if channel is None:
            if self._closed:
                raise ClientClosed("the client is closed")
            options = _channel_options(self._config)
            if endpoint.secure:
                assert self._credentials is not None
                channel = grpc.aio.secure_channel(endpoint.address, self._credentials, options)
            else:
                channel = grpc.aio.insecure_channel(endpoint.address, options=options)
            self._channels[endpoint] = channel
        return channel

    def callable(self, endpoint: Endpoint, method: Method, kind: str) -> Any:
        """The cached gRPC multi-callable for ``method`` on ``endpoint`` (unary or stream)."""
        cache_key = (endpoint, method.path, kind)
        found = self._callables.get(cache_key)
        if found is None:
            channel = self.channel(endpoint)
            factory = channel.unary_unary if kind == "unary" else channel.stream_stream
            found = factory(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )
            self._callables[cache_key] = found
        return found

    async def ready(self, endpoint: Endpoint, budget: float) -> bool:
        """Whether ``endpoint`` is connected, waiting at most ``budget`` seconds for it.

        An endpoint already known to be failing answers ``False`` at once, so a call with
        every endpoint down fails promptly instead of waiting out its whole timeout.
        """
        channel = self.channel(endpoint)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        try:
            state = channel.get_state(try_to_connect=True)
            while state != _READY:
                if state in _FAILED:
                    return False
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
                except TimeoutError:
                    return False
                state = channel.get_state(try_to_connect=True)
        except grpc.aio.UsageError:
            return False  # closed by a concurrent reset: the next attempt opens a fresh one
        return True

    async def failure_details(self, endpoint: Endpoint, budget: float) -> str | None:
        """Why ``endpoint``'s connection is failing, in gRPC's words (for a TLS handshake:
        BoringSSL's), or None when it is not in a failed state or tells nothing."""
        channel = self._channels.get(endpoint)
        if channel is None or channel.get_state() not in _FAILED:
            return None
        probe = self.callable(endpoint, STATUS, "unary")
        try:
            await probe(rpc_pb2.StatusRequest(), timeout=budget, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                details: str | None = exc.details()
                return details
        except (grpc.aio.UsageError, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        return None

    def answered(self, endpoint: Endpoint) -> None:
        """Note that a call or stream on ``endpoint`` just got an answer."""
        self._last_answer[endpoint] = _clock.now()

    def vouch(self, endpoint: Endpoint, until: float) -> None:
        """A keepalive stream will check ``endpoint``'s connection again by ``until``."""
        self._vouched_until[endpoint] = max(until, self._vouched_until.get(endpoint, until))

    def vouched(self, endpoint: Endpoint, now: float) -> bool:
        return self._vouched_until.get(endpoint, float("-inf")) > now

    def answered_since(self, endpoint: Endpoint, since: float) -> bool:
        """Whether anything on ``endpoint``'s connection was answered after ``since``: then the
        connection is alive, and one slow or broken call is no reason to reset it."""
        return self._last_answer.get(endpoint, float("-inf")) > since

    def demote(self, endpoint: Endpoint) -> None:
        """Prefer the endpoint after ``endpoint`` from now on."""
        if len(self._endpoints) > 1 and self._endpoints[self._preferred] == endpoint:
            self._preferred = (self._preferred + 1) % len(self._endpoints)
            log.debug(
                "preferring etcd endpoint %s after trouble with %s",
                self._endpoints[self._preferred],
                endpoint,
            )

    def reset(self, endpoint: Endpoint) -> None:
        """Drop ``endpoint``'s channel (its calls fail) so the next use connects afresh."""
        self._vouched_until.pop(endpoint, None)  # a new connection is vouched for afresh
        channel = self._channels.pop(endpoint, None)
        if channel is None:
            return
        for cache_key in [k for k in self._callables if k[0] == endpoint]:
            del self._callables[cache_key]
        task = asyncio.get_running_loop().create_task(channel.close(grace=None))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        self._closed = True
        channels = list(self._channels.values())
        self._channels.clear()
        self._callables.clear()
        for channel in channels:
            await channel.close(grace=None)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
