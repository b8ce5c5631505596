"""Waiting on tasks: the few ways the library and the CLI race, stop and finish them.

Each is written once here, because each is easy to get subtly wrong by hand:

* :func:`wait_first`: until one of several tasks is done (the others keep running).
* :func:`first_result`: the first of several awaitables to finish wins; the others are
  cancelled and awaited.
* :func:`all_results`: several awaitables side by side; the first failure cancels the rest
  (``asyncio.gather`` would leave them running).
* :func:`unless`: await some work unless a stop condition comes first (then the work is
  cancelled and awaited, and :class:`Stopped` says why).
* :func:`cancel_and_wait`, :func:`cancel_all`: cancel tasks and wait until they have unwound.
* :func:`finish` and :func:`shielded`: let a piece of cleanup run to its end even if the task
  awaiting it is cancelled meanwhile.

The rule all of them keep: a ``CancelledError`` aimed at the *caller* is never swallowed. A
task cancelled while it waits for another task to unwind still waits for it (so nothing is
left running behind its back), then raises its own cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "Stopped",
    "all_results",
    "cancel_all",
    "cancel_and_wait",
    "finish",
    "first_result",
    "shielded",
    "unless",
    "wait_first",
]

T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class Stopped(Generic[S]):
    """What :func:`unless` returns when the stop came first: the stop's own result, and the
    error the work ended with as it was stopped, if it raised one (for the caller to report)."""

    value: S
    error: BaseException | None = None


async def wait_first(*tasks: asyncio.Future[Any]) -> None:
    """Wait until one of ``tasks`` is done; the others keep running. Cancelling the caller
    cancels none of them."""
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


async def _until_done(task: asyncio.Future[Any]) -> asyncio.CancelledError | None:
    """Wait until ``task`` is done, even through cancellations of the caller; return the last
    such cancellation (for the caller to raise once it has done what needs the task done)."""
    interrupted: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError as exc:
            interrupted = exc
    return interrupted


def _error(task: asyncio.Future[Any]) -> BaseException | None:
    """The error ``task`` ended with, marked as retrieved (``None``: returned or cancelled)."""
    return None if task.cancelled() else task.exception()


async def cancel_and_wait(task: asyncio.Future[Any]) -> BaseException | None:
    """Cancel ``task`` and wait until it is over; return the error it ended with while
    unwinding (``None`` if it ended by the cancellation, or had returned).

    If the caller is cancelled meanwhile, it still waits for ``task`` to end, then raises
    its own ``CancelledError`` (with the task's error, if any, as its cause).
    """
    if not task.done():
        task.cancel()
    interrupted = await _until_done(task)
    error = _error(task)
    if interrupted is not None:
        raise interrupted from error
    return error


async def finish(work: Awaitable[T]) -> tuple[T, asyncio.CancelledError | None]:
    """Await ``work`` to its end even if the caller is cancelled meanwhile.

    Returns its result and the cancellation that came in between, if one did: raise it once
    whatever needs the result is done. If ``work`` failed (or was cancelled) while the caller
    was being cancelled, the cancellation is raised at once, with the error as its cause.
    """
    task = asyncio.ensure_future(work)
    interrupted = await _until_done(task)
    if interrupted is not None and (task.cancelled() or task.exception() is not None):
        raise interrupted from _error(task)
    return task.result(), interrupted


async def shielded(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile, then raise that
    cancellation (for cleanup that must not be cut short: resigning, stopping a process)."""
    result, interrupted = await finish(work)
    if interrupted is not None:
        raise interrupted
    return result


async def first_result(*works: Awaitable[T]) -> T:
    """Run ``works`` together; return (or raise) the outcome of the first to finish, once the
    others have been cancelled and have unwound."""
    tasks = [asyncio.ensure_future(work) for work in works]
    try:
        await wait_first(*tasks)
        return next(task for task in tasks if task.done()).result()
    finally:
        for task in tasks:
            task.cancel()
        await _all_done(tasks)


async def all_results(*works: Awaitable[T]) -> list[T]:
    """Run ``works`` together and return their results in order; if one raises, cancel the
    others, wait until they have unwound, and raise its error."""
    tasks = [asyncio.ensure_future(work) for work in works]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and (task.cancelled() or task.exception() is not None):
                task.result()  # raises its error
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await _all_done(tasks)


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> list[BaseException]:
    """Cancel every task in ``tasks`` at once, wait until each is over, and return the errors
    they ended with while unwinding (as :func:`cancel_and_wait`, for many tasks)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    return await _all_done(pending)


async def _all_done(tasks: Sequence[asyncio.Future[Any]]) -> list[BaseException]:
    """Wait until every task in ``tasks`` is over and return their errors (retrieved, not
    raised); a cancellation of the caller meanwhile is raised once they are all over."""
    interrupted: asyncio.CancelledError | None = None
    for task in tasks:
        interrupted = await _until_done(task) or interrupted
    errors = [error for error in map(_error, tasks) if error is not None]
    if interrupted is not None:
        raise interrupted from (errors[0] if errors else None)
    return errors


async def unless(work: Awaitable[T], stop: Awaitable[S]) -> T | Stopped[S]:
    """Await ``work`` unless ``stop`` finishes first: then cancel ``work``, wait until it has
    unwound, and return :class:`Stopped` with what ``stop`` returned (and what ``work``
    raised as it unwound, if anything). If both finish together, ``work`` wins. Whatever
    happens, neither is left running when this returns or raises (a cancellation of the
    caller included).
    """
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop)
    try:
        await wait_first(task, stopper)
    except asyncio.CancelledError:
        task.cancel()
        stopper.cancel()
        await _all_done([task, stopper])
        raise
    if task.done():
        stopper.cancel()
        await _all_done([stopper])
        return task.result()
    error = await cancel_and_wait(task)
    return Stopped(stopper.result(), error)
