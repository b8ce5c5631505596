"""Waiting on watches in tests: bounded, and never a silent pass."""

from __future__ import annotations

import asyncio

import pytest

from etcd_elector import AsyncWatch
from etcd_elector.etcd import WatchBatch

WAIT_S = 10.0


async def next_batch(watch: AsyncWatch, timeout: float = WAIT_S) -> WatchBatch:
    """The watch's next batch that carries events (progress notices are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            batch = await anext(watch)
            if batch.events:
                return batch


async def drain_until_error(watch: AsyncWatch, timeout: float) -> BaseException:
    """Iterate ``watch`` until it raises; return the error (fails the test on a clean end)."""
    async with asyncio.timeout(timeout):
        try:
            async for _ in watch:
                pass
        except Exception as exc:
            return exc
    pytest.fail("the watch ended without an error")
