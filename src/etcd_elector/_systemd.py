"""systemd's ``Type=notify`` protocol for one elector: ``READY=1`` once it campaigns, and
``WATCHDOG=1`` only while a stall could not outlive the lease.

The protocol is a datagram of ``KEY=VALUE`` lines sent to the unix socket named by
``NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace); ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``, when set, naming this process) says that systemd expects ``WATCHDOG=1``
at least that often and kills the service otherwise (``WatchdogSec=``).

The pings are sent from the elector's event loop, so a loop that stops (blocked by a call
that never returns, or the process frozen by SIGSTOP) stops them. While this process leads,
a ping is sent only if, should it be the last, systemd's kill (one ``WatchdogSec`` later)
still comes before etcd can expire the lease: etcd's expiry is never before the local
deadline plus the margin (the deadline is ``send time + TTL - margin`` of the last answered
renewal), so the rule is ``now < deadline`` and ``now + WatchdogSec <= deadline + margin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

from . import _clock
from ._election._elector import AsyncElector, ElectorState
from ._errors import ConfigurationError
from ._log import log_event

__all__ = ["SystemdNotifier", "watchdog_hint", "watchdog_seconds"]

log = logging.getLogger(__name__)

_MIN_TICK = 0.05  # never ping more often than this, whatever the settings
_MAX_TICK = 0.5  # nor less often: a healthy process's pings resume soon after a term ends
_READY_STATES = (ElectorState.CAMPAIGNING, ElectorState.LEADING)


class _BlockingTwin(Protocol):
    @property
    def aio(self) -> AsyncElector: ...

    @property
    def portal(self) -> Any: ...


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """systemd's watchdog interval for this process (``WATCHDOG_USEC``), or ``None``.

    :raises ConfigurationError: if ``WATCHDOG_USEC`` is not a positive whole number.
    """
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid.strip() != str(os.getpid()):
        return None  # meant for another process (a parent that started us)
    if not usec.strip().isdigit() or int(usec) == 0:
        raise ConfigurationError(
            f"WATCHDOG_USEC must be a positive whole number of microseconds, got {usec[:40]!r}"
        )
    return int(usec) / 1_000_000


def watchdog_hint(granted_ttl: float, keepalive_interval: float) -> tuple[float, float]:
    """``(suggested WatchdogSec, gapless limit)`` for a TTL, in seconds.

    A leader pings while ``remaining >= WatchdogSec - margin``; between renewals its remaining
    time falls to about ``ttl - margin - keepalive interval``. Up to ``ttl - keepalive
    interval`` a healthy leader therefore pings without gaps; half of that leaves room for
    late renewals and loop hiccups while still catching a stall within a few seconds.
    """
    gapless = granted_ttl - keepalive_interval
    half = gapless / 2
    suggested = math.floor(half) if half >= 2 else max(math.floor(half * 10) / 10, 0.1)
    return suggested, gapless


def _socket_address(path: str) -> str:
    """The address to connect to for ``NOTIFY_SOCKET``.

    :raises ConfigurationError: for a value that names no unix socket.
    """
    if path.startswith("@"):
        return "\0" + path[1:]  # the abstract namespace
    if path.startswith("/"):
        return path
    raise ConfigurationError(
        f"NOTIFY_SOCKET {path[:80]!r} is not a unix socket path or @abstract name "
        "(vsock addresses are not supported)"
    )


class SystemdNotifier:
    """Tell systemd about one elector: ``READY=1``, ``WATCHDOG=1``, ``STATUS=``, ``STOPPING=1``.

    ::

        async with AsyncClient() as client, client.elector("scheduler") as elector:
            async with SystemdNotifier(elector):
                await elector.run(work)

    Without ``NOTIFY_SOCKET`` (not started by systemd, or not ``Type=notify``) it does
    nothing. ``READY=1`` is sent once the elector campaigns with a live session;
    ``WATCHDOG=1`` every quarter of ``WatchdogSec`` or of the margin, whichever is shorter
    (between 0.05 and 0.5 s), while the event loop runs and, while leading, only as the
    module's docs say. A blocking :class:`Elector` works
    too (``with SystemdNotifier(elector):``): the pings run on its client's loop.

    :param elector: an ``AsyncElector`` or a blocking ``Elector``.
    :param socket_path: the notification socket (default: ``NOTIFY_SOCKET``).
    :param watchdog: seconds of systemd's ``WatchdogSec`` (default: from ``WATCHDOG_USEC``;
        ``None`` there means no watchdog pings).
    :raises ConfigurationError: for a ``NOTIFY_SOCKET`` or ``WATCHDOG_USEC`` that makes no
        sense, or a ``watchdog`` that is not a positive number.
    """

    def __init__(
        self,
        elector: AsyncElector | _BlockingTwin,
        *,
        socket_path: str | None = None,
        watchdog: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._twin = None if isinstance(elector, AsyncElector) else elector
        self.elector: AsyncElector = elector if isinstance(elector, AsyncElector) else elector.aio
        path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(path) if path else None
        self.socket_path = path or None
        if watchdog is None:
            watchdog = watchdog_seconds(env)
        elif isinstance(watchdog, bool) or not watchdog > 0:
            raise ConfigurationError(f"watchdog must be a positive number of seconds: {watchdog}")
        self.watchdog = watchdog
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed_send = False
        self._stopping = False

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify (``NOTIFY_SOCKET`` or ``socket_path``)."""
        return self._address is not None

    def __repr__(self) -> str:
        return f"<SystemdNotifier {self.socket_path!r} watchdog={self.watchdog}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> SystemdNotifier:
        """Start notifying from the running loop. Idempotent; a no-op when not enabled."""
        if self._address is None or self._task is not None:
            return self
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        self._socket = sock
        self._task = asyncio.get_running_loop().create_task(
            self._notify_loop(), name="etcd-elector-systemd-notify"
        )
        return self

    def stopping(self) -> None:
        """Send ``STOPPING=1`` (once): the service is shutting down. Pings go on meanwhile."""
        if not self._stopping:
            self._stopping = True
            self.send("STOPPING=1")

    async def close(self) -> None:
        """Send ``STOPPING=1`` if not yet sent, and stop. Idempotent."""
        self.stopping()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def __aenter__(self) -> SystemdNotifier:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __enter__(self) -> SystemdNotifier:
        if self._twin is None:
            raise TypeError("use `async with` with an AsyncElector")
        self._twin.portal.call(self.start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._twin is not None and not self._twin.portal.closed:
            self._twin.portal.call(self.close)

    # -- what is sent ----------------------------------------------------------------------

    def send(self, message: str) -> bool:
        """Send one notification now; ``False`` if it could not be sent (logged once)."""
        if self._socket is None or self._address is None:
            return False
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            if not self._failed_send:
                log.warning("cannot notify systemd at %r: %s", self.socket_path, exc)
            self._failed_send = True
            return False
        if self._failed_send:
            log.info("notifying systemd at %r again", self.socket_path)
        self._failed_send = False
        return True

    def may_ping(self) -> bool:
        """Whether ``WATCHDOG=1`` may be sent now (computed from the clock, no I/O)."""
        if self.watchdog is None or self.elector.state is ElectorState.STOPPED:
            return False
        term, session = self.elector.term, self.elector.session
        if term is None or session is None or not term.is_leader():
            return True  # a candidate: nothing to outlive, only a loop to prove alive
        now = _clock.now()
        return now < session.deadline and now + self.watchdog <= session.deadline + session.margin

    def _tick(self) -> float:
        session = self.elector.session
        quarter = (self.watchdog or 1.0) / 4
        margin_part = session.margin / 4 if session is not None else quarter
        return min(max(min(quarter, margin_part), _MIN_TICK), _MAX_TICK)

    def _status(self) -> str:
        state = self.elector.state
        if state is ElectorState.LEADING and self.elector.term is not None:
            return f"leading {self.elector.name} (token {self.elector.term.token})"
        return f"{state.value} {self.elector.name}"

    async def _notify_loop(self) -> None:
        ready = False
        status = ""
        while True:
            session = self.elector.session
            if not ready and self.elector.state in _READY_STATES and session is not None:
                ready = session.alive
                if ready:
                    status = self._status()
                    self.send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")
                    log_event(log, logging.INFO, "told systemd: ready", election=self.elector.name)
            elif ready and self._status() != status:
                status = self._status()
                self.send(f"STATUS={status}")
            if self.may_ping():
                self.send("WATCHDOG=1")
            await asyncio.sleep(self._tick())
