"""``Overdue``: a deadline for each exchange of a stream, one exchange at a time, kept by one
timer that is re-armed only when it fires.

``asyncio.timeout`` schedules a timer and cancels it for every exchange; at thousands of
keepalives a second the event loop's timer heap fills with cancelled handles that it sorts by
calls into Python. Here a timer set for the first deadline finds, when it fires, a later
exchange still in time and sleeps until that one's deadline: about one timer per deadline's
length, however many exchanges pass meanwhile.
"""

from __future__ import annotations

import asyncio

from .. import _clock

__all__ = ["Overdue"]


class Overdue:
    """Cancels the task of an exchange still running at its deadline::

    cancelling = overdue.start(deadline)
    try:
        await exchange()
    except asyncio.CancelledError:
        if overdue.expired(cancelling):
            raise TimeoutError from None  # ours: the cancellation was withdrawn
        raise
    finally:
        overdue.stop()
    """

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._task: asyncio.Task[object] | None = None
        self._due = 0.0
        self._fired = False

    def start(self, due: float) -> int:
        """Watch the current task until :meth:`stop`; ``due`` is a ``_clock.now()`` time.
        Returns the task's count of pending cancellations, for :meth:`expired`."""
        task = asyncio.current_task()
        assert task is not None, "an exchange runs in a task"
        self._task, self._due, self._fired = task, due, False
        if self._timer is None or due < self._timer_due:
            self._arm(due)
        return task.cancelling()

    def stop(self) -> None:
        """The exchange is over (the timer stays, for the next one)."""
        self._task = None

    def expired(self, cancelling: int) -> bool:
        """After a ``CancelledError`` in the exchange: whether it was this deadline's; if so
        the cancellation is withdrawn (unless someone else asked for one too)."""
        if not self._fired:
            return False
        self._fired = False
        task = asyncio.current_task()
        return task is not None and task.uncancel() <= cancelling

    def close(self) -> None:
        """Drop the timer. Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._task = None

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, due - _clock.now()), self._check)
        self._timer_due = due

    def _check(self) -> None:
        self._timer = None
        task = self._task
        if task is None:
            return  # idle: the next exchange arms a timer again
        if _clock.now() >= self._due:
            self._fired = True
            task.cancel()
        else:
            self._arm(self._due)
