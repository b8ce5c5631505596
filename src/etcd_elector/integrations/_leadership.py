"""Leadership held in the background: "does this process lead right now?" from anywhere.

Schedulers ask that question before every run; they should not have to run their own code
inside ``elector.run``. ``Leadership`` runs an ``Elector`` on a thread of its own whose only
work is to hold each term until it ends; ``AsyncLeadership`` does the same with an
``AsyncElector`` as a task. ``current()`` answers from the term's local deadline, computed at
the moment it is called, so a process that was paused never believes a term it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Literal

from etcd_elector import (
    AsyncElector,
    ConfigurationError,
    Elector,
    EndReason,
    LeadershipLost,
    NotLeader,
    Term,
)

__all__ = ["AsyncLeadership", "Leadership", "Otherwise", "TermCallback", "shown"]

log = logging.getLogger(__name__)

#: What a call made while this process does not lead does: ``"skip"`` it (return ``None``),
#: ``"wait"`` until this process leads, or ``"raise"`` :class:`~etcd_elector.NotLeader`.
Otherwise = Literal["skip", "wait", "raise"]
_POLICIES = ("skip", "wait", "raise")

TermCallback = Callable[[Term], object]

_CLOSE_TIMEOUT_S = 30.0
_RECHECK_S = 0.01
_SHOWN_LIMIT = 120


def shown(value: str, limit: int = _SHOWN_LIMIT) -> str:
    """``value`` fit for a log line: control characters escaped, at most ``limit`` kept."""
    text = value[:limit].encode("unicode_escape").decode("ascii")
    return text + (f"…[{len(value)} characters]" if len(value) > limit else "")


def check_policy(otherwise: object, *, block: bool = False) -> Otherwise:
    """``otherwise`` if it is a policy (``skip`` is no option for a ``with`` block)."""
    allowed = _POLICIES[1:] if block else _POLICIES
    if otherwise not in allowed:
        hint = " (a with-block cannot be skipped: use the decorator)" if block else ""
        raise ConfigurationError(
            f"otherwise={otherwise!r} is not a policy: use one of {', '.join(allowed)}{hint}"
        )
    return otherwise  # type: ignore[return-value]


def _not_leader(election: str) -> NotLeader:
    return NotLeader(f"this process does not lead election {election!r}")


class Leadership:
    """Campaign in the background and hold each term; for threaded code.

    ::

        with Client() as client, Leadership(client.elector("reports", ttl=10)) as leadership:
            term = leadership.current()   # the term if we lead right now, else None

    The elector campaigns again after each term (unless it was built with
    ``requeue=False``). ``on_elected(term)`` and ``on_lost(term)`` run on the leadership's
    thread; an exception they raise is logged and the term goes on.

    :raises Exception: ``current()``, ``wait()`` and ``leading()`` re-raise the error that
        stopped the background elector (bad credentials, say), so it is never silent.
    """

    def __init__(
        self,
        elector: Elector,
        *,
        on_elected: TermCallback | None = None,
        on_lost: TermCallback | None = None,
    ) -> None:
        self.elector = elector
        self.on_elected = on_elected
        self.on_lost = on_lost
        self._name = elector.aio.name
        self._term: Term | None = None
        self._changed = threading.Condition()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._finished = False  # the elector's run() returned (requeue=False) or failed

    @property
    def election(self) -> str:
        """The election's name."""
        return self._name

    def start(self) -> Leadership:
        """Start campaigning on a background thread (``with`` does this). Idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"etcd-elector-leadership-{self._name}", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Resign (the next candidate takes over at once) and stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.elector.close()
        if self._thread is not None:
            self._thread.join(_CLOSE_TIMEOUT_S)

    def __enter__(self) -> Leadership:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def current(self) -> Term | None:
        """The term if this process leads at this very moment, else ``None``. Local, no I/O.

        :raises Exception: the error that stopped the background elector, if one did.
        """
        self._raise_failure()
        term = self._term
        return term if term is not None and term.is_leader() else None

    def wait(self, timeout: float | None = None) -> Term | None:
        """Block until this process leads; the term, or ``None`` after ``timeout`` seconds.

        :raises Exception: the error that stopped the background elector, if one did.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: self._leading() or self._failure is not None or not self._running(),
                timeout,
            )
        return self.current()

    def admit(self, otherwise: Otherwise, timeout: float | None = None) -> Term | None:
        """The term a call may run under now, per ``otherwise``; ``None`` means skip it.

        :raises NotLeader: with ``raise``, or with ``wait`` once ``timeout`` ran out.
        """
        term = self.current()
        if term is not None or otherwise == "skip":
            return term
        if otherwise == "wait":
            term = self.wait(timeout)
            if term is not None:
                return term
        raise _not_leader(self._name)

    @contextlib.contextmanager
    def leading(
        self, otherwise: Otherwise = "raise", timeout: float | None = None
    ) -> Iterator[Term]:
        """``with leadership.leading() as term:`` runs the block only while this process leads.

        A thread cannot be interrupted: the block checks ``term.is_leader()`` (or makes
        fenced writes with ``term.token``) before each unit of work.

        :raises NotLeader: if this process does not lead (``otherwise="raise"``), or did not
            come to lead within ``timeout`` (``otherwise="wait"``).
        """
        term = self.admit(check_policy(otherwise, block=True), timeout)
        assert term is not None
        yield term

    # -- the background thread ---------------------------------------------------------------

    def _running(self) -> bool:
        """Whether the elector may still elect us (not closed, not finished)."""
        return not self._closed and self._thread is not None and not self._finished

    def _leading(self) -> bool:
        term = self._term
        return term is not None and term.is_leader()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        try:
            self.elector.run(self._hold)
        except BaseException as exc:
            if not self._closed:
                self._failure = exc
                log.error("leadership of election=%s stopped: %s", self._name, exc, exc_info=exc)
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    def _hold(self, term: Term) -> None:
        with self._changed:
            self._term = term
            self._changed.notify_all()
        log.info(
            "leading election=%s token=%d lease=%s",
            self._name,
            term.token,
            term.lease_hex,
            extra={"election": self._name, "token": term.token, "lease": term.lease_hex},
        )
        try:
            _call(self.on_elected, term, self._name)
            term.lost.wait()  # set the moment the term ends, or when we are closed
        finally:
            with self._changed:
                self._term = None
                self._changed.notify_all()
            _call(self.on_lost, term, self._name)


class AsyncLeadership:
    """Campaign in the background and hold each term; for asyncio code.

    ::

        async with AsyncClient() as client:
            async with AsyncLeadership(client.elector("reports", ttl=10)) as leadership:
                async with leadership.leading() as term:
                    ...  # cancelled the moment the term ends; then LeadershipLost

    ``on_elected(term)`` and ``on_lost(term)`` may be sync or async; an exception they raise
    is logged and the term goes on.

    :raises Exception: ``current()``, ``wait()`` and ``leading()`` re-raise the error that
        stopped the background elector, so it is never silent.
    """

    def __init__(
        self,
        elector: AsyncElector,
        *,
        on_elected: TermCallback | None = None,
        on_lost: TermCallback | None = None,
    ) -> None:
        self.elector = elector
        self.on_elected = on_elected
        self.on_lost = on_lost
        self._term: Term | None = None
        self._leading_now: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._bodies: dict[asyncio.Task[object], Term] = {}
        self._cancelled_by_loss: set[asyncio.Task[object]] = set()

    @property
    def election(self) -> str:
        """The election's name."""
        return self.elector.name

    async def start(self) -> AsyncLeadership:
        """Start campaigning as a background task (``async with`` does this). Idempotent."""
        if self._task is None:
            self._leading_now = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"etcd-elector-leadership-{self.election}"
            )
        return self

    async def close(self) -> None:
        """Cancel running bodies, resign and stop the background task. Idempotent."""
        await self.elector.close()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait([task])

    async def __aenter__(self) -> AsyncLeadership:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def current(self) -> Term | None:
        """The term if this process leads at this very moment, else ``None``. Local, no I/O.

        :raises Exception: the error that stopped the background elector, if one did.
        """
        if self._failure is not None:
            raise self._failure
        term = self._term
        return term if term is not None and term.is_leader() else None

    async def wait(self, timeout: float | None = None) -> Term | None:
        """Wait until this process leads; the term, or ``None`` after ``timeout`` seconds.

        :raises Exception: the error that stopped the background elector, if one did.
        """
        if self._leading_now is None:
            raise RuntimeError("start() the leadership before waiting on it")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.current() is None and self._task is not None:
                    await self._leading_now.wait()
                    if self.current() is None:
                        # The deadline passed and the elector has yet to end the term.
                        await asyncio.sleep(_RECHECK_S)
        return self.current()

    async def admit(self, otherwise: Otherwise, timeout: float | None = None) -> Term | None:
        """The term a call may run under now, per ``otherwise``; ``None`` means skip it.

        :raises NotLeader: with ``raise``, or with ``wait`` once ``timeout`` ran out.
        """
        term = self.current()
        if term is not None or otherwise == "skip":
            return term
        if otherwise == "wait":
            term = await self.wait(timeout)
            if term is not None:
                return term
        raise _not_leader(self.election)

    @contextlib.asynccontextmanager
    async def leading(
        self, otherwise: Otherwise = "raise", timeout: float | None = None
    ) -> AsyncIterator[Term]:
        """``async with leadership.leading() as term:`` runs the block only while leading.

        The block is cancelled the moment the term ends, and ``LeadershipLost`` is raised
        in its place (the way ``asyncio.timeout`` turns its cancellation into an error).

        :raises NotLeader: if this process does not lead (``otherwise="raise"``), or did not
            come to lead within ``timeout`` (``otherwise="wait"``).
        :raises LeadershipLost: if the term ended while the block ran.
        """
        term = await self.admit(check_policy(otherwise, block=True), timeout)
        assert term is not None
        async with self.guard(term):
            yield term

    @contextlib.asynccontextmanager
    async def guard(self, term: Term) -> AsyncIterator[None]:
        """Cancel the enclosed block when ``term`` ends; raise ``LeadershipLost`` instead.

        :raises LeadershipLost: if the term ended while the block ran.
        """
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("guard() needs a running task")
        if self._term is not term or not term.is_leader():
            raise LeadershipLost(
                f"term {term.token} of election {self.election!r} is over",
                reason=term.end_reason or EndReason.DEADLINE,
            )
        self._bodies[task] = term
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._cancelled_by_loss:
                raise
            task.uncancel()
            raise LeadershipLost(
                f"term {term.token} of election {self.election!r} ended while the block ran",
                reason=term.end_reason or EndReason.DEADLINE,
            ) from None
        finally:
            # No await from here on: once unregistered, no loss can cancel this task.
            self._bodies.pop(task, None)
            self._cancelled_by_loss.discard(task)

    # -- the background task -----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.elector.run(self._hold)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            log.error("leadership of election=%s stopped: %s", self.election, exc, exc_info=exc)
        finally:
            assert self._leading_now is not None
            self._leading_now.set()  # wake waiters: they see the failure or the close

    async def _hold(self, term: Term) -> None:
        assert self._leading_now is not None
        self._term = term
        self._leading_now.set()
        log.info(
            "leading election=%s token=%d lease=%s",
            self.election,
            term.token,
            term.lease_hex,
            extra={"election": self.election, "token": term.token, "lease": term.lease_hex},
        )
        try:
            outcome = _call(self.on_elected, term, self.election)
            if asyncio.iscoroutine(outcome):
                await _await_logged(outcome, self.election)
            await asyncio.Future()  # the elector cancels us when the term ends
        finally:
            self._term = None
            self._leading_now.clear()
            for task, held in list(self._bodies.items()):
                if held is term and not task.done():
                    self._cancelled_by_loss.add(task)
                    task.cancel()
            outcome = _call(self.on_lost, term, self.election)
            if asyncio.iscoroutine(outcome):
                await _await_logged(outcome, self.election)


def _call(callback: TermCallback | None, term: Term, election: str) -> object:
    if callback is None:
        return None
    try:
        return callback(term)
    except Exception:
        log.exception("leadership callback %r failed election=%s", callback, election)
        return None


async def _await_logged(outcome: object, election: str) -> None:
    try:
        await outcome  # type: ignore[misc]
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("leadership callback failed election=%s", election)
