"""APScheduler 3 on every replica, with jobs that fire only on the leader.

::

    scheduler = BackgroundScheduler()
    scheduler.add_job(send_report, "interval", minutes=5, id="report")

    with Client() as client:
        with LeaderScheduler(scheduler, client.elector("reports", ttl=10)):
            ...  # every replica runs this; only the leader's jobs fire

Followers keep their scheduler paused. A replica that wins the election reads from etcd how
far each job has run, moves each job's next run to the one after that, and resumes; when its
term ends it pauses again. Each run is *claimed* in etcd before it is handed to the
executor (a transaction fenced by the term, so a replaced leader cannot claim), a run time at
or before one already claimed is never run, and the term is checked once more immediately
before the job's function is called. Inside a job, :func:`current_run` gives the term (its
``token`` fences writes to other systems) and the scheduled run time.

Runs that fell due while nobody led (between the old leader's end and the new one's start)
follow the ``missed`` policy: ``"catch_up"`` (default) runs them once, as soon as the new
leader starts, whatever the job's ``misfire_grace_time``; ``"skip"`` drops them and waits for
the next run time. Runs that are late for any other reason follow APScheduler's own
``misfire_grace_time`` and ``coalesce`` rules.

Supported: ``BackgroundScheduler`` with executors that run jobs in this process (the default
thread pool, ``debug``); a process pool cannot see this process's term and is refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

try:
    from apscheduler.events import EVENT_EXECUTOR_ADDED, SchedulerEvent
    from apscheduler.executors.base import BaseExecutor
    from apscheduler.executors.pool import ProcessPoolExecutor
    from apscheduler.job import Job
    from apscheduler.schedulers.background import BackgroundScheduler
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "etcd_elector.integrations.apscheduler needs APScheduler 3: "
        "pip install 'etcd-elector[apscheduler]'"
    ) from exc

from etcd_elector import (
    ConfigurationError,
    Elector,
    EndReason,
    LeadershipLost,
    NotLeader,
    Term,
    TransportError,
)
from etcd_elector.integrations._leadership import Leadership, shown
from etcd_elector.integrations._ledger import Claim, RunLedger

__all__ = ["LeaderRun", "LeaderScheduler", "Missed", "current_run"]

log = logging.getLogger(__name__)

#: What happens to runs that fell due while nobody led: see the module's documentation.
Missed = Literal["catch_up", "skip"]

_RETRY_LOAD_S = 0.5
_CLAIM_ATTEMPTS = 2


@dataclass(frozen=True)
class LeaderRun:
    """The run a job is in: the term it runs under, the run time it was scheduled for, and
    when this replica's term began. ``caught_up`` is true for the one run that stands for
    the runs that fell due while nobody led (the ``catch_up`` policy): its own run time, or
    a later one they were coalesced into."""

    term: Term
    job_id: str
    run_time: datetime
    term_began: datetime
    caught_up: bool = False


_current: contextvars.ContextVar[LeaderRun] = contextvars.ContextVar("etcd_elector_run")


def current_run() -> LeaderRun:
    """The run of the job calling this: ``current_run().term.token`` fences its writes.

    :raises NotLeader: outside a job run by :class:`LeaderScheduler`.
    """
    try:
        return _current.get()
    except LookupError:
        raise NotLeader(
            "current_run() is only available inside a job run by LeaderScheduler"
        ) from None


class LeaderScheduler:
    """Drive an APScheduler 3 ``BackgroundScheduler`` so its jobs fire only on the leader.

    :param scheduler: a ``BackgroundScheduler`` that is not started yet; add jobs before
        or after ``start()``.
    :param elector: ``client.elector(name, ttl=...)``: the election the replicas share.
    :param missed: ``"catch_up"`` or ``"skip"``: runs that fell due while nobody led.
    :raises ConfigurationError: for another kind of scheduler, one already started, a
        process-pool executor, or an unknown ``missed`` policy.
    """

    def __init__(
        self, scheduler: BackgroundScheduler, elector: Elector, *, missed: Missed = "catch_up"
    ) -> None:
        if not isinstance(scheduler, BackgroundScheduler):
            raise ConfigurationError(
                f"LeaderScheduler drives a BackgroundScheduler, not a "
                f"{type(scheduler).__name__}: use BackgroundScheduler"
            )
        if scheduler.running:
            raise ConfigurationError(
                "the scheduler is already running: let LeaderScheduler.start() start it"
            )
        if missed not in ("catch_up", "skip"):
            raise ConfigurationError(f"missed={missed!r} is not a policy: use catch_up or skip")
        self.scheduler = scheduler
        self.missed = missed
        self._ledger = RunLedger(elector.client, elector.aio.namespace, elector.aio.name)
        self._leadership = Leadership(elector, on_elected=self._take_over, on_lost=self._pause)
        self._ready: tuple[int, datetime] | None = None  # (token, when this term began)
        self._claim_lock = threading.Lock()
        self._started = False

    @property
    def leadership(self) -> Leadership:
        """The background leadership: ``leadership.current()`` is the term, if we lead."""
        return self._leadership

    def start(self) -> LeaderScheduler:
        """Start the scheduler paused and campaign; it resumes while this replica leads.

        :raises ConfigurationError: if an executor runs jobs in other processes.
        """
        if self._started:
            return self
        self.scheduler.start(paused=True)
        try:
            for alias in list(self._executors()):
                self._wrap(alias)
            self.scheduler.add_listener(self._on_executor_added, EVENT_EXECUTOR_ADDED)
        except BaseException:
            self.scheduler.shutdown(wait=False)
            raise
        self._started = True
        self._leadership.start()
        return self

    def close(self, wait: bool = True) -> None:
        """Resign (another replica takes over at once) and shut the scheduler down."""
        self._leadership.close()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    def __enter__(self) -> LeaderScheduler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- executors ------------------------------------------------------------------------------

    def _executors(self) -> dict[str, BaseExecutor]:
        # APScheduler 3 has no public way to list executors; every 3.x release keeps them here.
        executors = getattr(self.scheduler, "_executors", None)
        if not isinstance(executors, dict):
            raise ConfigurationError(
                "this APScheduler release does not keep its executors where 3.x does: "
                "etcd-elector supports APScheduler >=3.10,<4"
            )
        return executors

    def _wrap(self, alias: str) -> None:
        executors = self._executors()
        inner = executors[alias]
        if isinstance(inner, _LeaderExecutor):
            return
        if isinstance(inner, ProcessPoolExecutor):
            raise ConfigurationError(
                f"executor {alias!r} runs jobs in other processes, which cannot see this "
                "process's term: use a thread pool"
            )
        executors[alias] = _LeaderExecutor(inner, self)

    def _on_executor_added(self, event: SchedulerEvent) -> None:
        try:
            self._wrap(event.alias)
        except ConfigurationError as exc:
            log.error("executor %s is not guarded and will run nothing: %s", event.alias, exc)
            executors = self._executors()
            refused, executors[event.alias] = executors[event.alias], _RefusingExecutor(str(exc))
            refused.shutdown(wait=False)

    # -- terms ----------------------------------------------------------------------------------

    def _take_over(self, term: Term) -> None:
        """Continue each job from its last claimed run, then resume (leadership thread)."""
        while True:
            try:
                records = self._ledger.load()
                break
            except TransportError as exc:
                log.warning("cannot read the jobs' progress from etcd (%s): retrying", exc)
                if term.lost.wait(_RETRY_LOAD_S):
                    return
        began = datetime.now(UTC)
        for job in self.scheduler.get_jobs():
            last = (
                _parse_time(records[job.id].fields.get("run_time")) if job.id in records else None
            )
            if last is None or job.next_run_time is None:  # never run, or paused by the user
                continue
            upcoming = job.trigger.get_next_fire_time(last, began)
            if upcoming is None:
                self.scheduler.remove_job(job.id)  # the last leader ran its last run
            else:
                job.modify(next_run_time=upcoming)
        with self._claim_lock:
            self._ready = (term.token, began)
        log.info(
            "leading election=%s token=%d: %d jobs, %d continue from etcd",
            self._ledger.election,
            term.token,
            len(self.scheduler.get_jobs()),
            sum(1 for job in self.scheduler.get_jobs() if job.id in records),
        )
        if term.is_leader():
            self.scheduler.resume()

    def _pause(self, term: Term) -> None:
        with self._claim_lock:
            self._ready = None
        if self.scheduler.running:
            self.scheduler.pause()

    def _runs_to_submit(self, job: Job, run_times: Sequence[datetime]) -> _Chosen | None:
        """The runs to hand to the executor now, claimed in etcd; ``None``: nothing to run."""
        term = self._leadership.current()
        with self._claim_lock:
            ready = self._ready
        if term is None or ready is None or ready[0] != term.token:
            log.info("not running job %s: this replica does not lead", shown(job.id))
            return None
        for _ in range(_CLAIM_ATTEMPTS):
            runs, caught_up = self._choose(job, run_times, began=ready[1])
            if not runs:
                return None
            claim = self._ledger.claim(term, job.id, {"run_time": runs[-1].isoformat()})
            if claim is Claim.CLAIMED:
                return _Chosen(term, ready[1], runs, caught_up)
            if claim is not Claim.CONFLICT:
                break
            # Written since we read it: choose again against the record etcd just gave us.
        log.info("not running job %s: its run could not be claimed", shown(job.id))
        return None

    def _choose(
        self, job: Job, run_times: Sequence[datetime], began: datetime
    ) -> tuple[list[datetime], bool]:
        """Of the run times the scheduler found due, those to run now, and whether the first
        of them catches up runs missed while nobody led."""
        now = datetime.now(UTC)
        last = _parse_time(self._ledger.record(job.id).fields.get("run_time"))
        fresh = sorted(t for t in run_times if last is None or t > last)
        missed = [t for t in fresh if t < began]  # due while nobody led
        due = [t for t in fresh if t >= began and _in_grace(job, t, now)]
        runs = (missed[-1:] if self.missed == "catch_up" else []) + due
        if missed and self.missed == "skip":
            log.info(
                "job %s: %d runs fell due while nobody led; skipped", shown(job.id), len(missed)
            )
        catching_up = bool(missed) and self.missed == "catch_up"
        return (runs[-1:] if job.coalesce else runs), catching_up


@dataclass(frozen=True)
class _Chosen:
    term: Term
    began: datetime
    runs: list[datetime]
    caught_up: bool  # the first run stands for runs missed while nobody led


class _LeaderExecutor(BaseExecutor):  # type: ignore[misc]
    """Wraps an executor: claims each run, and checks the term again right before the call."""

    def __init__(self, inner: BaseExecutor, owner: LeaderScheduler) -> None:
        super().__init__()
        self.inner = inner
        self.owner = owner

    def start(self, scheduler: Any, alias: str) -> None:
        self.inner.start(scheduler, alias)

    def shutdown(self, wait: bool = True) -> None:
        self.inner.shutdown(wait)

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        if inspect.iscoroutinefunction(job.func):
            raise ConfigurationError(
                f"job {shown(job.id)} is a coroutine function: BackgroundScheduler runs "
                "plain functions"
            )
        chosen = self.owner._runs_to_submit(job, run_times)
        if chosen is None:
            return
        self.inner.submit_job(_GuardedJob(job, chosen), chosen.runs)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:  # pragma: no cover
        raise AssertionError("submit_job() hands jobs to the wrapped executor")


class _RefusingExecutor(BaseExecutor):  # type: ignore[misc]
    """Stands in for an executor that cannot be guarded: it runs nothing, loudly."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        log.error("not running job %s: %s", shown(job.id), self.why)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:  # pragma: no cover
        raise AssertionError("submit_job() refuses every job")


class _GuardedJob:
    """The job as the executor sees it: same attributes, but ``func`` checks the term first.

    One call of ``func`` per run time, in order: the misfire check was made when the runs
    were chosen, so the executor must not skip any (``misfire_grace_time`` is ``None``).
    """

    def __init__(self, job: Job, chosen: _Chosen) -> None:
        self._job = job
        self._chosen = chosen
        self._term = chosen.term
        self._runs: Iterator[datetime] = iter(chosen.runs)
        self._lock = threading.Lock()
        self.misfire_grace_time = None
        self.func: Callable[..., Any] = self._guarded(job.func)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)

    def _guarded(self, target: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                run_time = next(self._runs)
            with self._running(run_time):
                return target(*args, **kwargs)

        return call

    @contextlib.contextmanager
    def _running(self, run_time: datetime) -> Iterator[None]:
        term = self._term
        if not term.is_leader():
            raise LeadershipLost(
                f"job {shown(self._job.id)} run at {run_time.isoformat()} not started: term "
                f"{term.token} ended after the run was claimed",
                reason=term.end_reason or EndReason.DEADLINE,
            )
        chosen = self._chosen
        caught_up = chosen.caught_up and run_time == chosen.runs[0]
        reset = _current.set(LeaderRun(term, self._job.id, run_time, chosen.began, caught_up))
        try:
            yield
        finally:
            _current.reset(reset)


def _in_grace(job: Job, run_time: datetime, now: datetime) -> bool:
    grace = job.misfire_grace_time
    if grace is None or now - run_time <= timedelta(seconds=grace):
        return True
    log.warning("run time of job %s was missed by %s", shown(job.id), now - run_time)
    return False


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
