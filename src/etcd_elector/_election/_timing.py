"""A session's timing, validated once, and what it means in seconds.

:class:`Timing` holds the three settings (TTL, margin, keepalive interval), checks them
together when it is made, and owns the rules derived from them: the default margin, a
keepalive every third of the granted TTL. The session, the elector, the command line's
supervisor and :func:`check_timing` all take one; none checks the settings again.

:func:`check_timing` explains the consequences (pure arithmetic, no I/O): failover bounds,
drift tolerance and warnings, for ``etcd-elector check-config``. The numbers come from how
etcd treats leases:

* etcd grants at least ``ceil((3 * election_ticks // 2) * heartbeat)`` seconds, where
  ``election_ticks = election_timeout // heartbeat`` (2 s at the defaults, 1 s and 100 ms);
* its lessor revokes expired leases in a sweep every 500 ms;
* a newly elected etcd leader extends every lease to ``now + TTL + election timeout``
  (``lessor.Promote``), so a lease's clock restarts at an etcd leader change;
* raft waits a randomised ``[1, 2) x election timeout`` without a heartbeat before it elects
  a new etcd leader, and answers nothing that needs a leader meanwhile.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .._errors import ConfigurationError
from .._seconds import seconds

__all__ = [
    "ETCD_EXPIRY_SWEEP",
    "MAX_TTL",
    "Failover",
    "Timing",
    "TimingReport",
    "check_timing",
    "default_margin",
    "etcd_min_ttl",
    "validate_ttl",
]

# etcd's lessor looks for expired leases every 500 ms (revokeExpiredLeases).
ETCD_EXPIRY_SWEEP = 0.5
# Kernel time discipline (NTP) slews a clock's rate by at most 500 ppm; two clocks slewed in
# opposite directions drift apart at up to twice that.
_SLEW_PPM = 500.0
# etcd stores lease TTLs as whole seconds and refuses more than this.
MAX_TTL = 9_000_000_000


def validate_ttl(ttl: float, *, what: str = "ttl", typed: str | None = None) -> int:
    """The TTL as etcd wants it (whole seconds), or a ``ConfigurationError`` saying why not.
    Messages name the setting as ``what`` and show the value as ``typed`` (what the user
    wrote, e.g. on a command line) rather than as a float."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise ConfigurationError(f"{what} must be a number of seconds, got {ttl!r}")
    shown = repr(typed) if typed is not None else _seconds_text(ttl)
    if ttl != ttl or ttl < 1 or ttl > MAX_TTL:
        raise ConfigurationError(
            f"{what} {shown} cannot be granted: etcd leases last 1 to {MAX_TTL} whole seconds"
        )
    if ttl != int(ttl):
        raise ConfigurationError(
            f"{what} {shown} is not whole: etcd grants leases in whole seconds"
        )
    return int(ttl)


def _seconds_text(value: object) -> str:
    """``3`` for 3.0, ``1.5`` for 1.5: a number as people write it, not as a float prints."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def default_margin(ttl: float) -> float:
    """Time kept in reserve to stop leader work before etcd can expire the lease."""
    return min(max(0.5, 0.15 * ttl), ttl / 3)


@dataclass(frozen=True, init=False)
class Timing:
    """A session's timing settings, checked together once, when made.

    :param ttl: seconds etcd keeps the lease without renewal (whole seconds; etcd may grant
        more, see :meth:`interval`).
    :param margin: seconds of the TTL held back as a safety margin (default
        :func:`default_margin`: 15% of the TTL, at least 0.5 s, at most a third): the local
        deadline is ``send time + granted TTL - margin``.
    :param keepalive_interval: seconds between renewals (``None``: a third of the granted
        TTL); it must leave the renewal before the deadline.
    :param shown_ttl: the TTL as the user wrote it, for messages (a command line's text).
    :raises ConfigurationError: naming the setting that cannot work.
    """

    ttl: int
    margin: float
    keepalive_interval: float | None

    def __init__(
        self,
        ttl: float = 10.0,
        margin: float | None = None,
        keepalive_interval: float | None = None,
        *,
        shown_ttl: str | None = None,
    ) -> None:
        whole = validate_ttl(ttl, typed=shown_ttl)
        if margin is None:
            margin = default_margin(whole)
        else:
            margin = seconds(margin, "margin", allow_zero=True, allow_infinite=True)
        if margin >= whole:
            raise ConfigurationError(
                f"margin {_seconds_text(margin)}s must be smaller than the ttl {whole}s"
            )
        if keepalive_interval is not None and (
            isinstance(keepalive_interval, bool)
            or not isinstance(keepalive_interval, int | float)
            or not 0 < keepalive_interval < whole - margin
        ):
            raise ConfigurationError(
                f"keepalive_interval must be positive and below ttl - margin "
                f"({whole - margin:g}s), got {_seconds_text(keepalive_interval)}"
            )
        object.__setattr__(self, "ttl", whole)
        object.__setattr__(self, "margin", float(margin))
        interval = None if keepalive_interval is None else float(keepalive_interval)
        object.__setattr__(self, "keepalive_interval", interval)

    def interval(self, granted_ttl: int) -> float:
        """Seconds between renewals of a lease etcd granted ``granted_ttl`` seconds: the
        setting, or a third of the TTL (of the one asked for, before etcd has answered)."""
        if self.keepalive_interval is not None:
            return self.keepalive_interval
        return max(granted_ttl, self.ttl) / 3

    def leader_stops_after(self, granted_ttl: int) -> float:
        """How long after its last answered renewal was sent a leader keeps acting."""
        return granted_ttl - self.margin

    def renewal_headroom(self, granted_ttl: int) -> float:
        """How late the next renewal may be before the term is lost."""
        return self.leader_stops_after(granted_ttl) - self.interval(granted_ttl)


@dataclass(frozen=True)
class Failover:
    """The longest time without a usable leader after one kind of event.

    ``seconds`` excludes network round trips; add ``round_trips`` of them (milliseconds on a
    LAN) for the campaign's write, watch event and confirming read.
    """

    event: str
    seconds: float
    round_trips: int
    why: str


@dataclass(frozen=True)
class TimingReport:
    """The consequences of one set of timing settings; see :func:`check_timing`.

    All times are seconds. ``granted_ttl`` is what etcd will grant (at least its minimum),
    and every bound below is computed from it, as the session does.
    """

    ttl: int
    granted_ttl: int
    margin: float
    keepalive_interval: float
    election_timeout: float
    heartbeat: float
    etcd_min_ttl: int
    #: Time a leader that stops renewing (crash, partition) keeps acting: ``TTL - margin``.
    leader_stops_after: float
    #: How late a renewal may be before the term is lost: ``TTL - margin - interval``.
    renewal_headroom: float
    #: How much faster etcd's clock may run than ours before "no overlap" fails, in ppm.
    drift_tolerance_ppm: float
    failovers: tuple[Failover, ...]
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``json.dumps``."""
        return asdict(self)


def etcd_min_ttl(election_timeout: float = 1.0, heartbeat: float = 0.1) -> int:
    """The shortest lease etcd grants with these server settings (seconds).

    etcd computes it from whole ticks: ``ceil((3 * (election_ms // tick_ms) // 2) * tick)``;
    2 s at etcd's defaults (``--election-timeout 1000 --heartbeat-interval 100``).

    :raises ConfigurationError: for non-positive values, or an election timeout below five
        heartbeats (etcd refuses to start with that).
    """
    election_ms = round(seconds(election_timeout, "election timeout") * 1000)
    tick_ms = round(seconds(heartbeat, "heartbeat interval") * 1000)
    if tick_ms < 1:
        raise ConfigurationError(f"heartbeat interval must be at least 1 ms, got {heartbeat!r}")
    if election_ms < 5 * tick_ms:
        raise ConfigurationError(
            f"etcd's election timeout ({election_ms} ms) must be at least five heartbeat "
            f"intervals ({5 * tick_ms} ms)"
        )
    ticks = election_ms // tick_ms
    return math.ceil((3 * ticks // 2) * tick_ms / 1000)


def check_timing(
    ttl: float = 10,
    margin: float | None = None,
    keepalive_interval: float | None = None,
    election_timeout: float = 1.0,
    heartbeat: float = 0.1,
) -> TimingReport:
    """Explain what session settings mean: worst-case failovers, drift tolerance, risks.

    ``ttl``, ``margin`` and ``keepalive_interval`` are the session's settings (``None``: the
    session's defaults); ``election_timeout`` and ``heartbeat`` are etcd's server settings
    (``--election-timeout``, ``--heartbeat-interval``, in seconds here). Nothing is sent
    anywhere::

        >>> report = check_timing(ttl=10)
        >>> report.margin, report.drift_tolerance_ppm
        (1.5, 150000.0)
        >>> [f.event for f in report.failovers]
        ['resign', 'crash', 'partition', 'etcd-leader-change']

    :raises ConfigurationError: for settings a session would refuse, or impossible etcd
        settings.
    """
    min_ttl = etcd_min_ttl(election_timeout, heartbeat)
    timing = Timing(ttl, margin, keepalive_interval)
    whole_ttl, margin = timing.ttl, timing.margin
    granted = max(whole_ttl, min_ttl)
    interval = timing.interval(granted)
    headroom = timing.renewal_headroom(granted)
    stops_after = timing.leader_stops_after(granted)
    drift_ppm = margin / granted * 1e6
    crash = granted + ETCD_EXPIRY_SWEEP
    # Worst case: the leader crashed just after a renewal and etcd loses its own leader just
    # before that lease would expire. Raft needs up to 2 election timeouts to elect a new
    # leader, which then restarts every lease at TTL + election timeout.
    etcd_change = 2 * granted + 3 * election_timeout + ETCD_EXPIRY_SWEEP
    failovers = (
        Failover(
            "resign",
            0.0,
            1,
            "the leader deletes its key; only the next candidate's watch fires, and it "
            "confirms with one read",
        ),
        Failover(
            "crash",
            crash,
            1,
            f"etcd expires the lease {granted} s after its last renewal, finds it within "
            f"{ETCD_EXPIRY_SWEEP:g} s (its expiry sweep), then the next candidate confirms",
        ),
        Failover(
            "partition",
            crash,
            1,
            f"the others see a crash; the cut-off leader itself stops acting at its local "
            f"deadline, at most {stops_after:g} s after its last answered renewal was sent, "
            f"at least {margin:g} s before etcd can expire its lease",
        ),
        Failover(
            "etcd-leader-change",
            etcd_change,
            1,
            f"the leader crashed and etcd loses its own leader just before the lease would "
            f"expire ({granted} s): etcd takes up to {2 * election_timeout:g} s to elect a "
            f"new leader, which restarts every lease at TTL + election timeout "
            f"({granted + election_timeout:g} s), then the expiry sweep; about two TTLs, a "
            f"gap and never an overlap",
        ),
    )
    warnings: list[str] = []
    if whole_ttl < min_ttl:
        warnings.append(
            f"ttl {whole_ttl} s is below etcd's minimum of {min_ttl} s at election timeout "
            f"{election_timeout:g} s: etcd grants {min_ttl} s, and the numbers above use that"
        )
    if headroom < interval:
        warnings.append(
            f"a single late renewal costs the lease: after a renewal, the next is due in "
            f"{interval:g} s and the deadline is {stops_after:g} s away, leaving "
            f"{headroom:.2f} s for a late or retried renewal, less than one keepalive "
            f"interval; lower --keepalive-interval or --margin, or raise --ttl"
        )
    if headroom < 2 * election_timeout:
        warnings.append(
            f"an etcd leader election (up to {2 * election_timeout:g} s without answers) "
            f"can outlast the renewal headroom of {headroom:.2f} s: the leader may lose its "
            f"term whenever etcd changes leader (safe, but a needless failover); raise --ttl"
        )
    if drift_ppm < 2 * _SLEW_PPM:
        warnings.append(
            f"margin {margin:g} s tolerates only {drift_ppm:.0f} ppm of clock-rate difference "
            f"with etcd's leader; NTP alone may slew two clocks {2 * _SLEW_PPM:.0f} ppm apart: "
            f"raise --margin"
        )
    return TimingReport(
        ttl=whole_ttl,
        granted_ttl=granted,
        margin=margin,
        keepalive_interval=interval,
        election_timeout=float(election_timeout),
        heartbeat=float(heartbeat),
        etcd_min_ttl=min_ttl,
        leader_stops_after=stops_after,
        renewal_headroom=headroom,
        drift_tolerance_ppm=drift_ppm,
        failovers=failovers,
        warnings=tuple(warnings),
    )
