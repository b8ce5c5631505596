"""The leader's work: what it may be, how it is started, and which of its errors belong to the
loss of its term rather than to the work.

The async elector awaits ``work(term)`` on its event loop, so a plain function there would stop
the keepalives; the blocking elector calls it in the user's thread, where an async function
would never run. Both are refused before anything starts, with what to use instead.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import EtcdElectorError, LeadershipError, TransportError
from .._reasons import EndReason
from ._term import Term

__all__ = [
    "Work",
    "end_seen",
    "part_of_the_loss",
    "refuse_async_function",
    "refuse_plain_function",
    "start_work",
]

#: The leader's work: ``async def work(term): ...``; what it returns is what ``run()`` returns.
Work = Callable[[Term], Awaitable[object]]


def end_seen(term: Term, lost: asyncio.Future[EndReason]) -> EndReason | None:
    """Why ``term`` is over, or ``None`` while it holds. Computed, not only remembered: after a
    pause the work may see the deadline passed before the session's timer has said so."""
    if lost.done() and not lost.cancelled():
        return lost.result()
    if term.is_leader():
        return None
    return term.end_reason or EndReason.DEADLINE


_PLAIN_WORK = (
    "work must be an async function (async def {name}(term): ...): the elector awaits it on "
    "its event loop, where a plain function would stop keepalives until it returns. For "
    "threaded work use the blocking Elector (Client(...).elector(...)), which calls plain "
    "functions in your thread."
)


def refuse_plain_function(work: Any) -> None:
    """Refuse a ``def`` function before it runs: on the loop it would block the keepalives.

    Lambdas, decorated async functions and builtins are let through (they may return an
    awaitable); what they return is checked when they are called.
    """
    target = work
    while isinstance(target, functools.partial):
        target = target.func
    if not callable(target):
        raise TypeError(f"work must be callable, got {type(work).__name__}")
    name = getattr(target, "__name__", "work")
    if not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target)):
        name = f"{type(target).__name__}.__call__"
        target = type(target).__call__  # a callable object: judge its __call__
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(inspect.unwrap(target)):
        return
    if (inspect.isfunction(target) or inspect.ismethod(target)) and name != "<lambda>":
        raise TypeError(_PLAIN_WORK.format(name=name))


async def start_work(work: Work, term: Term) -> Any:
    outcome = work(term)
    if not inspect.isawaitable(outcome):
        raise TypeError(_PLAIN_WORK.format(name=getattr(work, "__name__", "work")))
    return await outcome


def part_of_the_loss(error: BaseException) -> bool:
    """Whether work that raised ``error`` once its term was over failed because of that end:
    it saw it (``LeadershipError``), or etcd went out of reach, which also ended the term."""
    if isinstance(error, EtcdElectorError) and not error.retriable:
        return False
    return isinstance(error, LeadershipError | TransportError)


def refuse_async_function(work: Any) -> None:
    """Refuse an ``async def`` function for the blocking elector, which calls ``work(term)``
    in the user's thread and cannot await it."""
    function = work
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        raise TypeError(
            "work is an async function: the blocking Elector calls work(term) in your "
            "thread and cannot await it. Use AsyncElector (AsyncClient(...).elector(...)), "
            "or make work a plain function"
        )
