"""A TCP proxy on 127.0.0.1 that injects network faults between a client and one target.

With an ``identify`` hook it also knows who opened each connection (its *origin*), and can
cut the connections of one origin while the others pass: the peer partitions of
:mod:`etcd_elector.testing._peers` are built on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from etcd_elector._errors import ConfigurationError
from etcd_elector._portal import Portal
from etcd_elector._tasks import cancel_all
from etcd_elector.testing._ports import LOOPBACK, reserve_port

__all__ = ["FaultProxy", "Identify", "ProxyMode"]

log = logging.getLogger(__name__)

#: Names who opened an accepted connection (the socket is the proxy's end), or None.
Identify = Callable[[socket.socket], str | None]

ProxyMode = Literal["pass_through", "delay", "blackhole"]

_T = TypeVar("_T")

_CHUNK = 64 * 1024
_QUEUE_CHUNKS = 16  # per direction; a full queue stops the reader, so TCP pushes back
_CONTROL_TIMEOUT_S = 10.0
_CONNECT_TIMEOUT_S = 10.0
_SETTLE_TIMEOUT_S = 5.0
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a RST


def _parse_target(target: str) -> tuple[str, int]:
    host, sep, port = target.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigurationError(f"proxy target must look like 'host:port', not {target!r}")
    return host.strip("[]"), int(port)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


class _Connection:
    """One client connection and its upstream connection, forwarding both ways."""

    def __init__(
        self,
        proxy: FaultProxy,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        origin: str | None,
    ) -> None:
        self._proxy = proxy
        self.origin = origin
        self._client_reader = reader
        self._client_writer = writer
        self._upstream_writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reset_requested = False
        self._runner: asyncio.Task[Any] | None = None
        self.done = asyncio.Event()

    async def run(self) -> None:
        proxy = self._proxy
        self._runner = asyncio.current_task()
        try:
            # A connection accepted while blackholed is held before it reaches the target.
            await proxy._flowing.wait()
            if self._reset_requested:
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(proxy.target_host, proxy.target_port),
                    _CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError):
                self._reset_requested = True  # the target refused us: refuse the client too
                return
            self._upstream_writer = up_writer
            if self._reset_requested:
                return
            up: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)
            down: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)
            self._tasks = [
                asyncio.create_task(self._pump(self._client_reader, up)),
                asyncio.create_task(self._deliver(up, up_writer, to_target=True)),
                asyncio.create_task(self._pump(up_reader, down)),
                asyncio.create_task(self._deliver(down, self._client_writer, to_target=False)),
            ]
            _, pending = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            if pending:  # a side failed (reset, broken pipe): pass the reset on
                self._reset_requested = True
        except asyncio.CancelledError:
            self._reset_requested = True
        finally:
            self._runner = None
            await self._close()

    async def _pump(self, reader: asyncio.StreamReader, queue: asyncio.Queue[Any]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._proxy._flowing.wait()  # blackholed: stop reading, let TCP push back
            data = await reader.read(_CHUNK)
            await queue.put((loop.time() + self._proxy._delay, data))
            if not data:
                return

    async def _deliver(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        *,
        to_target: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        proxy = self._proxy
        while True:
            deliver_at, data = await queue.get()
            while True:
                await proxy._flowing.wait()
                remaining = deliver_at - loop.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(remaining)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            # Count first: write() may send at once, and a reader on another thread must never
            # see bytes the counters do not include yet.
            if to_target:
                proxy._bytes_to_target += len(data)
            else:
                proxy._bytes_to_client += len(data)
            writer.write(data)
            await writer.drain()

    def reset(self) -> None:
        """Reset both sides now (RST); :meth:`run` then finishes and sets :attr:`done`."""
        self._reset_requested = True
        for writer in (self._client_writer, self._upstream_writer):
            if writer is not None:
                _reset(writer)
        for task in self._tasks:
            task.cancel()
        if self._runner is not None:  # still waiting to connect, or held by a blackhole
            self._runner.cancel()

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for writer in (self._client_writer, self._upstream_writer):
            if writer is None:
                continue
            if self._reset_requested:
                _reset(writer)
            else:
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), _SETTLE_TIMEOUT_S)
        self.done.set()


class FaultProxy:
    """Forwards TCP connections from ``127.0.0.1:<port>`` to one target, with faults on demand.

    It runs its own asyncio event loop in a daemon thread, so it behaves the same from
    synchronous tests, from async tests and while the test's own event loop is blocked.
    Every method is thread-safe and returns once the requested mode is in effect.
    """

    def __init__(self, target: str, *, identify: Identify | None = None) -> None:
        self.target = target
        self._identify = identify
        self._cut_origins: frozenset[str | None] = frozenset()
        self.target_host, self.target_port = _parse_target(target)
        self.port = 0
        self._delay = 0.0
        self._mode: ProxyMode = "pass_through"
        self._refusing = False
        self._bytes_to_target = 0
        self._bytes_to_client = 0
        self._accepted = 0
        self._connections: set[_Connection] = set()
        self._listener: socket.socket | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._portal: Portal | None = None  # the proxy's loop, on its own thread
        self._flowing = asyncio.Event()  # set = forwarding
        self._closed = False
        self._close_lock = threading.Lock()

    @classmethod
    def start(cls, target: str, *, identify: Identify | None = None) -> FaultProxy:
        """Listen on a free port of 127.0.0.1 and forward every connection to ``target``.

        ``identify``, called on the proxy's thread with each accepted socket, names the
        connection's origin for :meth:`cut_origin`; it must be quick and must not block.
        """
        proxy = cls(target, identify=identify)
        proxy._portal = Portal(name=f"FaultProxy->{target}")
        try:
            proxy.port = proxy._portal.call(proxy._listen, timeout=_CONTROL_TIMEOUT_S)
        except BaseException:
            proxy.close()
            raise
        reserve_port(proxy.port)
        return proxy

    # -- observation -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``: give this to the client instead of the target."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def mode(self) -> ProxyMode:
        return self._mode

    @property
    def refusing(self) -> bool:
        return self._refusing

    @property
    def connection_count(self) -> int:
        """Client connections open right now."""
        return len(self._connections)

    @property
    def accepted_count(self) -> int:
        """Client connections accepted since the start."""
        return self._accepted

    def connections_by_origin(self) -> Counter[str | None]:
        """Client connections open right now, counted by origin (None: not identified)."""
        return Counter(connection.origin for connection in list(self._connections))

    @property
    def cut_origins(self) -> frozenset[str | None]:
        """Origins whose connections are being cut (see :meth:`cut_origin`)."""
        return self._cut_origins

    @property
    def bytes_to_target(self) -> int:
        """Bytes forwarded from clients to the target."""
        return self._bytes_to_target

    @property
    def bytes_to_client(self) -> int:
        """Bytes forwarded from the target to clients."""
        return self._bytes_to_client

    @property
    def closed(self) -> bool:
        return self._closed

    # -- faults ----------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward normally, without delay; anything held by :meth:`blackhole` is delivered."""
        self._control(self._set_mode, "pass_through", 0.0)

    def heal(self) -> None:
        """Undo every fault: forward normally, deliver what was held, accept connections."""
        self._control(self._heal)

    def delay(self, seconds: float) -> None:
        """Deliver every chunk ``seconds`` after it was read, both ways, in order."""
        if seconds < 0:
            raise ConfigurationError(f"delay must not be negative, got {seconds}")
        self._control(self._set_mode, "delay", float(seconds))

    def blackhole(self) -> None:
        """Stop forwarding and reading both ways, closing nothing; new connections are held too.

        :meth:`heal` (or :meth:`pass_through`) delivers what was held, in order.
        """
        self._control(self._set_mode, "blackhole", 0.0)

    def drop(self) -> None:
        """Reset every current connection (the peers see a RST) and forward new ones normally."""
        self._control(self._drop)

    def refuse(self) -> None:
        """Close the listening socket: new connections are refused until :meth:`heal`."""
        self._control(self._refuse)

    def cut_origin(self, origin: str | None) -> None:
        """Reset every open connection from ``origin`` now (RST), and every new one as soon as
        it is accepted, until :meth:`restore_origin` or :meth:`heal`; other origins pass.

        ``None`` stands for connections the ``identify`` hook could not name.
        """
        self._control(self._cut_origin, origin)

    def restore_origin(self, origin: str | None) -> None:
        """Let connections from ``origin`` through again (undo :meth:`cut_origin`)."""
        self._control(self._restore_origin, origin)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection and the listener, and join the proxy's thread. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        portal = self._portal
        if portal is None:
            return
        try:
            portal.call(self._shutdown, timeout=_CONTROL_TIMEOUT_S)
        finally:
            portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FaultProxy {self.endpoint} -> {self.target} {self._mode}>"

    # -- the proxy's thread ----------------------------------------------------------------

    def _control(self, fn: Callable[..., Coroutine[Any, Any, _T]], *args: Any) -> _T:
        portal = self._portal
        if self._closed or portal is None:
            raise RuntimeError("the FaultProxy is closed")
        if portal.on_loop_thread():
            raise RuntimeError("FaultProxy methods cannot be called from the proxy's own thread")
        return portal.call(functools.partial(fn, *args), timeout=_CONTROL_TIMEOUT_S)

    async def _listen(self) -> int:
        """Start listening (on the proxy's loop); return the port."""
        self._flowing.set()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, self.port))
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept_all, listener)
        return self.port

    def _accept_all(self, listener: socket.socket) -> None:
        """Take every connection the kernel completed (runs on the proxy's loop)."""
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # BlockingIOError once the backlog is empty
                return
            self._serve(client)

    def _origin_of(self, client: socket.socket) -> str | None:
        if self._identify is None:
            return None
        try:
            return self._identify(client)
        except Exception:  # a broken hook must not stop the proxy: the origin is unknown
            log.warning("could not identify a connection to %s", self.target, exc_info=True)
            return None

    def _serve(self, client: socket.socket) -> None:
        client.setblocking(False)
        self._accepted += 1
        task = asyncio.create_task(self._on_client(client))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        asyncio.get_running_loop().remove_reader(listener.fileno())
        # Connections the kernel completed already are clients' established connections:
        # take them over, so that only connections attempted from now on are refused.
        self._accept_all(listener)
        listener.close()

    async def _on_client(self, client: socket.socket) -> None:
        try:
            origin = None
            if self._identify is not None:
                # Off the loop: reading the kernel's tables takes milliseconds, and a member
                # that is cut off redials many times a second.
                loop = asyncio.get_running_loop()
                origin = await loop.run_in_executor(None, self._origin_of, client)
            if origin in self._cut_origins:
                with contextlib.suppress(OSError):
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                client.close()  # a RST: the origin is cut off
                return
            reader, writer = await asyncio.open_connection(sock=client)
        except BaseException:
            client.close()
            raise
        connection = _Connection(self, reader, writer, origin)
        self._connections.add(connection)
        if origin in self._cut_origins:  # cut while this connection was being set up
            connection.reset()
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def _set_mode(self, mode: ProxyMode, delay: float) -> None:
        self._mode = mode
        self._delay = delay
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _heal(self) -> None:
        self._cut_origins = frozenset()
        await self._set_mode("pass_through", 0.0)
        if self._listener is None:
            await self._listen()
        self._refusing = False

    async def _refuse(self) -> None:
        self._refusing = True
        await self._stop_listening()  # existing connections stay

    async def _drop(self) -> None:
        await self._set_mode("pass_through", 0.0)
        await self._reset_all()

    async def _cut_origin(self, origin: str | None) -> None:
        self._cut_origins = self._cut_origins | {origin}
        await self._reset_where(lambda connection: connection.origin == origin)

    async def _restore_origin(self, origin: str | None) -> None:
        self._cut_origins = self._cut_origins - {origin}

    async def _reset_all(self) -> None:
        await self._reset_where(lambda connection: True)

    async def _reset_where(self, chosen: Callable[[_Connection], bool]) -> None:
        connections = [c for c in self._connections if chosen(c)]
        for connection in connections:
            connection.reset()
        if connections:
            waiters = [asyncio.create_task(c.done.wait()) for c in connections]
            _, pending = await asyncio.wait(waiters, timeout=_SETTLE_TIMEOUT_S)
            for waiter in pending:
                waiter.cancel()

    async def _shutdown(self) -> None:
        await self._refuse()
        await self._reset_all()
        await cancel_all(list(self._handlers))  # their errors were theirs to log
