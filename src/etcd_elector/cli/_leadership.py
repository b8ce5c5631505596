"""One elector driven by a CLI command: report each term, stop cleanly on a signal or when
the command asks to exit, and say when leadership really ended (``ended_at``).

``ended_at`` (Unix time) is when this process stopped believing it leads: the moment its term
ended, or its local lease deadline if that came first (a paused process notices late, but
its belief ended at the deadline). Tools comparing leaders' intervals, like the demo's
two-leaders check, use it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .. import _metrics
from .._client import AsyncClient
from .._election._election import AsyncElection
from .._election._elector import AsyncElector, ElectorEvent, ElectorState
from .._election._moves import DEFAULT_PRIORITY
from .._election._names import candidate_key
from .._election._session import AsyncSession
from .._election._term import Term
from .._errors import ConfigurationError, DatabaseSpaceExceeded
from .._health import HealthServer
from .._reasons import EndReason
from .._stop_signals import StopSignals
from .._systemd import SystemdNotifier
from .._tasks import cancel_all, cancel_and_wait, wait_first
from ..etcd._history_guard import HistoryLoss
from ._exit import ExitCode, signal_code
from ._observation import print_history_loss
from ._options import Options
from ._output import Printer, unix_time

__all__ = ["OUR_REASONS", "Leadership"]

log = logging.getLogger(__name__)

# Term ends that we chose (resigned, handed off, stepped down); anything else is a loss.
OUR_REASONS = frozenset(
    {
        EndReason.CLOSED,
        EndReason.WORK_DONE,
        EndReason.WORK_FAILED,
        EndReason.HANDED_OFF,
        EndReason.PAUSED,
    }
)


class Leadership:
    """An :class:`AsyncElector` with the CLI's reporting and stop logic around it."""

    def __init__(
        self,
        client: AsyncClient,
        options: Options,
        printer: Printer,
        name: str,
        *,
        value: str | None,
        once: bool,
        drain: float = 0.0,
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        self.name = name
        self.options = options
        self.printer = printer
        self.once = once
        self.exit_code: int | None = None
        self._exit_requested = asyncio.Event()
        self._hooked: AsyncElection | None = None
        self._term_sessions: dict[int, AsyncSession] = {}
        self._term_ended: dict[int, float] = {}
        self.elector = AsyncElector(
            client,
            name,
            value=value,
            ttl=options.ttl,
            namespace=options.namespace,
            on_elected=self._elected,
            on_lost=self._lost,
            # --once: a full etcd (NOSPACE) ends the command, which says so (exit code 10).
            stop_on=(DatabaseSpaceExceeded,) if once else (),
            drain=drain,
            priority=priority,
        )
        # etcd lost history: say so as an event (the terms end with reason etcd_history_lost).
        if client.history.last_loss is not None:  # found by the first read (token file)
            self._history_lost(client.history.last_loss)
        self._stop_listening = client.history.add_listener(self._history_lost)

    def _history_lost(self, loss: HistoryLoss) -> None:
        print_history_loss(self.printer, self.name, loss)

    # -- reporting -------------------------------------------------------------------------

    def _elected(self, term: Term) -> None:
        election = self.elector.election
        if election is not None:
            self._term_sessions[term.token] = election.session
            if election is not self._hooked:
                self._hooked = election
                election.add_term_end_callback(self._term_end)
        self.printer.event("elected", self.name, term, elected_at=unix_time(term.elected_at))

    def _term_end(self, term: Term, reason: EndReason) -> None:
        self._term_ended.setdefault(term.token, time.time())

    def ended_at(self, term: Term) -> float:
        """When this process stopped believing it leads (Unix time)."""
        ended = self._term_ended.pop(term.token, time.time())
        session = self._term_sessions.pop(term.token, None)
        if session is not None:
            ended = min(ended, unix_time(session.deadline))
        return ended

    def _lost(self, term: Term, reason: EndReason) -> None:
        ended = self.ended_at(term)
        if reason in OUR_REASONS:
            self.printer.event("resigned", self.name, term, reason=reason, ended_at=ended)
            return
        self.printer.event("lost", self.name, term, reason=reason, ended_at=ended)
        if self.once:
            self.request_exit(ExitCode.LOST)

    def _report_move(self, change: ElectorEvent) -> None:
        move = change.move
        assert move is not None
        self.printer.event(
            move.kind.value,
            self.name,
            change.term,
            to=move.to,
            by=move.by,
            reason=move.reason,
            successor=move.successor,
            budget=move.budget,
        )

    async def _report_campaigning(self) -> None:
        async for change in self.elector.states():
            if change.move is not None:
                self._report_move(change)
                continue
            if change.state is ElectorState.STANDBY:
                self.printer.event("standby", self.name, priority=0, value=self.elector.value)
                continue
            if change.state is not ElectorState.CAMPAIGNING:
                continue
            session = self.elector.session
            if session is None:
                continue
            key = candidate_key(self.options.namespace, self.name, session.lease_id).decode()
            self.printer.event(
                "campaigning",
                self.name,
                key=key,
                lease=f"{session.lease_id:x}",
                value=self.elector.value,
            )

    # -- running ---------------------------------------------------------------------------

    def request_exit(self, code: int) -> None:
        """Stop: the elector is closed (work stopped, resigned) and ``run`` returns ``code``."""
        if self.exit_code is None:
            self.exit_code = code
        self._exit_requested.set()

    def _still_withdrawing(self, signum: int) -> None:
        # A repeated signal never skips the withdrawal: a key left behind would be shown
        # as a candidate (or the leader) until its lease expires.
        log.warning(
            "%s again: still withdrawing from election %s in etcd (each call is bounded by "
            "--timeout); only SIGKILL leaves the key to expire",
            signal.Signals(signum).name,
            self.name,
        )

    @property
    def exiting(self) -> bool:
        return self._exit_requested.is_set()

    @property
    def term_session(self) -> AsyncSession:
        """The session the current term is held on."""
        election = self.elector.election
        assert election is not None, "asked outside a term"
        return election.session

    def _start_health(self) -> HealthServer | None:
        """``--health-addr``: serve /healthz, /leader and /metrics (Prometheus metrics on the
        default registry when prometheus-client is installed).

        :raises ConfigurationError: if the address cannot be listened on.
        """
        address = self.options.health_addr
        if address is None:
            return None
        if type(_metrics.get_metrics()) is _metrics.NoopMetrics:
            try:
                _metrics.set_metrics(_metrics.PrometheusMetrics())
            except ImportError:
                log.info("prometheus-client is not installed: /metrics answers 404")
        try:
            return HealthServer(self.elector, address).start()
        except OSError as exc:
            host, port = address
            raise ConfigurationError(f"--health-addr {host}:{port}: cannot listen: {exc}") from None

    async def run(self, work: Callable[[Term], Awaitable[Any]], signals: StopSignals) -> int:
        """Campaign and run ``work`` each term until a signal or :meth:`request_exit`.

        :raises EtcdElectorError: what the elector raised (credentials, permissions...).
        """
        signals.on_repeat(self._still_withdrawing)
        # Under systemd (Type=notify): READY=1 once campaigning, WATCHDOG=1 as it allows.
        notifier = SystemdNotifier(self.elector)  # checks NOTIFY_SOCKET and WATCHDOG_USEC
        health = self._start_health()
        await notifier.start()
        reporter = asyncio.create_task(self._report_campaigning())
        runner = asyncio.create_task(self.elector.run(work))
        stop = asyncio.create_task(signals.wait())
        requested = asyncio.create_task(self._exit_requested.wait())
        try:
            await wait_first(runner, stop, requested)
        finally:
            await cancel_all([stop, requested])
            notifier.stopping()
            await self.elector.close()
            await wait_first(runner)
            await cancel_and_wait(reporter)
            await notifier.close()
            if health is not None:
                health.close()
            self._stop_listening()
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            error = runner.exception()
            assert error is not None
            raise error
        if signals.received is not None:
            return signal_code(signals.received)
        return self.exit_code if self.exit_code is not None else ExitCode.OK
