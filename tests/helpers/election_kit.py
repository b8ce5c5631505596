"""Small shared helpers for the session and election tests: bounded waits and an observer.

Every wait here is bounded in time and in iterations; none of them is a fixed sleep standing in
for a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# Generous bounds: the machine running these may be loaded. Never used as a tight upper bound.
WAIT_S = 15.0
POLL_S = 0.02


def namespace_of(prefix: str) -> str:
    """The ``etcd_prefix`` fixture as an election namespace (no trailing slash)."""
    return prefix.rstrip("/")


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout: float = WAIT_S,
    interval: float = POLL_S,
) -> None:
    """Poll ``condition`` (sync or async) until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 10):
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    raise AssertionError(f"not true within {timeout:g}s: {what}")


class Recorder(Generic[T]):
    """Runs ``observe()`` (or ``observe_events()``) in a task and keeps everything it yields,
    in order."""

    def __init__(self, stream: AsyncIterator[T]) -> None:
        self.items: list[T] = []
        self._stream = stream
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for item in self._stream:
            self.items.append(item)
            self._changed.set()

    @property
    def latest(self) -> T:
        assert self.items, "the observer yielded nothing yet"
        return self.items[-1]

    def _check_running(self) -> None:
        if self._task.done():
            raise AssertionError(f"observe() ended: {self._task!r}")

    async def next(self, index: int, timeout: float = WAIT_S) -> T:
        """The ``index``-th item (0-based), waiting for it."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / POLL_S) + 10):  # each round waits or sees a new item
            if len(self.items) > index:
                return self.items[index]
            self._check_running()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._changed.wait()
        raise AssertionError(
            f"observe() yielded only {len(self.items)} items in {timeout:g}s: {self.items!r}"
        )

    async def wait_latest(
        self, expected: Callable[[T], bool], what: str, timeout: float = WAIT_S
    ) -> None:
        """Wait until the latest item satisfies ``expected``."""

        def ok() -> bool:
            self._check_running()
            return bool(self.items) and expected(self.items[-1])

        try:
            await wait_until(ok, what, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; observed {self.items!r}") from None

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()
