"""``etcd-elector run``: a command that runs only while this process leads.

Timeline of one term, on the session's clock (:func:`etcd_elector._clock.now`)::

    elected ── child started ── renewals move the local deadline forward ...
                          no renewal ──> deadline - grace: SIGTERM the group
                                                   deadline: SIGKILL the group
                                                             deadline + margin: etcd may expire

The session's local deadline is already ``margin`` seconds before etcd's earliest possible
expiry, so the command is dead before anyone else can be elected. The grace is capped at
``granted TTL - margin - 1.5 x keepalive interval``: a renewal is due every keepalive interval,
so the early stop never fires while renewals arrive normally (one may even be late by half an
interval). If renewals resume after an early stop, the command is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from .. import _clock
from .._election import Term
from .._errors import ConfigurationError
from .._session import AsyncSession, default_margin
from ._connect import open_client, preflight
from ._exit import ExitCode, signal_code
from ._leadership import Leadership
from ._options import Options, parse_seconds
from ._output import Printer
from ._parser import ParsedArgs
from ._process import ChildProcess, check_command, child_environment
from ._signals import Signals

__all__ = ["Supervisor", "grace_cap", "run"]

log = logging.getLogger(__name__)

MIN_GRACE_CAP = 0.1
RESTART_BACKOFF = (0.2, 5.0)
STABLE_RUN = 10.0  # a command that ran this long restarts after the shortest backoff
_RECOVERY_POLL = 0.05


def grace_cap(ttl: float, margin: float, keepalive_interval: float) -> float:
    """The longest grace that normal renewals never cut into."""
    return ttl - margin - 1.5 * keepalive_interval


def check_grace(grace: float, ttl: int) -> None:
    """Refuse a TTL too short for any grace (checked with the TTL asked for; etcd may grant
    more, which only raises the cap).

    :raises ConfigurationError: suggesting a larger TTL.
    """
    cap = grace_cap(ttl, default_margin(ttl), ttl / 3)
    if cap < MIN_GRACE_CAP:
        raise ConfigurationError(
            f"--ttl {ttl} leaves {max(cap, 0):.2f}s for stopping the command "
            f"(at least {MIN_GRACE_CAP}s is needed): use a larger --ttl"
        )


class Supervisor:
    """Runs the command during each term, under the lease-deadline watchdog."""

    def __init__(
        self,
        leadership: Leadership,
        printer: Printer,
        argv: Sequence[str],
        *,
        grace: float,
        restart: str,
        signals: Signals,
    ) -> None:
        self.leadership = leadership
        self.signals = signals
        self.printer = printer
        self.argv = list(argv)
        self.grace = grace
        self.restart = restart
        self.child: ChildProcess | None = None
        self._warned_cap: float | None = None

    @property
    def name(self) -> str:
        return self.leadership.name

    def _child_event(self, event: str, term: Term, **fields: object) -> None:
        brief = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        self.printer.event(event, self.name, term, text=f"{event} {self.name} {brief}", **fields)

    def kill_now(self, signum: int) -> None:
        """A further stop signal: SIGKILL the command's group without waiting; once no
        command is left, leave at once (the lease then expires by itself)."""
        child = self.child
        if child is None or not child.running:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
            os._exit(signal_code(signum))
        child.kill_now()
        self.printer.event(
            "child_killed",
            self.name,
            pid=child.pid,
            signal="SIGKILL",
            text=f"child_killed {self.name} pid={child.pid} signal=SIGKILL",
        )

    def effective_grace(self, session: AsyncSession) -> float:
        cap = grace_cap(session.ttl, session.margin, session.keepalive_interval)
        grace = max(0.0, min(self.grace, cap))
        if grace < self.grace and self._warned_cap != cap:
            self._warned_cap = cap
            log.warning(
                "--grace %.2fs capped to %.2fs by the granted TTL %ds; raise --ttl for more",
                self.grace,
                grace,
                session.ttl,
            )
        return grace

    def _environment(self, term: Term) -> dict[str, str]:
        env = child_environment(os.environ)
        env.update(
            ETCD_ELECTOR_ELECTION=term.election,
            ETCD_ELECTOR_KEY=term.key,
            ETCD_ELECTOR_LEASE=term.lease_hex,
            ETCD_ELECTOR_TOKEN=str(term.token),
        )
        return env

    async def work(self, term: Term) -> None:
        """The elector's work for one term; cancelled by the elector when the term ends."""
        election = self.leadership.elector.election
        assert election is not None
        session = election.session
        grace = self.effective_grace(session)
        backoff = RESTART_BACKOFF[0]
        while True:
            if self.leadership.exiting:
                await asyncio.Event().wait()  # until the elector cancels us
            await self._until_safe(session, grace)
            child = await ChildProcess.start(
                self.argv,
                self._environment(term),
                stdout=sys.stderr if self.printer.json_lines else None,
            )
            self.child = child
            started = _clock.now()
            self._child_event("child_started", term, pid=child.pid)
            try:
                code = await self._watch(child, session, grace, term)
            except asyncio.CancelledError:
                if self.signals.stopping:
                    reason = "signal"
                elif self.leadership.exiting:
                    reason = "shutdown"
                else:
                    reason = "term ended"
                await _uncancellable(self._stop(child, grace, session, term, reason))
                raise
            finally:
                if not child.running:
                    self.child = None
            if code is None:  # stopped early by the watchdog: wait for renewals or the end
                continue
            await child.sweep(grace)
            if self.restart == "never" or (self.restart == "on-failure" and code == 0):
                self.leadership.request_exit(code)
                continue
            if _clock.now() - started >= STABLE_RUN:
                backoff = RESTART_BACKOFF[0]
            self._child_event("child_restarting", term, delay=round(backoff, 3), code=code)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF[1])

    async def _until_safe(self, session: AsyncSession, grace: float) -> None:
        """Return once the deadline is more than ``grace`` away (after a renewal)."""
        # Renewals signal nothing to wait on; this polls only while the lease is at risk.
        while session.deadline - grace <= _clock.now():  # noqa: ASYNC110
            await asyncio.sleep(_RECOVERY_POLL)

    async def _watch(
        self, child: ChildProcess, session: AsyncSession, grace: float, term: Term
    ) -> int | None:
        """Wait for the child's exit (its code) while the lease deadline is far enough; if
        no renewal comes by ``deadline - grace``, stop the child and return ``None``."""
        waiter = child.waiter()
        while True:
            delay = session.deadline - grace - _clock.now()
            if delay <= 0:
                break
            await asyncio.wait({waiter}, timeout=delay)
            if waiter.done():
                code = await child.wait()
                child.exit_reported = True
                self._child_event("child_exited", term, pid=child.pid, code=code)
                return code
        # Finish stopping even if the term ends meanwhile (the elector then cancels us).
        await _uncancellable(self._stop(child, grace, session, term, "lease renewal overdue"))
        return None

    async def _stop(
        self,
        child: ChildProcess,
        grace: float,
        session: AsyncSession,
        term: Term,
        reason: str,
    ) -> None:
        """Stop the child (if it still runs) and report its exit, once."""
        if child.running:
            self._child_event(
                "child_stopping",
                term,
                pid=child.pid,
                reason=reason,
                grace=round(grace, 3),
                deadline_in=round(session.deadline - _clock.now(), 3),
            )
        code = await child.stop(grace, kill_by=lambda: session.deadline)
        if child.exit_reported:
            return
        child.exit_reported = True
        sent = "SIGKILL" if child.killed and code == 137 else None
        self._child_event(
            "child_exited",
            term,
            pid=child.pid,
            code=code,
            signal=sent or ("SIGTERM" if child.terminated else None),
        )


async def _uncancellable(work: Coroutine[Any, Any, None]) -> None:
    """Finish ``work`` even if cancelled again meanwhile (then re-raise at the end)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()


async def run(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """``run NAME -- COMMAND``: campaign, run COMMAND while leader, stop it safely."""
    grace = parse_seconds(args.grace, "--grace", allow_zero=True)
    check_grace(grace, options.ttl)
    check_command(args.argv)
    async with Signals() as signals, open_client(options) as client:
        await preflight(client, args.name, options)
        leadership = Leadership(
            client, options, printer, args.name, value=args.value, once=args.once
        )
        supervisor = Supervisor(
            leadership, printer, args.argv, grace=grace, restart=args.restart, signals=signals
        )
        signals.on_repeat(supervisor.kill_now)
        code = await leadership.run(supervisor.work, signals)
        if supervisor.child is not None and supervisor.child.running:  # belt and braces
            supervisor.child.kill_now()
        return code if code is not None else ExitCode.OK
