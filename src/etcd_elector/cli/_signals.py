"""SIGINT, SIGTERM and SIGHUP (a closed terminal) as asyncio events: the first asks for a
clean stop, each further one calls the escalation hooks (``run`` kills its command's tree at
once). No signal ends the process on the spot: stopping always withdraws from etcd first; a signal
that arrives once all that is done is ignored, and the process exits with the first signal's
code."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import TracebackType

__all__ = ["STOP_SIGNALS", "Signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Signals:
    """``async with Signals() as signals: ... await signals.wait()``."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal
        self.count = 0
        self._event = asyncio.Event()
        self._escalations: list[Callable[[int], None]] = []
        self._installed: list[int] = []

    def on_repeat(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(signum)`` for every stop signal after the first."""
        self._escalations.append(callback)

    @property
    def stopping(self) -> bool:
        return self.received is not None

    async def wait(self) -> int:
        await self._event.wait()
        assert self.received is not None
        return self.received

    def _handle(self, signum: int) -> None:
        self.count += 1
        if self.received is None:
            self.received = signum
            self._event.set()
            return
        for callback in self._escalations:
            callback(signum)

    async def __aenter__(self) -> Signals:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._handle, signum)
            self._installed.append(signum)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        # Stopping, and everything is withdrawn: a late repeat (GNU timeout's second copy,
        # delayed) must not kill the process now, with its default action, while it exits
        # with the first signal's code. Ignored, not handled: Python resets its own handlers
        # to the default when it finalizes, but leaves SIG_IGN alone. Blocked meanwhile, so
        # that none lands between removing the loop's handler and ignoring the signal.
        swap = self.received is not None and hasattr(signal, "pthread_sigmask")
        if swap:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self._installed)
        try:
            for signum in self._installed:
                loop.remove_signal_handler(signum)
                if self.received is not None:
                    signal.signal(signum, signal.SIG_IGN)
        finally:
            if swap:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self._installed.clear()
