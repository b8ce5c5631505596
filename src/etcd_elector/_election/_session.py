"""``AsyncSession``: one lease, kept alive by one background task, that knows when it is lost.

Liveness is a local computation (:class:`LeaseDeadline`), so a session stops being alive at its
deadline even when etcd is unreachable and no timer has fired. Once lost, a session never comes
back: its lease is revoked as soon as etcd can be reached and a new session must be made.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import _clock, _metrics
from .._errors import (
    AmbiguousResult,
    LeaseNotFound,
    SessionLost,
    TransportError,
)
from .._log import log_event
from .._reasons import EndReason
from .._tasks import cancel_and_wait
from ._deadline import LeaseDeadline
from ._timing import Timing

if TYPE_CHECKING:
    from ..etcd._client import AsyncEtcdClient
    from ..etcd._history_guard import HistoryLoss
    from ..etcd._types import KeepAliveAnswer

__all__ = [
    "AsyncSession",
    "SessionState",
]

log = logging.getLogger(__name__)


class SessionState(enum.Enum):
    """A session's state, computed from the clock when read: a session past its local
    deadline is ``LOST`` even before its keepalive task has noticed."""

    STARTING = "starting"
    ALIVE = "alive"
    UNCERTAIN = "uncertain"  # renewals are failing; the deadline has not passed yet
    LOST = "lost"
    CLOSED = "closed"


# Why a session that is not alive and has no loss recorded (yet) cannot be used.
_UNSETTLED = {
    SessionState.STARTING: EndReason.NOT_STARTED,
    SessionState.LOST: EndReason.EXPIRED,  # an expiry being confirmed with etcd
    SessionState.CLOSED: EndReason.CLOSED,
    SessionState.ALIVE: EndReason.DEADLINE,
    SessionState.UNCERTAIN: EndReason.DEADLINE,
}


class AsyncSession:
    """A lease and its keepalive. Use ``async with client.session(ttl=10) as session:``
    (``ttl``, ``margin`` and ``keepalive_interval`` make its :class:`Timing`).

    :param client: the etcd client the lease lives on.
    :param timing: the TTL asked for, the safety margin and the keepalive interval (default:
        ``Timing()``, a 10 s TTL). The local deadline is ``send time + granted TTL - margin``.
    """

    def __init__(
        self,
        client: AsyncEtcdClient,
        timing: Timing | None = None,
        *,
        clock: _clock.Clock | None = None,
    ) -> None:
        self._client = client
        self.timing = Timing() if timing is None else timing
        self._clock = clock or _clock.now
        self._deadline = LeaseDeadline(self._clock, self.timing.margin)
        self.lease_id = 0
        self.ttl = 0
        self._state = SessionState.STARTING
        self._loss: asyncio.Future[EndReason] | None = None
        self._loss_callbacks: list[Callable[[EndReason], Any]] = []
        self._keeper: asyncio.Task[None] | None = None
        self._revoker: asyncio.Task[None] | None = None
        self._revoked = False
        self._keepalive_observers: list[Callable[[KeepAliveAnswer], None]] = []
        self._stop_guarding: Callable[[], None] | None = None

    # -- public state ------------------------------------------------------------------------

    @property
    def lease_hex(self) -> str:
        """The lease id in hex, as etcdctl and our logs show it."""
        return f"{self.lease_id:x}"

    @property
    def margin(self) -> float:
        return self._deadline.margin

    @property
    def requested_ttl(self) -> int:
        """The TTL asked for (etcd may grant more: :attr:`ttl`)."""
        return self.timing.ttl

    @property
    def keepalive_interval(self) -> float:
        """Seconds between renewals: the setting, or a third of the granted TTL."""
        return self.timing.interval(self.ttl)

    @property
    def state(self) -> SessionState:
        if self._state in (SessionState.ALIVE, SessionState.UNCERTAIN) and self._deadline.passed():
            return SessionState.LOST
        return self._state

    @property
    def alive(self) -> bool:
        """True while the lease is certainly held: computed from the clock, no I/O."""
        return self.state in (SessionState.ALIVE, SessionState.UNCERTAIN)

    @property
    def deadline(self) -> float:
        """The local deadline on the session's clock (:func:`etcd_elector._clock.now`)."""
        return self._deadline.at

    def remaining(self) -> float:
        """Seconds until the local deadline (0 once lost or closed)."""
        return self._deadline.remaining() if self.alive else 0.0

    @property
    def loss_reason(self) -> EndReason | None:
        if self._loss is not None and self._loss.done():
            return self._loss.result()
        if self._state in (SessionState.ALIVE, SessionState.UNCERTAIN) and self._deadline.passed():
            return EndReason.DEADLINE
        return None

    async def wait_lost(self) -> EndReason:
        """Wait until the session ends; returns the reason."""
        if self._loss is None:
            raise RuntimeError("the session has not been started")
        return await asyncio.shield(self._loss)

    def add_loss_callback(self, callback: Callable[[EndReason], Any]) -> None:
        """Call ``callback(reason)`` once, on the event loop, when the session ends.

        A long-lived session holds each callback until it ends: remove the ones that stop
        mattering earlier with :meth:`remove_loss_callback`.
        """
        if self._loss is not None and self._loss.done():
            callback(self._loss.result())
        else:
            self._loss_callbacks.append(callback)

    def remove_loss_callback(self, callback: Callable[[EndReason], Any]) -> None:
        """Forget ``callback`` (the same object given to :meth:`add_loss_callback`); nothing
        happens if it is not there (already called, or never added)."""
        with contextlib.suppress(ValueError):
            self._loss_callbacks.remove(callback)

    def add_keepalive_observer(self, observer: Callable[[KeepAliveAnswer], None]) -> None:
        """Call ``observer(answer)`` for every keepalive answer (to watch the renewal cycle)."""
        self._keepalive_observers.append(observer)

    def check(self) -> None:
        """:raises SessionLost: unless the session is alive."""
        if not self.alive:
            reason = self.loss_reason or _UNSETTLED[self._state]
            raise SessionLost(f"session with lease {self.lease_id:x} is {reason}", reason=reason)

    @property
    def client(self) -> AsyncEtcdClient:
        return self._client

    def __repr__(self) -> str:
        return f"<AsyncSession lease={self.lease_id:x} ttl={self.ttl} state={self.state.value}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> AsyncSession:
        """Grant the lease and start keeping it alive.

        :raises ConnectionFailed: if etcd cannot be reached.
        """
        if self._state is not SessionState.STARTING:
            return self
        loop = asyncio.get_running_loop()
        self._loss = loop.create_future()
        while True:
            sent_at = self._clock()
            try:
                lease = await self._client.lease_grant(self.requested_ttl)
                break
            except AmbiguousResult as exc:
                # An unknown grant only leaves a lease nobody uses, and etcd expires it.
                log.warning("lease grant outcome unknown, granting again: %s", exc)
        self.lease_id, self.ttl = lease.id, lease.ttl
        if self.margin >= self.ttl - self.keepalive_interval / 2:
            log_event(
                log,
                logging.WARNING,
                "the margin leaves little of the granted ttl",
                lease=self.lease_hex,
                margin=self.margin,
                ttl=self.ttl,
            )
        self._deadline.renewed(sent_at, lease.ttl)
        self._state = SessionState.ALIVE
        self._stop_guarding = self._client.history.add_listener(self._history_lost)
        self._keeper = loop.create_task(self._keep_alive(), name=f"etcd-session-{self.lease_id:x}")
        log_event(
            log,
            logging.INFO,
            "session started",
            lease=self.lease_hex,
            ttl=self.ttl,
            margin=self.margin,
        )
        _metrics.sink().session_started()
        return self

    async def __aenter__(self) -> AsyncSession:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop keeping the lease alive and revoke it, deleting its keys. Idempotent.

        Makes one revoke attempt within the client's timeout; if etcd is unreachable the lease
        expires by itself after its TTL (logged at WARNING).
        """
        await self._stop(EndReason.CLOSED)
        revoker, self._revoker = self._revoker, None
        if revoker is not None and (error := await cancel_and_wait(revoker)) is not None:
            raise error
        if self.lease_id and not self._revoked:
            await self._revoke(persistent=False)

    async def orphan(self) -> None:
        """Stop keeping the lease alive but leave it (and its keys) to expire at etcd."""
        await self._stop(EndReason.ORPHANED)

    async def _stop(self, reason: EndReason) -> None:
        if self._state is SessionState.STARTING:
            self._state = SessionState.CLOSED
            return
        if self._state in (SessionState.ALIVE, SessionState.UNCERTAIN) or (
            self._loss is not None and not self._loss.done()  # an expiry being confirmed
        ):
            self._lose(reason)
        self._state = SessionState.CLOSED
        keeper, self._keeper = self._keeper, None
        if keeper is not None and keeper is not asyncio.current_task():
            error = await cancel_and_wait(keeper)
            if error is not None:
                raise error

    # -- internals -----------------------------------------------------------------------------

    def _lose(self, reason: EndReason) -> None:
        if self._loss is None or self._loss.done():
            return
        self._state = SessionState.LOST
        self._loss.set_result(reason)
        if self._stop_guarding is not None:
            self._stop_guarding()
        level = logging.DEBUG if reason in (EndReason.CLOSED, EndReason.ORPHANED) else logging.INFO
        log_event(log, level, "session ended", lease=self.lease_hex, reason=reason)
        _metrics.sink().session_ended(reason)
        # A copy: a callback may remove itself (or another) while we go through them.
        callbacks, self._loss_callbacks = self._loss_callbacks, []
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:
                log_event(
                    log,
                    logging.ERROR,
                    "session loss callback failed",
                    lease=self.lease_hex,
                    exc_info=True,
                )

    def _history_lost(self, loss: HistoryLoss) -> None:
        """etcd lost the history our lease lives in (or brought it back from a snapshot, with
        keys whose writes since are gone): the session ends now, and the lease is revoked in
        whatever etcd answers, so a key that came back cannot lead."""
        if self._loss is None or self._loss.done():
            return
        self._lose(EndReason.HISTORY_LOST)
        keeper = self._keeper
        if keeper is not None and keeper is not asyncio.current_task():
            keeper.cancel()  # a renewal must not bring the session back
        if self._revoker is None and not self._revoked:
            self._revoker = asyncio.get_running_loop().create_task(self._revoke(persistent=True))

    async def _expired(self) -> None:
        """etcd says our lease is gone. A wiped etcd says exactly that too, so ask once which
        history etcd is in (the guard ends the session with its own reason if it went back)
        before calling it an expiry. Not alive from the first moment, whatever the answer."""
        self._state = SessionState.LOST
        try:
            await self._client.history.confirm(self._client.config.timeout)
        finally:
            self._lose(EndReason.EXPIRED)  # no-op when the history check ended it first

    async def _keep_alive(self) -> None:
        stream = self._client.lease_keepalive(self.lease_id, every=self.keepalive_interval)
        failures = 0
        next_send = self._clock() + self.keepalive_interval
        try:
            while True:
                if self._loss is not None and self._loss.done():
                    break  # ended from outside (etcd lost its history)
                remaining = self._deadline.at - self._clock()
                if remaining <= 0:
                    self._lose(EndReason.DEADLINE)
                    break
                await asyncio.sleep(max(0.0, min(next_send - self._clock(), remaining)))
                remaining = self._deadline.at - self._clock()
                if remaining <= 0:
                    self._lose(EndReason.DEADLINE)
                    break
                try:
                    answer = await stream.ping(
                        timeout=min(self._client.config.stream_timeout, remaining)
                    )
                except LeaseNotFound:
                    await self._expired()
                    break
                except TransportError as exc:
                    failures += 1
                    self._state = SessionState.UNCERTAIN
                    _metrics.sink().keepalive_failed()
                    log_event(
                        log,
                        logging.WARNING,
                        "keepalive failed",
                        lease=self.lease_hex,
                        left=max(0.0, self._deadline.at - self._clock()),
                        detail=exc,
                    )
                    backoff = min(0.05 * 2**failures, self.keepalive_interval / 2)
                    next_send = self._clock() + backoff * random.uniform(0.5, 1.0)
                    continue
                if self._loss is not None and self._loss.done():
                    break  # this very answer showed that etcd lost its history
                if answer.ttl <= 0:
                    await self._expired()
                    break
                failures = 0
                # How close this renewal came to the loss: time left on the old deadline.
                margin_left = self._deadline.at - answer.received_at
                rtt = answer.received_at - answer.sent_at
                self._deadline.renewed(answer.sent_at, answer.ttl)
                self.ttl = answer.ttl
                _metrics.sink().keepalive(rtt, margin_left)
                log_event(
                    log,
                    logging.DEBUG,
                    "lease renewed",
                    lease=self.lease_hex,
                    ttl=answer.ttl,
                    rtt=rtt,
                    margin_left=margin_left,
                )
                if self._deadline.passed():
                    # The answer came, but too late to trust: the margin is already used up.
                    self._lose(EndReason.DEADLINE)
                    break
                self._state = SessionState.ALIVE
                for observer in self._keepalive_observers:
                    observer(answer)
                next_send = answer.sent_at + self.keepalive_interval
        finally:
            await stream.close()
        # Lost: make our keys vanish as soon as etcd can hear us.
        if self._revoker is None and not self._revoked:
            self._revoker = asyncio.get_running_loop().create_task(self._revoke(persistent=True))

    async def _revoke(self, *, persistent: bool) -> None:
        """Revoke the lease; if ``persistent``, keep trying while etcd is unreachable (bounded)."""
        give_up = (
            self._clock() + 2 * max(self.ttl, self.requested_ttl) + self._client.config.timeout
        )
        delay = 0.1
        while True:
            try:
                await self._client.lease_revoke(self.lease_id)
                self._revoked = True
                log_event(log, logging.DEBUG, "lease revoked", lease=self.lease_hex)
                return
            except LeaseNotFound:
                self._revoked = True
                return
            except TransportError as exc:
                if not persistent or self._clock() + delay >= give_up:
                    log_event(
                        log,
                        logging.WARNING,
                        "could not revoke the lease (etcd expires it after its ttl)",
                        lease=self.lease_hex,
                        detail=exc,
                    )
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
