"""SIGTERM and SIGINT as a request to stop, carried to an event loop.

Process managers stop a service with SIGTERM (docker stop, systemd, Kubernetes) and a terminal
sends SIGINT (Ctrl-C). Left to Python's defaults, SIGTERM kills the process with its key still
in etcd, so the next leader waits out the TTL, and SIGINT raises ``KeyboardInterrupt`` wherever
the main thread happens to be. :class:`StopSignals` turns both into one call on the loop, where
the elector stops the work and resigns; a signal that comes again while stopping changes
nothing, so a process told twice to stop still resigns. ``restore()`` puts back whatever handled
the signals before.

Python runs signal handlers in the main thread only, so they are installed from there. When the
loop runs in that thread (asyncio code) the loop's own handlers are used. Otherwise (the blocking
API, whose loop runs on a background thread) the main thread may be blocked in a call that the
signal does not interrupt (the kernel may hand it to any thread), so the handler's Python part
cannot be relied on to run in time: Python's wakeup file descriptor, which its C-level handler
writes each signal number to from whatever thread caught it, is read by the loop itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Call ``on_signal(signum)`` on ``loop`` for every SIGTERM or SIGINT until restored."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], Any]) -> None:
        self._loop = loop
        self._on_signal = on_signal
        self._previous: dict[int, Any] = {}
        self._on_loop = False
        self._hand_back = False
        self._wakeup: tuple[socket.socket, socket.socket] | None = None  # (loop's end, C's end)

    def install(self) -> None:
        """Take over SIGTERM and SIGINT. Idempotent.

        :raises RuntimeError: outside the main thread, where Python cannot install handlers.
        """
        if self._previous:
            return
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "stop_on_signals() must be called from the main thread: Python runs signal "
                "handlers there only"
            )
        try:
            self._on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            self._on_loop = False
        if not self._on_loop:
            self._open_wakeup()
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            if self._on_loop:
                self._loop.add_signal_handler(signum, self._on_signal, signum)
            else:
                signal.signal(signum, self._forward)

    def _open_wakeup(self) -> None:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        if previous != -1:
            # Someone else reads the wakeup fd (an event loop of their own): leave it to them,
            # and forward from the handler instead.
            signal.set_wakeup_fd(previous)
            reader.close()
            writer.close()
            return
        self._wakeup = (reader, writer)
        self._loop.call_soon_threadsafe(self._loop.add_reader, reader.fileno(), self._read_wakeup)

    def _read_wakeup(self) -> None:
        """On the loop: the numbers of the signals caught since the last read."""
        wakeup = self._wakeup
        if wakeup is None:
            return
        try:
            caught = wakeup[0].recv(64)
        except (BlockingIOError, InterruptedError):
            return
        for signum in caught:
            # Not once given back (or while being given back): it is the previous handler's.
            if signum in STOP_SIGNALS and self._previous and not self._hand_back:
                self._on_signal(signum)

    def restore(self) -> None:
        """Put the previous handlers back. Idempotent; safe from any thread."""
        if not self._previous:
            return
        if threading.current_thread() is threading.main_thread():
            self._restore_now()
        else:
            # Only the main thread may set handlers: the next signal, which runs there, will.
            self._hand_back = True

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes of whatever it was doing.
        if self._hand_back:
            self._restore_now()
            signal.raise_signal(signum)  # as if we had never been installed
            return
        if self._wakeup is not None:
            return  # the loop has read it from the wakeup fd already, or soon will
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to stop
            self._loop.call_soon_threadsafe(self._on_signal, signum)

    def _restore_now(self) -> None:
        previous, self._previous = self._previous, {}
        self._hand_back = False
        for signum, handler in previous.items():
            if self._on_loop and not self._loop.is_closed():
                self._loop.remove_signal_handler(signum)
            # None: a handler installed outside Python; the default is the closest we can do.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._close_wakeup()

    def _close_wakeup(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is None:
            return
        reader, writer = wakeup
        ours = signal.set_wakeup_fd(-1)
        if ours != writer.fileno():  # set by someone after us: theirs to keep
            signal.set_wakeup_fd(ours)
        writer.close()

        def drop_reader() -> None:
            self._loop.remove_reader(reader.fileno())
            reader.close()

        if self._loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed just now
                self._loop.call_soon_threadsafe(drop_reader)
                return
        reader.close()
