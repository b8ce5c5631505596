"""The task helpers every race, stop and cleanup goes through: what each waits for, and that a
cancellation aimed at the caller is never swallowed (pure asyncio, no etcd)."""

from __future__ import annotations

import asyncio

import pytest

from etcd_elector._tasks import (
    Stopped,
    all_results,
    cancel_and_wait,
    finish,
    first_result,
    shielded,
    unless,
    wait_first,
)

pytestmark = pytest.mark.timeout(10)


async def slow_to_unwind(release: asyncio.Event, unwound: list[str], error: bool = False) -> None:
    """Waits forever; when cancelled, waits for ``release`` before it is over."""
    try:
        await asyncio.Event().wait()
    finally:
        await release.wait()
        unwound.append("unwound")
        if error:
            raise ValueError("failed while unwinding")


async def test_cancel_and_wait_waits_for_the_task_and_returns_what_it_raised() -> None:
    release, unwound = asyncio.Event(), list[str]()
    release.set()
    quiet = asyncio.create_task(slow_to_unwind(release, unwound))
    await asyncio.sleep(0)
    assert await cancel_and_wait(quiet) is None and quiet.cancelled()
    failing = asyncio.create_task(slow_to_unwind(release, unwound, error=True))
    await asyncio.sleep(0)
    error = await cancel_and_wait(failing)
    assert isinstance(error, ValueError) and unwound == ["unwound", "unwound"]
    done = asyncio.create_task(asyncio.sleep(0, result=5))
    await done
    assert await cancel_and_wait(done) is None


async def test_cancel_and_wait_never_swallows_the_callers_own_cancellation() -> None:
    release, unwound = asyncio.Event(), list[str]()
    inner = asyncio.create_task(slow_to_unwind(release, unwound))
    after: list[str] = []

    async def caller() -> None:
        await cancel_and_wait(inner)
        after.append("went on as if nothing happened")

    outer = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    outer.cancel()
    await asyncio.sleep(0.01)
    assert not outer.done(), "the caller left while the task was still unwinding"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled() and inner.cancelled()
    assert unwound == ["unwound"] and after == []


async def test_shielded_cleanup_runs_to_its_end_then_the_cancellation_propagates() -> None:
    release, steps = asyncio.Event(), []

    async def cleanup() -> str:
        await release.wait()
        steps.append("cleaned up")
        return "done"

    async def caller() -> str:
        result = await shielded(cleanup())
        steps.append("went on")
        return result

    outer = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    outer.cancel()
    await asyncio.sleep(0.01)
    assert not outer.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert steps == ["cleaned up"]
    assert await shielded(cleanup()) == "done"


async def test_finish_hands_back_the_result_and_the_cancellation_that_came_meanwhile() -> None:
    release = asyncio.Event()
    seen: list[object] = []

    async def start() -> str:
        await release.wait()
        return "started"

    async def caller() -> None:
        result, interrupted = await finish(start())
        seen.append((result, interrupted is not None))

    outer = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    outer.cancel()
    release.set()
    await outer
    assert seen == [("started", True)]
    assert await finish(asyncio.sleep(0, result=1)) == (1, None)


async def test_finish_raises_the_cancellation_when_the_work_failed_meanwhile() -> None:
    release = asyncio.Event()

    async def start() -> None:
        await release.wait()
        raise ValueError("start failed")

    outer = asyncio.create_task(finish(start()))
    await asyncio.sleep(0.01)
    outer.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError) as info:
        await outer
    assert isinstance(info.value.__cause__, ValueError)


async def test_unless_returns_the_work_or_what_stopped_it() -> None:
    assert await unless(asyncio.sleep(0, result="work"), asyncio.Event().wait()) == "work"

    release, unwound = asyncio.Event(), list[str]()
    release.set()
    stopped = await unless(
        slow_to_unwind(release, unwound, error=True), asyncio.sleep(0.01, result="stop")
    )
    assert isinstance(stopped, Stopped) and stopped.value == "stop"
    assert isinstance(stopped.error, ValueError) and unwound == ["unwound"]

    with pytest.raises(KeyError):
        await unless(_raise(KeyError("work failed")), asyncio.Event().wait())


async def test_unless_prefers_the_work_when_both_are_done() -> None:
    stop = asyncio.get_running_loop().create_future()
    stop.set_result("stop")
    work = asyncio.get_running_loop().create_future()
    work.set_result("work")
    assert await unless(work, stop) == "work"


async def test_unless_leaves_nothing_running_when_the_caller_is_cancelled() -> None:
    release, unwound = asyncio.Event(), list[str]()
    stop_waiting = asyncio.Event()

    async def stop() -> None:
        try:
            await stop_waiting.wait()
        finally:
            unwound.append("stop unwound")

    outer = asyncio.create_task(unless(slow_to_unwind(release, unwound), stop()))
    await asyncio.sleep(0.01)
    outer.cancel()
    await asyncio.sleep(0.01)
    assert not outer.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert sorted(unwound) == ["stop unwound", "unwound"]


async def test_first_result_cancels_the_others() -> None:
    release, unwound = asyncio.Event(), list[str]()
    release.set()
    winner = await first_result(
        asyncio.sleep(0.01, result="first"), slow_to_unwind(release, unwound)
    )
    assert winner == "first" and unwound == ["unwound"]
    with pytest.raises(KeyError):
        await first_result(_raise(KeyError("first failed")), asyncio.Event().wait())


async def test_wait_first_leaves_the_others_running() -> None:
    slow = asyncio.create_task(asyncio.Event().wait())
    quick = asyncio.create_task(asyncio.sleep(0))
    await wait_first(slow, quick)
    assert quick.done() and not slow.done()
    assert await cancel_and_wait(slow) is None


async def _raise(error: Exception) -> str:
    await asyncio.sleep(0)
    raise error


async def test_all_results_returns_every_result_in_order() -> None:
    async def later(value: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return value

    assert await all_results(later(1, 0.02), later(2, 0), later(3, 0.01)) == [1, 2, 3]


async def test_all_results_cancels_the_rest_when_one_fails_and_raises_its_error() -> None:
    release, unwound = asyncio.Event(), list[str]()
    release.set()

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("read failed")

    with pytest.raises(ValueError, match="read failed"):
        await all_results(slow_to_unwind(release, unwound), failing())
    assert unwound == ["unwound"]  # not left running, as asyncio.gather would leave it
