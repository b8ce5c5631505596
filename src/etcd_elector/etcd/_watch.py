"""Watches, many multiplexed over one gRPC stream per client.

etcd answers watch-create requests on a stream in the order they were sent, so pending
creations are matched first-in first-out. A stream that stays silent is probed with a progress
request (unless a lease keepalive on the same connection vouches for it); if even that gets no
answer within the stream timeout the stream is declared dead and every watch on it fails with a
typed error (the caller re-watches from its last revision).

gRPC allows one write in flight per stream (a second one fails the whole stream with
TOO_MANY_OPERATIONS), and cancelling a write ends the stream: so one writer task per stream
sends every request (creates, cancels, progress probes) in turn, and callers only queue them.
A create that was sent cannot be called back: a watch whose caller gave up (its registration
was cancelled) stays in the first-in first-out queue, so the matching of answers never shifts,
and is cancelled at etcd as soon as its id arrives.

etcd checks a stream's auth token when each watch is created (etcd 3.5 then answers an
expired token with "permission denied"): a refused creation gets a fresh token and one more
try on a new stream, and only a second refusal is the caller's ``PermissionDenied``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from .. import _clock, _metrics
from .._config import Endpoint
from .._errors import ClientClosed, ConnectionFailed, RequestTimeout, TransportError
from .._log import log_event
from .._proto import rpc_pb2
from .._tasks import cancel_all
from . import _rpc
from ._types import Event, WatchBatch

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["AsyncWatch", "WatchHub"]

log = logging.getLogger(__name__)


class _Refused(Exception):
    """A watch creation etcd refused for want of access; maybe only the stream's token."""

    def __init__(self, error: TransportError, token: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.token = token


@dataclass
class _Outgoing:
    """A request queued for the stream's writer. ``watch`` is set for a create: the watch
    joins the queue of pending creations when (and only if) its request is written."""

    request: rpc_pb2.WatchRequest
    watch: AsyncWatch | None
    written: asyncio.Future[bool]


class AsyncWatch:
    """One watch: ``async with client.watch(key) as w: async for batch in w: ...``.

    Iteration yields :class:`WatchBatch` values and ends only by raising: ``WatchCompacted``,
    ``WatchCanceled`` or a ``TransportError`` when the stream broke. After ``cancel()`` the
    iterator stops.
    """

    def __init__(self, hub: WatchHub, request: rpc_pb2.WatchCreateRequest) -> None:
        self._hub = hub
        self.request = request
        self.watch_id: int | None = None
        #: etcd's revision when it created the watch (its answer's header): a watch without a
        #: start revision delivers every event after it.
        self.created_revision: int | None = None
        self._queue: asyncio.Queue[WatchBatch | BaseException | None] = asyncio.Queue()
        self._created: asyncio.Future[None] | None = None
        self._finished = False
        self._released = False  # nobody wants it: cancel it at etcd once it has an id there

    async def __aenter__(self) -> AsyncWatch:
        await self._hub.register(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()

    def __aiter__(self) -> AsyncWatch:
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
        """Stop watching, once etcd was told. Idempotent."""
        if not self._finished:
            self._finished = True
            await self._hub.unregister(self)
            self._queue.put_nowait(None)

    def cancel_soon(self) -> None:
        """Stop watching now; the stream's writer tells etcd in the background (a waiter that
        just got its answer need not wait for that write). Idempotent."""
        if not self._finished:
            self._finished = True
            self._hub._release(self)
            self._queue.put_nowait(None)

    # Called by the hub.
    def _deliver(self, batch: WatchBatch) -> None:
        self._queue.put_nowait(batch)

    def _fail(self, error: BaseException) -> None:
        if self._created is not None and not self._created.done():
            self._created.set_exception(error)
            self._created.exception()  # register() re-raises it; don't warn "never retrieved"
        self._queue.put_nowait(error)

    def _settle_released(self) -> None:
        """Let a registration still waiting on this released watch return (it was cancelled)."""
        if self._created is not None and not self._created.done():
            self._created.set_result(None)


class WatchHub:
    """Owns the client's watch stream and routes its answers to watches."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._call: Any = None
        self._endpoint: Endpoint | None = None
        self._reader: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[_Outgoing] | None = None
        self._writing: _Outgoing | None = None  # the request the writer has on the wire
        self._last_heard = 0.0
        self._pending: collections.deque[AsyncWatch] = collections.deque()  # creates written
        self._active: dict[int, AsyncWatch] = {}
        self._lock = asyncio.Lock()  # opening (and replacing) the stream
        self._closed = False
        self._broke = False  # a stream broke and none was opened since (for metrics)
        self._token: str | None = None  # the auth token the stream was opened with

    async def register(self, watch: AsyncWatch) -> None:
        try:
            await self._register_once(watch)
        except _Refused as refused:
            deadline = _clock.now() + self._transport.config.timeout
            if not await self._transport.renew_token(refused.token, deadline):
                raise refused.error from None
            async with self._lock:
                if self._call is not None and self._token == refused.token:
                    self._break(
                        ConnectionFailed(
                            "reopening the watch stream with a new auth token",
                            endpoint=str(self._endpoint),
                        ),
                        blame=False,
                    )
            watch._queue = asyncio.Queue()
            try:
                await self._register_once(watch)
            except _Refused as again:
                raise again.error from None

    async def _register_once(self, watch: AsyncWatch) -> None:
        timeout = self._transport.config.stream_timeout
        loop = asyncio.get_running_loop()
        watch._created = loop.create_future()
        async with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            deadline = _clock.now() + self._transport.config.timeout
            if self._call is None:
                await self._open(deadline)
            call = self._call
            self._enqueue(rpc_pb2.WatchRequest(create_request=watch.request), watch)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(watch._created)
        except asyncio.CancelledError:
            # The create may be on the wire already; etcd then makes the watch regardless,
            # and it is cancelled there as soon as its id is known.
            self._release(watch)
            raise
        except TimeoutError:
            error = RequestTimeout(
                f"etcd at {self._endpoint} did not confirm a watch within {timeout:g}s",
                endpoint=str(self._endpoint),
            )
            self._break(error, call)
            raise error from None

    async def unregister(self, watch: AsyncWatch) -> None:
        written = self._release(watch)
        if written is not None:
            # The writer sends it whatever becomes of us; wait so that a returned cancel()
            # means etcd was told (the outcome is always a bool, never an error).
            await asyncio.shield(written)

    def _release(self, watch: AsyncWatch) -> asyncio.Future[bool] | None:
        """Nobody wants ``watch`` any more: cancel it at etcd now if it has an id on the
        current stream (return the pending write), else as soon as its id arrives."""
        watch._released = True
        watch_id = watch.watch_id
        if watch_id is None or self._active.get(watch_id) is not watch:
            return None  # not created yet, or its stream is gone (and the id with it)
        del self._active[watch_id]
        return self._enqueue(_cancel_request(watch_id))

    def _enqueue(
        self, request: rpc_pb2.WatchRequest, watch: AsyncWatch | None = None
    ) -> asyncio.Future[bool]:
        """Queue ``request`` for the current stream's writer; the future says if it was sent."""
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._outbox is None:
            written.set_result(False)
        else:
            self._outbox.put_nowait(_Outgoing(request, watch, written))
        return written

    async def _open(self, deadline: float) -> None:
        stream = await self._transport.open_stream(_rpc.WATCH, deadline)
        self._call = call = stream.call
        self._endpoint = endpoint = stream.endpoint
        self._token = stream.token
        if self._broke:
            self._broke = False
            _metrics.sink().watch_reconnected()
        self._last_heard = _clock.now()
        outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._outbox = outbox
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(
            self._read_loop(call, endpoint), name=f"etcd-watch-stream-{endpoint}"
        )
        self._monitor = loop.create_task(
            self._monitor_loop(call, endpoint), name=f"etcd-watch-monitor-{endpoint}"
        )
        self._writer = loop.create_task(
            self._write_loop(call, endpoint, outbox), name=f"etcd-watch-writer-{endpoint}"
        )

    async def _write_loop(
        self, call: Any, endpoint: Endpoint, outbox: asyncio.Queue[_Outgoing]
    ) -> None:
        """The one writer of a stream: sends queued requests one at a time, in order."""
        timeout = self._transport.config.stream_timeout
        while True:
            item = await outbox.get()
            watch = item.watch
            if watch is not None:
                if watch._released:  # given up before it was sent: never send it
                    watch._settle_released()
                    item.written.set_result(False)
                    continue
                self._pending.append(watch)
            self._writing = item
            try:
                await _rpc.write_before(call, item.request, timeout)
            except TimeoutError:
                self._break(
                    RequestTimeout(f"watch stream to {endpoint} is stuck", endpoint=str(endpoint)),
                    call,
                )
                return
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                # The stream had ended; its status says why (gRPC may report the failed write
                # itself as a bare INTERNAL or "RPC already finished").
                ended = await _rpc.finished_stream_error(call, str(endpoint), "watch")
                self._break(ended, call)
                return
            finally:
                if self._writing is item:
                    self._writing = None
            if not item.written.done():
                item.written.set_result(True)

    async def _read_loop(self, call: Any, endpoint: Endpoint) -> None:
        # Never put a timeout on read(): cancelling a pending read cancels the whole RPC.
        while True:
            try:
                response = await call.read()
            except asyncio.CancelledError:
                if _rpc.cancelled_by_us():
                    raise
                # Not us: gRPC cut the stream with its connection. Fail the watches loudly.
                self._break(ConnectionFailed(f"watch stream to {endpoint} was reset"), call)
                return
            except grpc.aio.AioRpcError:
                # The stream's status, mapped; a bare INTERNAL is gRPC hiding it behind a write
                # that lost the race with the stream's end: for the watches, the stream broke.
                self._break(await _rpc.finished_stream_error(call, str(endpoint), "watch"), call)
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
            self._last_heard = _clock.now()
            self._transport.answered(endpoint)
            self._dispatch(response, endpoint)

    async def _monitor_loop(self, call: Any, endpoint: Endpoint) -> None:
        """A silent stream never fails by itself: probe it, and give up if even that is silent.

        No probe while a lease keepalive stream vouches for the connection (see
        :meth:`Transport.vouch`): its own deadline resets a silent connection, which breaks
        this stream too, so an idle candidate costs etcd its keepalives and nothing more.
        """
        timeout = self._transport.config.stream_timeout
        half = timeout / 2
        probe_sent: float | None = None
        while call is self._call:
            await asyncio.sleep(half / 2)
            if not (self._active or self._pending):
                probe_sent = None
                continue
            now = _clock.now()
            if probe_sent is not None and self._last_heard >= probe_sent:
                probe_sent = None  # the stream answered
            if probe_sent is None:
                if self._transport.vouched(endpoint, now):
                    continue
                if now - self._last_heard >= half:
                    probe_sent = now
                    self._enqueue(
                        rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
                    )
            elif now - probe_sent >= half:
                self._break(
                    RequestTimeout(
                        f"watch stream to {endpoint} went silent for {now - self._last_heard:.1f}s",
                        endpoint=str(endpoint),
                    ),
                    call,
                    since=probe_sent,  # other answers on the connection since then: it lives
                )
                return

    def _dispatch(self, response: rpc_pb2.WatchResponse, endpoint: Endpoint) -> None:
        # A watch answer may lag behind what was read before: the guard checks its cluster id.
        self._transport.check_header(response.header, endpoint)
        if response.created:
            if not self._pending:
                log.warning("etcd confirmed a watch nobody asked for (id %d)", response.watch_id)
                return
            watch = self._pending.popleft()
            if response.canceled:
                watch._fail(self._refused(response) or _rpc.watch_canceled_error(response))
                return
            if watch._released:  # its caller gave up after the create was sent
                self._enqueue(_cancel_request(response.watch_id))
                watch._settle_released()
                return
            watch.watch_id = response.watch_id
            watch.created_revision = response.header.revision
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
            watch_or_none._fail(_rpc.watch_canceled_error(response))
            return
        watch_or_none._deliver(
            WatchBatch(
                events=tuple(Event.from_proto(e) for e in response.events),
                revision=response.header.revision,
            )
        )

    def _refused(self, response: rpc_pb2.WatchResponse) -> Exception | None:
        """A creation refused for want of access (``None`` for other reasons); with a token,
        maybe only for it: one more try with a fresh token settles it."""
        error = _rpc.watch_refused_error(response.cancel_reason or "", str(self._endpoint))
        if error is None or self._token is None:
            return error
        return _Refused(error, self._token)

    def _break(
        self,
        error: TransportError | ClientClosed,
        call: Any = None,
        *,
        blame: bool = True,
        since: float | None = None,
    ) -> None:
        """Fail every watch on the current stream and forget the stream; ``blame=False`` when
        the endpoint is not at fault (its connection is kept)."""
        if call is not None and call is not self._call:
            return
        if self._call is not None:
            self._call.cancel()
        if not blame:
            log.debug("watch stream to %s closed: %s", self._endpoint, error)
        elif self._endpoint is not None and isinstance(error, TransportError) and not self._closed:
            log_event(
                log, logging.INFO, "watch stream failed", endpoint=str(self._endpoint), detail=error
            )
            heard = self._last_heard if since is None else since
            self._transport.endpoint_failed(self._endpoint, error, since=heard)
            self._broke = True
        for task in (self._reader, self._monitor, self._writer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        unsent: list[_Outgoing] = []
        if self._writing is not None:
            unsent.append(self._writing)
        while self._outbox is not None and not self._outbox.empty():
            unsent.append(self._outbox.get_nowait())
        self._call = self._endpoint = self._reader = self._monitor = self._writer = None
        self._outbox = self._writing = None
        watches = list(self._pending) + list(self._active.values())
        watches += [item.watch for item in unsent if item.watch is not None]
        self._pending.clear()
        self._active.clear()
        for item in unsent:
            if not item.written.done():
                item.written.set_result(False)
        for watch in watches:
            watch._fail(error)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._reader, self._monitor, self._writer) if t is not None]
        self._break(ClientClosed("the client was closed"))
        errors = await cancel_all(tasks)
        if errors:
            raise errors[0]


def _cancel_request(watch_id: int) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id))
