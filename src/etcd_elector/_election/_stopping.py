"""How an elector is told to stop: ``close()``'s flag, and SIGTERM/SIGINT handled as a clean
stop (the work stops, the elector resigns). Part of :class:`AsyncElector`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

from .._stop_signals import SignalSlot

__all__ = ["Stopping"]


class Stopping:
    """The stop side of :class:`AsyncElector`, which provides what is declared here."""

    if TYPE_CHECKING:
        _closing: asyncio.Event
        _stop_signals: SignalSlot

        def _event(self, level: int, message: str, /, **fields: Any) -> None: ...

    def stop_on_signals(self) -> None:
        """Stop cleanly on SIGTERM (docker stop, systemd, Kubernetes) and SIGINT (Ctrl-C)::

            async with client.elector("scheduler") as elector:
                elector.stop_on_signals()
                await elector.run(schedule_jobs)  # returns None once a signal came

        The work is cancelled, the elector resigns (the next candidate takes over within a
        round trip) and ``run()`` returns ``None``: no ``KeyboardInterrupt``, no traceback. A
        signal that comes again while stopping is ignored, so the resign still happens. Once
        ``run()`` has returned after a stop (or at ``close()``), the previous handlers are back.
        Call it from the main thread, inside the running event loop.

        :raises RuntimeError: outside the main thread or outside a running event loop.
        """
        self._stop_signals.install(asyncio.get_running_loop(), self.on_stop_signal)

    @property
    def stopping(self) -> bool:
        """Whether the elector was told to stop (``close()``, a stop signal)."""
        return self._closing.is_set()

    def on_stop_signal(self, signum: int) -> None:
        """What a stop signal does (either twin's :meth:`stop_on_signals` handler calls it, on
        the event loop): the work stops, we resign, ``run()`` returns ``None``. Again while
        stopping, nothing."""
        name = signal.Signals(signum).name
        if self._closing.is_set():
            self._event(logging.INFO, f"{name} again: already stopping", signal=name)
            return
        self._event(logging.INFO, f"{name}: stopping (the work stops, then we resign)", signal=name)
        self._closing.set()
