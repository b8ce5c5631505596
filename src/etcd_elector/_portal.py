"""A blocking portal: an asyncio loop on its own thread, and calls carried into it.

The sync API is a thin layer over the async core through this portal, so keepalives and watches
keep running while the user's thread blocks in its own work, and no logic is written twice.

Calls are carried as a function and its arguments, never as a ready coroutine: the coroutine is
made on the loop thread only once the call is sure to run, so a refused call (a closed client,
the loop's own thread) leaves no coroutine behind that Python would warn was never awaited.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar, TypeVarTuple

from ._errors import ClientClosed, RequestTimeout

__all__ = ["Portal", "SyncIterator"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# How long a cancelled call may take to clean up (a campaign deleting its key, say).
_CLEANUP_TIMEOUT = 10.0


class Portal:
    """Owns one event loop running on a daemon thread until :meth:`close`."""

    def __init__(self, name: str = "etcd-elector-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        self._closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def closed(self) -> bool:
        return self._closed

    def call(
        self,
        function: Callable[[*Ts], Awaitable[T]],
        *args: *Ts,
        timeout: float | None = None,
        what: str = "",
    ) -> T:
        """Run ``function(*args)`` on the loop and block until it finishes (anyio's
        ``from_thread.run``); pass keyword arguments with :func:`functools.partial`.

        With ``timeout``, the call is cancelled when it expires (its cleanup is awaited) and
        ``RequestTimeout`` is raised. An interrupt in the calling thread cancels it too.

        :raises ClientClosed: if the portal is closed.
        :raises RuntimeError: when called from the loop's own thread (elector callbacks run
            there), where blocking would stop the loop for good.
        """
        self._check_caller()
        started, finished = threading.Event(), threading.Event()

        async def tracked() -> T:
            started.set()
            try:
                return await function(*args)
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(tracked(), self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            self._cancel(future, started, finished)
            raise RequestTimeout(
                f"{what or 'the call'} did not finish within {timeout:g}s"
            ) from None
        except BaseException:
            self._cancel(future, started, finished)
            raise

    def on_loop_thread(self) -> bool:
        """Whether the caller runs on the portal's own loop thread (where blocking is refused)."""
        return threading.current_thread() is self._thread

    def _check_caller(self) -> None:
        if self._closed:
            raise ClientClosed("the client is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "the blocking API was called on the client's own event loop thread, where "
                "elector callbacks run: use the async API there (client.aio, elector.aio), "
                "or make the call from your own thread, in work(term)"
            )

    @staticmethod
    def _cancel(
        future: concurrent.futures.Future[Any], started: threading.Event, finished: threading.Event
    ) -> None:
        if future.cancel() and started.is_set():
            finished.wait(_CLEANUP_TIMEOUT)

    def submit(
        self, function: Callable[[*Ts], Awaitable[T]], *args: *Ts
    ) -> concurrent.futures.Future[T]:
        """Start ``function(*args)`` on the loop without waiting for it.

        :raises RuntimeError: as :meth:`call` does.
        """
        self._check_caller()

        async def started() -> T:
            return await function(*args)

        return asyncio.run_coroutine_threadsafe(started(), self._loop)

    def close(self) -> None:
        """Cancel what is left on the loop, stop it and join its thread. Idempotent."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()
            await self._loop.shutdown_default_executor()  # asyncio.to_thread's threads

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(_CLEANUP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CLEANUP_TIMEOUT)
        self._loop.close()


class SyncIterator(Iterator[T]):
    """A plain iterator over an async iterator living on the portal's loop."""

    def __init__(
        self, portal: Portal, iterator: AsyncIterator[T], timeout: float | None = None
    ) -> None:
        self._portal = portal
        self._iterator = iterator
        self._timeout = timeout
        self._done = False

    def __iter__(self) -> SyncIterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            return self._portal.call(
                self._iterator.__anext__, timeout=self._timeout, what="waiting for the next item"
            )
        except StopAsyncIteration:
            self._done = True
            raise StopIteration from None

    def close(self) -> None:
        """Stop iterating and release the underlying stream. Idempotent."""
        if not self._done:
            self._done = True
            closer = getattr(self._iterator, "aclose", None)
            if closer is not None:
                self._portal.call(closer)

    def __enter__(self) -> SyncIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
