"""Watches, many multiplexed over one gRPC stream per client.

etcd answers watch-create requests on a stream in the order they were sent, so pending
creations are matched first-in first-out. A stream that stays silent is probed with a progress
request; if even that gets no answer within the stream timeout the stream is declared dead and
every watch on it fails with a typed error (the caller re-watches from its last revision).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import grpc

from . import _clock, _rpc
from ._config import Endpoint
from ._errors import ConnectionFailed, RequestTimeout, TransportError, WatchCanceled, WatchCompacted
from ._proto import rpc_pb2
from ._types import Event, WatchBatch

if TYPE_CHECKING:
    from ._client import AsyncClient

__all__ = ["Watch", "WatchHub"]

log = logging.getLogger(__name__)


class Watch:
    """One watch: ``async with client.watch(key) as w: async for batch in w: ...``.

    Iteration yields :class:`WatchBatch` values and ends only by raising: ``WatchCompacted``,
    ``WatchCanceled`` or a ``TransportError`` when the stream broke. After ``cancel()`` the
    iterator stops.
    """

    def __init__(self, hub: WatchHub, request: rpc_pb2.WatchCreateRequest) -> None:
        self._hub = hub
        self.request = request
        self.watch_id: int | None = None
        self._queue: asyncio.Queue[WatchBatch | BaseException | None] = asyncio.Queue()
        self._created: asyncio.Future[None] | None = None
        self._finished = False

    async def __aenter__(self) -> Watch:
        await self._hub.register(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchBatch:
        if self._finished and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        return item

    async def cancel(self) -> None:
        """Stop watching. Idempotent."""
        if not self._finished:
            self._finished = True
            await self._hub.unregister(self)
            self._queue.put_nowait(None)

    # Called by the hub.
    def _deliver(self, batch: WatchBatch) -> None:
        self._queue.put_nowait(batch)

    def _fail(self, error: BaseException) -> None:
        if self._created is not None and not self._created.done():
            self._created.set_exception(error)
            self._created.exception()  # register() re-raises it; don't warn "never retrieved"
        self._queue.put_nowait(error)


class WatchHub:
    """Owns the client's watch stream and routes its answers to watches."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._call: Any = None
        self._endpoint: Endpoint | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: collections.deque[Watch] = collections.deque()
        self._active: dict[int, Watch] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def register(self, watch: Watch) -> None:
        timeout = self._client.config.stream_timeout
        loop = asyncio.get_running_loop()
        watch._created = loop.create_future()
        async with self._lock:
            if self._closed:
                raise ConnectionFailed("the client is closed")
            deadline = _clock.now() + self._client.config.timeout
            if self._call is None:
                await self._open(deadline)
            self._pending.append(watch)
            await self._send(rpc_pb2.WatchRequest(create_request=watch.request))
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(watch._created)
        except TimeoutError:
            error = RequestTimeout(
                f"etcd at {self._endpoint} did not confirm a watch within {timeout:g}s",
                endpoint=str(self._endpoint),
            )
            self._break(error)
            raise error from None

    async def unregister(self, watch: Watch) -> None:
        if watch in self._pending:
            self._pending.remove(watch)
        if watch.watch_id is not None and self._active.pop(watch.watch_id, None) is watch:
            with contextlib.suppress(Exception):
                async with self._lock:
                    if self._call is not None:
                        await self._send(
                            rpc_pb2.WatchRequest(
                                cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch.watch_id)
                            )
                        )

    async def _open(self, deadline: float) -> None:
        endpoint = await self._client.connect(deadline)
        stub = self._client.pool.callable(endpoint, _rpc.WATCH, "stream")
        self._call = stub(metadata=self._client.metadata())
        self._endpoint = endpoint
        self._reader = asyncio.get_running_loop().create_task(
            self._read_loop(self._call, endpoint), name=f"etcd-watch-stream-{endpoint}"
        )

    async def _send(self, request: rpc_pb2.WatchRequest) -> None:
        call, endpoint = self._call, self._endpoint
        try:
            async with asyncio.timeout(self._client.config.stream_timeout):
                await call.write(request)
        except TimeoutError:
            error = RequestTimeout(f"watch stream to {endpoint} is stuck", endpoint=str(endpoint))
            self._break(error)
            raise error from None
        except grpc.aio.AioRpcError as exc:
            mapped = _rpc.map_rpc_error(exc, str(endpoint), write=False)
            self._break(mapped)
            raise mapped from exc

    async def _read_loop(self, call: Any, endpoint: Endpoint) -> None:
        probe_after = self._client.config.stream_timeout / 2
        probing = False
        while True:
            try:
                async with asyncio.timeout(probe_after):
                    response = await call.read()
            except TimeoutError:
                if not (self._active or self._pending):
                    continue  # nothing to lose; stay quiet
                if probing:
                    self._break(
                        RequestTimeout(
                            f"watch stream to {endpoint} went silent for "
                            f"{self._client.config.stream_timeout:g}s",
                            endpoint=str(endpoint),
                        ),
                        call,
                    )
                    return
                probing = True
                with contextlib.suppress(Exception):
                    await call.write(
                        rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
                    )
                continue
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                self._break(_rpc.map_rpc_error(exc, str(endpoint), write=False), call)
                return
            except Exception as exc:  # the call object broke in another way
                self._break(ConnectionFailed(f"watch stream to {endpoint} broke: {exc}"), call)
                return
            if response is grpc.aio.EOF:
                self._break(
                    ConnectionFailed(
                        f"etcd at {endpoint} closed the watch stream", endpoint=str(endpoint)
                    ),
                    call,
                )
                return
            probing = False
            self._dispatch(response)

    def _dispatch(self, response: rpc_pb2.WatchResponse) -> None:
        if response.created:
            if not self._pending:
                log.warning("etcd confirmed a watch nobody asked for (id %d)", response.watch_id)
                return
            watch = self._pending.popleft()
            if response.canceled:
                watch._fail(self._cancel_error(response))
                return
            watch.watch_id = response.watch_id
            self._active[response.watch_id] = watch
            if watch._created is not None and not watch._created.done():
                watch._created.set_result(None)
            if not response.events:
                return
        watch_or_none = self._active.get(response.watch_id)
        if watch_or_none is None:
            return  # a progress notice for the whole stream, or a watch already cancelled
        if response.canceled:
            del self._active[response.watch_id]
            watch_or_none._fail(self._cancel_error(response))
            return
        watch_or_none._deliver(
            WatchBatch(
                events=tuple(Event.from_proto(e) for e in response.events),
                revision=response.header.revision,
            )
        )

    @staticmethod
    def _cancel_error(response: rpc_pb2.WatchResponse) -> Exception:
        if response.compact_revision:
            return WatchCompacted(
                f"watch start revision is compacted; etcd keeps history from revision "
                f"{response.compact_revision}",
                compact_revision=response.compact_revision,
            )
        reason = response.cancel_reason or "no reason given"
        return WatchCanceled(f"etcd cancelled the watch: {reason}", reason=reason)

    def _break(self, error: TransportError, call: Any = None) -> None:
        """Fail every watch on the current stream and forget the stream."""
        if call is not None and call is not self._call:
            return
        if self._call is not None:
            self._call.cancel()
        if self._endpoint is not None and not self._closed:
            log.info("watch stream to %s failed: %s", self._endpoint, error)
            self._client.endpoint_failed(self._endpoint, error)
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        self._call = self._endpoint = self._reader = None
        watches = list(self._pending) + list(self._active.values())
        self._pending.clear()
        self._active.clear()
        for watch in watches:
            watch._fail(error)

    async def close(self) -> None:
        self._closed = True
        reader = self._reader
        self._break(ConnectionFailed("the client was closed"))
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
