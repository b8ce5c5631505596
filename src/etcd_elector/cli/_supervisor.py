"""``etcd-elector run``: a command that runs only while this process leads.

Timeline of one term, on the session's clock (:func:`etcd_elector._clock.now`)::

    elected ── command started ── renewals move the local deadline forward ...
                          no renewal ──> deadline - grace: SIGTERM the command's tree
                                                   deadline: SIGKILL the tree
                                                             deadline + margin: etcd may expire

The session's local deadline is already ``margin`` seconds before etcd's earliest possible
expiry, so the command is dead before anyone else can be elected. The deadline is enforced by
the command's watchdog process (:mod:`._watchdog`), which the supervisor tells every new
deadline: it holds even while the supervisor is frozen, and if the supervisor dies the watchdog
stops the tree at once. The grace is capped at ``granted TTL - margin - 1.5 x keepalive
interval``: a renewal is due every keepalive interval, so the early stop never fires while
renewals arrive normally (one may even be late by half an interval). If renewals resume after
an early stop, the command is started again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Protocol, TypeVar

from .. import _clock
from .._election._session import AsyncSession
from .._election._term import Term
from .._election._timing import Timing
from .._errors import ConfigurationError
from .._stop_signals import COMMAND_LINE_SIGNALS, StopSignals
from .._tasks import cancel_all, finish, shielded, wait_first
from ._connect import open_client
from ._durations import parse_duration
from ._etcd_wait import reach_etcd, resolve_wait
from ._executable import check_command
from ._exit import ExitCode, signal_code
from ._leadership import Leadership
from ._options import Options, parse_priority, parse_seconds
from ._output import Printer
from ._parser import ParsedArgs
from ._process import child_environment
from ._restart import RestartPolicy
from ._watchdog import REASONS
from ._watched import CommandExit, WatchedCommand

__all__ = ["DEFAULT_GRACE", "Supervisor", "TermHolder", "grace_cap", "run"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_GRACE = 2.0
DRAIN_SLACK = 1.0
MIN_GRACE_CAP = 0.1
DEFAULT_MAX_FAILURES = 5
DEFAULT_FAILURE_WINDOW = "5m"
_RECOVERY_POLL = 0.05


def grace_cap(timing: Timing, granted_ttl: int) -> float:
    """The longest grace that normal renewals never cut into: the renewal headroom, less half
    an interval (a renewal may be that late without the early stop firing)."""
    return timing.renewal_headroom(granted_ttl) - 0.5 * timing.interval(granted_ttl)


def check_grace(grace: float, ttl: int) -> None:
    """Refuse a TTL too short for any grace (checked with the TTL asked for; etcd may grant
    more, which only raises the cap).

    :raises ConfigurationError: suggesting a larger TTL.
    """
    cap = grace_cap(Timing(ttl), ttl)
    if cap < MIN_GRACE_CAP:
        raise ConfigurationError(
            f"--ttl {ttl} leaves {max(cap, 0):.2f}s for stopping the command "
            f"(at least {MIN_GRACE_CAP}s is needed): use a larger --ttl"
        )


class TermHolder(Protocol):
    """Whoever holds the terms the supervisor runs the command in: an election's
    :class:`~._leadership.Leadership`, or one shard's ownership (``shards run``)."""

    @property
    def name(self) -> str: ...

    @property
    def once(self) -> bool: ...

    @property
    def exiting(self) -> bool: ...

    @property
    def term_session(self) -> AsyncSession:
        """The session the current term is held on (its deadline is the command's)."""
        ...

    def request_exit(self, code: int) -> None: ...


class Supervisor:
    """Runs the command during each term, under its watchdog."""

    def __init__(
        self,
        leadership: TermHolder,
        printer: Printer,
        argv: Sequence[str],
        *,
        grace: float,
        grace_given: bool,
        restart: str,
        max_failures: int,
        failure_window: float,
        signals: StopSignals,
        drain: float | None = None,
    ) -> None:
        self.leadership = leadership
        self.signals = signals
        self.printer = printer
        self.argv = list(argv)
        self.grace = grace
        self.grace_given = grace_given
        self.restart = restart
        self.max_failures = max_failures
        self.failure_window = failure_window
        self.drain = drain
        self.command: WatchedCommand | None = None
        self._command_session: AsyncSession | None = None
        self._followed: list[AsyncSession] = []
        self._stopping_reported: WatchedCommand | None = None
        self._warned_cap = False

    @property
    def name(self) -> str:
        return self.leadership.name

    def _child_event(self, event: str, term: Term | None, **fields: object) -> None:
        brief = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        self.printer.event(event, self.name, term, text=f"{event} {self.name} {brief}", **fields)

    def kill_now(self, signum: int) -> None:
        """A further stop signal: SIGKILL the command's tree without waiting. Withdrawing
        from the election still follows (only SIGKILL of the supervisor skips it)."""
        command = self.command
        if command is None or command.done:
            return
        command.kill_now()
        self._child_event("child_killed", None, pid=command.pid, signal="SIGKILL")

    def effective_grace(self, session: AsyncSession) -> float:
        """``--grace``, capped so that normal renewals never trigger the early stop. Warns
        once, and only when ``--grace`` was given: the default simply shrinks to fit."""
        cap = grace_cap(session.timing, session.ttl)
        grace = max(0.0, min(self.grace, cap))
        if grace < self.grace and self.grace_given and not self._warned_cap:
            self._warned_cap = True
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

    def _follow_renewals(self, session: AsyncSession) -> None:
        """Tell the running command's watchdog every new deadline of ``session``."""
        if any(followed is session for followed in self._followed):
            return
        self._followed = [s for s in self._followed if s.alive] + [session]

        def renewed(answer: object) -> None:
            command = self.command
            if command is not None and self._command_session is session:
                command.set_deadline(session.deadline)

        session.add_keepalive_observer(renewed)

    async def work(self, term: Term) -> None:
        """The elector's work for one term; cancelled by the elector when the term ends.
        Returns (so the elector resigns and campaigns again) when the command fails
        ``--max-failures`` times within ``--failure-window``."""
        session = self.leadership.term_session
        grace = self.effective_grace(session)
        self._follow_renewals(session)
        policy = RestartPolicy(
            self.restart, max_failures=self.max_failures, window=self.failure_window
        )
        while True:
            if term.draining.is_set():
                return  # drained for a planned move or a stop: the elector releases the key
            if self.leadership.exiting:
                await asyncio.Event().wait()  # until the elector cancels us
            await self._until_safe(session, grace)
            started = _clock.now()
            outcome = await self._run_once(term, session, grace)
            if outcome.stopped_by == "deadline":  # stopped early: wait for renewals or the end
                continue
            decision = policy.after_exit(outcome.code, _clock.now() - started)
            if decision.action == "exit":
                self.leadership.request_exit(outcome.code)
            elif decision.action == "resign":
                self._child_event(
                    "child_giving_up",
                    term,
                    failures=decision.failures,
                    window=self.failure_window,
                    code=outcome.code,
                )
                if self.leadership.once:
                    self.leadership.request_exit(outcome.code)
                    continue
                return  # the elector resigns; the others are ahead of us when we queue again
            else:
                self._child_event(
                    "child_restarting", term, delay=round(decision.delay, 3), code=outcome.code
                )
                await asyncio.sleep(decision.delay)

    async def _until_safe(self, session: AsyncSession, grace: float) -> None:
        """Return once the deadline is more than ``grace`` away (after a renewal)."""
        # Renewals signal nothing to wait on; this polls only while the lease is at risk.
        while session.deadline - grace <= _clock.now():  # noqa: ASYNC110
            await asyncio.sleep(_RECOVERY_POLL)

    async def _run_once(self, term: Term, session: AsyncSession, grace: float) -> CommandExit:
        """Start the command and wait until its whole tree is gone; if the term ends first
        (we are cancelled), stop it, wait for that, and re-raise."""
        stdout = sys.stderr if self.printer.json_lines else None
        command, interrupted = await finish(
            WatchedCommand.start(
                self.argv,
                self._environment(term),
                grace=grace,
                deadline=session.deadline,
                stdout=stdout,
            )
        )
        self.command, self._command_session = command, session
        command.set_deadline(session.deadline)  # it may have moved while the watchdog started
        if command.started:
            self._child_event("child_started", term, pid=command.pid, watchdog=command.watchdog_pid)
        command.on_stopping = lambda why: self._report_stopping(
            command, term, session, grace, REASONS.get(why, why)
        )
        try:
            if interrupted is not None:
                raise interrupted
            outcome = await self._until_exit_or_drain(command, term, session)
        except asyncio.CancelledError:
            if self.signals.stopping:
                reason = "signal"
            elif self.leadership.exiting:
                reason = "shutdown"
            else:
                reason = "term ended"
            self._report_stopping(command, term, session, grace, reason)
            command.stop()
            outcome = await shielded(command.finished())
            self._report_exit(command, term, outcome)
            raise
        finally:
            if command.done:
                self.command = None
        self._report_exit(command, term, outcome)
        return outcome

    async def _until_exit_or_drain(
        self, command: WatchedCommand, term: Term, session: AsyncSession
    ) -> CommandExit:
        """Wait until the command's tree is gone; when the term is drained first (``--drain``:
        a stop signal, a handoff, a pause), SIGTERM it with the drain as its budget (the
        watchdog SIGKILLs what is left then, never past the deadline) and wait for that."""
        finished = asyncio.ensure_future(command.finished())
        draining = asyncio.ensure_future(term.wait_draining())
        try:
            await wait_first(finished, draining)
        finally:
            await cancel_all([draining])
        if finished.done():
            return finished.result()
        budget = self.drain if self.drain is not None else self.grace
        self._report_stopping(command, term, session, budget, "draining")
        command.stop(budget)
        return await finished

    def _report_stopping(
        self, command: WatchedCommand, term: Term, session: AsyncSession, grace: float, why: str
    ) -> None:
        if command.done or self._stopping_reported is command:
            return
        self._stopping_reported = command
        self._child_event(
            "child_stopping",
            term,
            pid=command.pid,
            reason=why,
            grace=round(grace, 3),
            deadline_in=round(session.deadline - _clock.now(), 3),
        )

    def _report_exit(self, command: WatchedCommand, term: Term, outcome: CommandExit) -> None:
        self._child_event(
            "child_exited",
            term,
            pid=command.pid,
            code=outcome.code,
            signal=outcome.signal,
            sent=outcome.sent,
            killed=outcome.killed or None,
        )


async def run(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """``run NAME -- COMMAND``: campaign, run COMMAND while leader, stop it safely."""
    grace_given = args.grace is not None
    grace = DEFAULT_GRACE
    if grace_given:
        grace = parse_seconds(args.grace, "--grace", allow_zero=True)
    check_grace(grace, options.ttl)
    drain = None if args.drain is None else parse_seconds(args.drain, "--drain", allow_zero=True)
    priority = parse_priority(args.priority)
    max_failures = _max_failures(args.max_failures)
    failure_window = parse_duration(
        args.failure_window or DEFAULT_FAILURE_WINDOW, "--failure-window"
    )
    wait = resolve_wait(args)
    check_command(args.argv)
    async with StopSignals(signals=COMMAND_LINE_SIGNALS) as signals, open_client(options) as client:
        if await reach_etcd(client, args.name, options, wait, signals) is None:
            assert signals.received is not None
            return signal_code(signals.received)
        leadership = Leadership(
            client,
            options,
            printer,
            args.name,
            value=args.value,
            once=args.once,
            # The elector waits a little past the drain for the watchdog's SIGKILL to land.
            drain=0.0 if drain is None else drain + DRAIN_SLACK,
            priority=priority,
        )
        supervisor = Supervisor(
            leadership,
            printer,
            args.argv,
            grace=grace,
            grace_given=grace_given,
            restart=args.restart,
            max_failures=max_failures,
            failure_window=failure_window,
            signals=signals,
            drain=drain,
        )
        signals.on_repeat(supervisor.kill_now)
        code = await leadership.run(supervisor.work, signals)
        return code if code is not None else ExitCode.OK


def _max_failures(text: str | None) -> int:
    """:raises ConfigurationError: unless a whole number >= 0."""
    if text is None:
        return DEFAULT_MAX_FAILURES
    if not text.strip().isdigit():
        raise ConfigurationError(
            f"--max-failures must be a whole number (0: never give up), got {text!r}"
        )
    return int(text)
