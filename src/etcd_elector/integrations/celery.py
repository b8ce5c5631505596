"""Celery beat on every replica, sending only from the leader; a fence on the worker side.

Run ``celery beat`` in as many replicas as you like, all with this scheduler::

    celery -A proj beat -S etcd_elector.integrations.celery:LeaderScheduler

Every replica campaigns in the background; only the one that leads sends due tasks. Before
each send the leader *claims* the run in etcd (a transaction fenced by its term) and then
checks ``term.is_leader()`` immediately before handing the message to the broker. Every
message carries the term's token in its headers, and :class:`FencedTask` on the worker
refuses one whose token is lower than the highest it has seen. The schedule's progress (last
run and run count of each entry) lives in etcd, so a new leader continues where the last one
stopped: no run is sent twice, and a run that fell due during the failover is sent once when
the new leader takes over (beat's own catch-up: missed runs are coalesced into one).

Settings (``app.conf``), all optional:

``etcd_elector_endpoints``
    etcd endpoints, a string or a list (default: ``ETCD_ENDPOINTS``, else ``127.0.0.1:2379``).
``etcd_elector_election``
    the election's name (default ``celery-beat``).
``etcd_elector_namespace``
    its namespace (default ``/etcd-elector``).
``etcd_elector_ttl``
    the session TTL in seconds (default 10): a crashed leader is replaced after about that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

try:
    from celery import Task
    from celery.beat import ScheduleEntry, Scheduler
    from celery.exceptions import Ignore
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "etcd_elector.integrations.celery needs Celery: pip install 'etcd-elector[celery]'"
    ) from exc

from etcd_elector import Client, Term, TransportError
from etcd_elector.integrations._leadership import Leadership, shown
from etcd_elector.integrations._ledger import Claim, RunLedger

__all__ = [
    "CHECKED_AT_HEADER",
    "ELECTION_HEADER",
    "RUN_HEADER",
    "TOKEN_HEADER",
    "FencedTask",
    "LeaderScheduler",
    "highest_token_seen",
]

log = logging.getLogger(__name__)

#: Message headers set on every task the leader sends.
TOKEN_HEADER = "etcd_elector_token"  # the term's fencing token
ELECTION_HEADER = "etcd_elector_election"  # the election it belongs to
RUN_HEADER = "etcd_elector_run"  # the entry's run count: (entry, run) names one run
CHECKED_AT_HEADER = "etcd_elector_checked_at"  # wall clock of the leadership check

DEFAULT_ELECTION = "celery-beat"
DEFAULT_TTL = 10
# While following, how often beat looks whether it leads now: the next due task goes out
# within this long of winning.
FOLLOWER_POLL_S = 0.02


class LeaderScheduler(Scheduler):  # type: ignore[misc]
    """A beat scheduler that sends due tasks only while this replica leads.

    Use it with ``celery beat -S etcd_elector.integrations.celery:LeaderScheduler``; the
    settings are in the module's documentation.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._client: Client | None = None
        self._leadership: Leadership | None = None
        self._ledger: RunLedger | None = None
        self._ready_token = 0  # the term whose schedule state we loaded from etcd
        super().__init__(*args, **kwargs)

    # -- set-up and shutdown -------------------------------------------------------------------

    def setup_schedule(self) -> None:
        super().setup_schedule()
        if self._leadership is None:
            self._start_leadership()

    def _start_leadership(self) -> None:
        conf = self.app.conf
        election = conf.get("etcd_elector_election") or DEFAULT_ELECTION
        options: dict[str, Any] = {"ttl": conf.get("etcd_elector_ttl") or DEFAULT_TTL}
        if conf.get("etcd_elector_namespace"):
            options["namespace"] = conf.get("etcd_elector_namespace")
        self._client = Client(conf.get("etcd_elector_endpoints"))
        try:
            elector = self._client.elector(election, **options)
            self._ledger = RunLedger(self._client, elector.aio.namespace, election)
            self._leadership = Leadership(elector).start()
        except BaseException:
            self._client.close()
            raise
        log.info(
            "beat campaigns for election=%s; it sends tasks only while it leads",
            election,
            extra={"election": election},
        )

    def close(self) -> None:
        """Resign (another replica takes over at once), then close beat's connections."""
        try:
            if self._leadership is not None:
                self._leadership.close()
        finally:
            try:
                super().close()
            finally:
                if self._client is not None:
                    self._client.close()

    @property
    def info(self) -> str:
        leadership = self._leadership
        if leadership is None:
            return "etcd-elector: sends only while leading"
        return f"etcd-elector: sends only while leading election {leadership.election!r}"

    # -- ticking -------------------------------------------------------------------------------

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass of beat: a follower only looks whether it leads now."""
        assert self._leadership is not None, "setup_schedule() was not called"
        term = self._leadership.current()  # re-raises what stopped the elector
        if term is None:
            self._ready_token = 0
            return float(min(FOLLOWER_POLL_S, self.max_interval))
        if term.token != self._ready_token and not self._take_over(term):
            return float(min(FOLLOWER_POLL_S, self.max_interval))
        return float(super().tick(*args, **kwargs))

    def _take_over(self, term: Term) -> bool:
        """Load each entry's progress from etcd, so this term continues the schedule."""
        assert self._ledger is not None
        try:
            records = self._ledger.load()
        except TransportError as exc:
            log.warning("cannot read the schedule's progress from etcd (%s): not sending", exc)
            return False
        for name, entry in self.schedule.items():
            fields = records[name].fields if name in records else {}
            last_run_at = _parse_time(fields.get("last_run_at"))
            count = fields.get("total_run_count")
            if last_run_at is not None and isinstance(count, int) and count >= 0:
                entry.last_run_at = last_run_at
                entry.total_run_count = count
        self._heap = None  # recompute every due time from the state just loaded
        self._ready_token = term.token
        log.info(
            "leading election=%s token=%d: %d of %d entries continue from etcd",
            self._ledger.election,
            term.token,
            sum(1 for name in self.schedule if name in records),
            len(self.schedule),
            extra={"election": self._ledger.election, "token": term.token},
        )
        return True

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Claim the run in etcd, check the term, send it with the token in its headers."""
        assert self._leadership is not None and self._ledger is not None
        term = self._leadership.current()
        if term is None or term.token != self._ready_token:
            log.info("not sending %s: this beat no longer leads", shown(entry.name))
            self._ready_token = 0
            return
        run = self.schedule.get(entry.name, entry)  # beat reserved it: the run being sent
        claim = self._ledger.claim(
            term,
            entry.name,
            {"last_run_at": run.last_run_at.isoformat(), "total_run_count": run.total_run_count},
        )
        if claim is not Claim.CLAIMED:
            log.info("not sending %s: claim %s", shown(entry.name), claim.value)
            self._ready_token = 0  # read the progress again before the next send
            return
        # The last look before the message leaves: a term that ended since the claim (the
        # process was paused, etcd went silent) sends nothing. The stamp is taken first, so
        # it is never later than a check that found the term holding.
        checked_at = time.time()
        if not term.is_leader():
            log.warning(
                "not sending %s run %d: the term ended after it was claimed",
                shown(entry.name),
                run.total_run_count,
            )
            return
        headers = {
            **(entry.options.get("headers") or {}),
            TOKEN_HEADER: term.token,
            ELECTION_HEADER: self._ledger.election,
            RUN_HEADER: run.total_run_count,
            CHECKED_AT_HEADER: checked_at,
        }
        fenced = self.Entry(**dict(entry, options={**entry.options, "headers": headers}))
        try:
            self.apply_async(fenced, producer=producer, advance=False)
        except Exception as exc:
            log.error("sending %s failed: %s", shown(entry.name), exc, exc_info=exc)
            return
        log.info(
            "Scheduler: Sent due task %s (%s) token=%d run=%d",
            shown(entry.name),
            shown(str(entry.task)),
            term.token,
            run.total_run_count,
        )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# -- the worker side ---------------------------------------------------------------------------


class _HighestTokens:
    """The highest token seen per election, in this worker process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._highest: dict[str, int] = {}

    def admit(self, election: str, token: int) -> tuple[bool, int]:
        """Whether ``token`` may run (not lower than the highest seen), and that highest."""
        with self._lock:
            highest = self._highest.get(election, 0)
            if token < highest:
                return False, highest
            self._highest[election] = token
            return True, token

    def get(self, election: str) -> int:
        with self._lock:
            return self._highest.get(election, 0)


_HIGHEST = _HighestTokens()


def highest_token_seen(election: str = DEFAULT_ELECTION) -> int:
    """The highest token this worker process has accepted for ``election`` (0: none yet)."""
    return _HIGHEST.get(election)


class FencedTask(Task):  # type: ignore[misc]
    """A task base that refuses a message from a term older than one already seen.

    ::

        @app.task(base=FencedTask)
        def send_report() -> None: ...

    A message that :class:`LeaderScheduler` sent carries its term's token. A worker process
    runs it only if the token is not lower than the highest it has accepted for that
    election; an older one was sent by a leader that had already been replaced (it was
    paused, or cut off from etcd, between its last check and the send), and is ignored
    with a warning. Messages without a token (sent by hand) run, unless
    ``require_fencing_token`` is set on the task. The highest token lives in each worker
    process's memory.
    """

    require_fencing_token: ClassVar[bool] = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        token = getattr(request, TOKEN_HEADER, None)
        election = getattr(request, ELECTION_HEADER, None)
        if token is None and not self.require_fencing_token:
            return super().__call__(*args, **kwargs)
        if not _is_token(token) or not isinstance(election, str):
            self._refuse(f"its fencing headers are missing or malformed ({_describe(request)})")
        assert isinstance(token, int) and isinstance(election, str)
        admitted, highest = _HIGHEST.admit(election, token)
        if not admitted:
            self._refuse(
                f"its token {token} is lower than {highest}, already seen for election "
                f"{shown(election)!r}: a replaced leader sent it"
            )
        return super().__call__(*args, **kwargs)

    def _refuse(self, why: str) -> None:
        task_id = shown(str(self.request.id))  # from the message: bounded, escaped
        log.warning("refusing task %s id=%s: %s", shown(str(self.name)), task_id, why)
        raise Ignore(why)


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _describe(request: Mapping[str, Any] | Any) -> str:
    token = getattr(request, TOKEN_HEADER, None)
    election = getattr(request, ELECTION_HEADER, None)
    return f"token={shown(repr(token))} election={shown(repr(election))}"
