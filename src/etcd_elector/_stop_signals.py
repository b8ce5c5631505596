"""SIGTERM and SIGINT (and SIGHUP, for the command line) as a request to stop, carried to an
event loop: the one mechanism the library's ``stop_on_signals()`` and the command line share.

Process managers stop a service with SIGTERM (docker stop, systemd, Kubernetes) and a terminal
sends SIGINT (Ctrl-C). Left to Python's defaults, SIGTERM kills the process with its key still
in etcd, so the next leader waits out the TTL, and SIGINT raises ``KeyboardInterrupt`` wherever
the main thread happens to be. :class:`StopSignals` turns every one into a call on the loop and
remembers the first (:attr:`~StopSignals.received`, :meth:`~StopSignals.wait`). What a repeat
does is the owner's choice: nothing for the elector (a process told twice to stop still
resigns), an escalation for the command line (``on_repeat``: ``run`` kills its command's tree
at once). ``restore()`` puts back whatever handled the signals before; the command line has a
late repeat, once everything is withdrawn, ignored instead (``keep_ignoring``), so that the
process exits with the first signal's code.

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

__all__ = ["COMMAND_LINE_SIGNALS", "STOP_SIGNALS", "SignalSlot", "StopSignals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: A closed terminal (SIGHUP) stops a command too.
COMMAND_LINE_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """Call ``on_signal(signum)`` on ``loop`` (default: the loop running at :meth:`install`) for
    every one of ``signals`` until restored; the callbacks given to :meth:`on_repeat` run for
    each one after the first.

    ``async with StopSignals(...) as stop:`` installs on the running loop and, on the way out,
    restores the previous handlers, or ignores the signals if one came (see :meth:`restore`).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        on_signal: Callable[[int], Any] | None = None,
        *,
        signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
    ) -> None:
        self._loop = loop
        self._on_signal = on_signal
        self._signals = signals
        self.received: int | None = None  # the first signal
        self.count = 0
        self._event = asyncio.Event()
        self._repeats: list[Callable[[int], Any]] = []
        self._previous: dict[int, Any] = {}
        self._on_loop = False
        self._hand_back = False
        self._wakeup: tuple[socket.socket, socket.socket] | None = None  # (loop's end, C's end)

    @property
    def stopping(self) -> bool:
        """Whether a stop signal came."""
        return self.received is not None

    async def wait(self) -> int:
        """Wait for the first stop signal; return its number."""
        await self._event.wait()
        assert self.received is not None
        return self.received

    def on_repeat(self, callback: Callable[[int], Any]) -> None:
        """Call ``callback(signum)`` for every stop signal after the first."""
        self._repeats.append(callback)

    def _handle(self, signum: int) -> None:
        """On the loop: one stop signal came."""
        self.count += 1
        first = self.received is None
        if first:
            self.received = signum
            self._event.set()
        if self._on_signal is not None:
            self._on_signal(signum)
        if not first:
            for callback in self._repeats:
                callback(signum)

    async def __aenter__(self) -> StopSignals:
        self.install()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.restore(keep_ignoring=True)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def install(self) -> None:
        """Take over the signals. Idempotent.

        :raises RuntimeError: outside the main thread, where Python cannot install handlers,
            or without a loop (none given, none running).
        """
        if self._previous:
            return
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "stop_on_signals() must be called from the main thread: Python runs signal "
                "handlers there only"
            )
        loop = self.loop
        try:
            self._on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            self._on_loop = False
        if not self._on_loop:
            self._open_wakeup()
        for signum in self._signals:
            self._previous[signum] = signal.getsignal(signum)
            if self._on_loop:
                loop.add_signal_handler(signum, self._handle, signum)
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
        self.loop.call_soon_threadsafe(self.loop.add_reader, reader.fileno(), self._read_wakeup)

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
            if signum in self._signals and self._previous and not self._hand_back:
                self._handle(signum)

    def restore(self, *, keep_ignoring: bool = False) -> None:
        """Put the previous handlers back. Idempotent; safe from any thread.

        With ``keep_ignoring``, once a stop signal came (and was acted on), the signals are
        ignored instead, from the main thread on the loop: a late repeat (GNU timeout's
        second copy, delayed) then cannot kill the process with its default action while it
        exits with the first signal's code. Ignored, not handled: Python resets its own
        handlers to the default when it finalizes, but leaves ``SIG_IGN`` alone.
        """
        if not self._previous:
            return
        if keep_ignoring and self.received is not None and self._on_loop:
            self._ignore_now()
        elif threading.current_thread() is threading.main_thread():
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
            self.loop.call_soon_threadsafe(self._handle, signum)

    def _restore_now(self) -> None:
        previous, self._previous = self._previous, {}
        self._hand_back = False
        for signum, handler in previous.items():
            if self._on_loop and not self.loop.is_closed():
                self.loop.remove_signal_handler(signum)
            # None: a handler installed outside Python; the default is the closest we can do.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._close_wakeup()

    def _ignore_now(self) -> None:
        """Swap the loop's handlers for ``SIG_IGN``, with the signals blocked meanwhile so that
        none lands between the two."""
        signums = list(self._previous)
        self._previous = {}
        masking = hasattr(signal, "pthread_sigmask")
        if masking:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
        try:
            for signum in signums:
                self.loop.remove_signal_handler(signum)
                signal.signal(signum, signal.SIG_IGN)
        finally:
            if masking:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

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
            self.loop.remove_reader(reader.fileno())
            reader.close()

        if self.loop.is_running():
            with contextlib.suppress(RuntimeError):  # closed just now
                self.loop.call_soon_threadsafe(drop_reader)
                return
        reader.close()


class SignalSlot:
    """Where a ``stop_on_signals()`` keeps its handlers (the elector's, the shard group's and
    their blocking twins'): installed once however often it is called, and given back once
    stopping is over (until then, a signal that comes again must not cut the cleanup short)."""

    def __init__(self) -> None:
        self._installed: StopSignals | None = None

    def install(self, loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], Any]) -> None:
        if self._installed is None:
            signals = StopSignals(loop, on_signal)
            signals.install()
            self._installed = signals

    def restore(self) -> None:
        signals, self._installed = self._installed, None
        if signals is not None:
            signals.restore()
