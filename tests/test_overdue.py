"""``Overdue``, the keepalive stream's per-answer deadline kept by one timer: an exchange past
its deadline ends with ``TimeoutError``, one in time is left alone even when the timer armed
for an earlier exchange fires during it, and a cancellation from outside is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from etcd_elector import _clock
from etcd_elector.etcd._overdue import Overdue


async def _exchange(overdue: Overdue, due_in: float, answer: asyncio.Future[str]) -> str:
    cancelling = overdue.start(_clock.now() + due_in)
    try:
        return await answer
    except asyncio.CancelledError:
        if overdue.expired(cancelling):
            raise TimeoutError from None
        raise
    finally:
        overdue.stop()


async def test_an_exchange_past_its_deadline_times_out() -> None:
    overdue = Overdue()
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await _exchange(overdue, 0.05, never)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    overdue.close()


async def test_later_exchanges_in_time_survive_the_first_timer() -> None:
    overdue = Overdue()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[str] = loop.create_future()
    first.set_result("first")
    assert await _exchange(overdue, 0.05, first) == "first"  # arms a timer for +0.05 s
    second: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.2, second.set_result, "second")  # answered after the first deadline
    assert await _exchange(overdue, 5.0, second) == "second"
    overdue.close()


async def test_a_shorter_deadline_after_a_longer_one_still_times_out() -> None:
    overdue = Overdue()
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[str] = loop.create_future()
    answered.set_result("x")
    await _exchange(overdue, 30.0, answered)  # a timer for +30 s
    never: asyncio.Future[str] = loop.create_future()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_exchange(overdue, 0.05, never), 10)
    overdue.close()


async def test_a_cancellation_from_outside_is_not_swallowed() -> None:
    overdue = Overdue()
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_exchange(overdue, 30.0, never))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    overdue.close()
