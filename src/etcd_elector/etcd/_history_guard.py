"""``HistoryGuard``: notices when etcd's history goes back, and refuses tokens from before it.

A fencing token is a revision, and revisions only grow as long as etcd keeps its data. A wiped
data dir (same cluster id) or a restore from an older snapshot (a new cluster id, unless
restored with the old cluster token) starts etcd again at a lower revision: it hands out once
more tokens that outside systems already saw. Every response header carries the cluster id and
a revision, so the client shows each one to its guard.

Which answers are compared, and with what, so that a healthy cluster never raises an alarm:

- The cluster id never changes in a healthy cluster: every header is checked for it.
- A *linearizable* answer (a read that is not serializable, a write, a txn that is not
  entirely serializable reads, a lease grant or revoke, a compaction) reflects every write
  committed before the request was sent, whichever member answers. Its revision is therefore
  at least the highest this process had seen *when it sent the request*. Comparing with what
  was seen by the time the answer arrives would be wrong: a concurrent request may have
  finished in between with a later revision.
- Every other answer (serializable reads, watch and keepalive answers, status, lease TTLs,
  member lists) comes from one member's local state, which may lag behind a linearizable answer
  seen before; a member installing a snapshot from its leader even reports revision 1 for a
  moment (etcd resets its store's revision during a restore), and etcd before 3.5.8 could send
  watch answers that go back in time. These answers are never compared. Their revisions are
  real, though (a member applies only committed entries), so they raise the mark that later
  linearizable answers must reach.
- After a loss, or the operator's override, the guard adopts the new history. Answers to
  requests sent before that may come from either history: they are not compared.

On a loss every session on the client ends (reason ``etcd_history_lost``), the highest revision
seen before becomes the *floor*, and an election refuses to lead with a token at or below it.
A token file keeps the floor across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import _clock, _metrics
from .._errors import ConfigurationError, EtcdElectorError
from .._log import log_event
from . import _rpc
from ._token_file import TokenFile, TokenRecord

__all__ = ["Expectation", "HistoryGuard", "HistoryLoss", "is_linearizable"]

log = logging.getLogger(__name__)

Listener = Callable[["HistoryLoss"], None]
Probe = Callable[[float], Awaitable[object]]

# Requests etcd serves through raft (writes, lease grant and revoke, compaction).
_THROUGH_RAFT = frozenset(
    method.path
    for method in (_rpc.PUT, _rpc.DELETE_RANGE, _rpc.LEASE_GRANT, _rpc.LEASE_REVOKE, _rpc.COMPACT)
)

REMEDY = (
    "restore with 'etcdutl snapshot restore --bump-revision 1000000000 --mark-compacted' "
    "(etcd 3.5.10+, or etcdctl 3.4.27+) so revisions pass the old ones, or, once every system "
    "that keeps the highest token has been reset, accept the new history "
    "(etcd-elector --accept-history-reset, or client.history.accept_reset())"
)


def is_linearizable(method: _rpc.Method, request: Any) -> bool:
    """Whether etcd's answer to ``request`` reflects every write committed before it was sent.

    A txn of serializable reads only (an empty txn too) is served from the member's local
    state, like a serializable range.
    """
    if method is _rpc.RANGE:
        return not request.serializable
    if method is _rpc.TXN:
        for branch in (request.success, request.failure):
            for op in branch:  # a write, usually the first op, settles it
                if op.WhichOneof("request") != "request_range" or not op.request_range.serializable:
                    return True
        return False
    return method.path in _THROUGH_RAFT


@dataclass(frozen=True)
class Expectation:
    """What a linearizable answer must at least show: taken when its request is sent."""

    epoch: int
    revision: int


@dataclass(frozen=True)
class HistoryLoss:
    """etcd's history went back: what had been seen, and what etcd answers now.

    ``kind`` is ``"revision_went_back"`` (a revision below one seen before: the data was wiped
    or restored from an older snapshot) or ``"cluster_id_changed"`` (another cluster answers,
    with revisions past the old ones, as after a restore with ``--bump-revision``). ``floor``
    is the token at or below which leadership is refused from now on. ``from_token_file`` says
    that ``previous_revision`` is what the token file recorded, not something this process saw.
    """

    kind: str
    previous_revision: int
    revision: int
    previous_cluster_id: int | None
    cluster_id: int
    floor: int
    endpoint: str | None = None
    from_token_file: bool = False
    detected_at: float = field(default_factory=_clock.now, compare=False)

    REVISION_WENT_BACK: ClassVar[str] = "revision_went_back"
    CLUSTER_ID_CHANGED: ClassVar[str] = "cluster_id_changed"

    @property
    def cluster_changed(self) -> bool:
        return self.previous_cluster_id is not None and self.previous_cluster_id != self.cluster_id

    def describe(self) -> str:
        """What changed, in one line: revisions, cluster ids and the endpoint."""
        seen = "recorded in the token file" if self.from_token_file else "seen before"
        if self.cluster_changed:
            ids = f"cluster id {self.previous_cluster_id:x} -> {self.cluster_id:x}"
        else:
            ids = f"same cluster id {self.cluster_id:x}"
        where = f" at {self.endpoint}" if self.endpoint else ""
        if self.kind == self.REVISION_WENT_BACK:
            return (
                f"etcd's revision went back from {self.previous_revision} ({seen}) to "
                f"{self.revision}{where} ({ids})"
            )
        return (
            f"etcd's cluster id changed{where} ({ids}); its revision {self.revision} did not "
            f"go back (highest {seen}: {self.previous_revision})"
        )


class HistoryGuard:
    """Checks every etcd answer of one client for a history that went back; see the module
    documentation for the rules. Reach it as ``client.history``.

    ``token_file`` keeps the highest token this process knows of across restarts (a small JSON
    file, written atomically, read at start): a restarted process then refuses a token that
    went back too. Methods are safe to call from any thread.

    :raises ConfigurationError: if ``token_file`` cannot be read, is not a token file, or its
        directory is not writable.
    """

    def __init__(self, token_file: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._revision = 0  # the highest revision seen in the current history
        self._cluster_id: int | None = None
        self._floor = 0  # tokens at or below are refused
        self._highest_token = 0  # our own keys' create revisions
        self._from_file = False  # _revision is what a token file said, nothing seen yet
        self._last_loss: HistoryLoss | None = None
        self._listeners: list[Listener] = []
        self._probe: Probe | None = None
        self._file = TokenFile(token_file) if token_file is not None else None
        if self._file is not None:
            self._file.check_writable()
            self._learn(self._file.read())

    def __repr__(self) -> str:
        return f"<HistoryGuard revision={self._revision} floor={self._floor}>"

    # -- state ---------------------------------------------------------------------------------

    @property
    def floor(self) -> int:
        """Leadership with a token at or below this is refused (0 until etcd lost history,
        or the token file's value)."""
        return self._floor

    @property
    def revision(self) -> int:
        """The highest revision seen in etcd's current history."""
        return self._revision

    @property
    def cluster_id(self) -> int | None:
        """The id of the etcd cluster answering (``None`` before the first answer)."""
        return self._cluster_id

    @property
    def last_loss(self) -> HistoryLoss | None:
        """The last history loss seen by this client, if any."""
        return self._last_loss

    @property
    def token_file(self) -> Path | None:
        """The token file kept up to date, if any."""
        return None if self._file is None else self._file.path

    def token_allowed(self, token: int) -> bool:
        """Whether ``token`` is above the floor (safe to announce)."""
        return token > self._floor

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(loss)`` on every history loss (on the event loop, at once); returns
        a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    # -- what the file says --------------------------------------------------------------------

    def load(self, path: str | os.PathLike[str]) -> None:
        """Learn the highest token a token file recorded, without keeping the file up to date
        (for observers: ``observe`` and ``status``).

        :raises ConfigurationError: if it cannot be read, is not a token file, or its
            directory does not exist (a file that does not exist yet is fine).
        """
        file = TokenFile(path)
        file.check_path()
        self._learn(file.read())

    def _learn(self, record: TokenRecord | None) -> None:
        if record is None:
            return
        with self._lock:
            self._floor = max(self._floor, record.highest_token)
            if record.highest_token > self._revision:
                self._revision, self._from_file = record.highest_token, True
            if self._cluster_id is None:
                self._cluster_id = record.cluster_id

    # -- checking answers ------------------------------------------------------------------------

    def expect(self) -> Expectation:
        """Take before sending a linearizable request; pass to :meth:`check` with its answer."""
        with self._lock:
            return Expectation(self._epoch, self._revision)

    def check(self, header: Any, expected: Expectation | None, *, endpoint: object) -> None:
        """Check one answer's header. ``expected`` is ``None`` for an answer that may lag (see
        the module documentation): only its cluster id is compared. ``endpoint`` (where the
        answer came from) is made text only for a loss."""
        revision, cluster_id = int(header.revision), int(header.cluster_id)
        if revision <= 0 or cluster_id == 0:
            return  # no header
        with self._lock:
            if expected is not None and expected.epoch != self._epoch:
                return  # sent before the guard adopted a new history
            went_back = expected is not None and revision < expected.revision
            changed = self._cluster_id is not None and cluster_id != self._cluster_id
            if not (went_back or changed):
                if revision > self._revision:
                    self._revision, self._from_file = revision, False
                if self._cluster_id is None:
                    self._cluster_id = cluster_id
                return
            previous = self._revision
            loss = HistoryLoss(
                kind=(
                    HistoryLoss.REVISION_WENT_BACK
                    if revision < previous
                    else HistoryLoss.CLUSTER_ID_CHANGED
                ),
                previous_revision=previous,
                revision=revision,
                previous_cluster_id=self._cluster_id,
                cluster_id=cluster_id,
                floor=max(self._floor, previous),
                endpoint=None if endpoint is None else str(endpoint),
                from_token_file=self._from_file,
            )
            self._floor = loss.floor
            self._epoch += 1
            self._revision, self._cluster_id, self._from_file = revision, cluster_id, False
            self._last_loss = loss
            listeners = list(self._listeners)
        self._report(loss, listeners)

    def _report(self, loss: HistoryLoss, listeners: list[Listener]) -> None:
        self._persist_now(loss.floor, loss.cluster_id)
        seen = "recorded in the token file" if loss.from_token_file else "seen before"
        if loss.kind == HistoryLoss.REVISION_WENT_BACK:
            message = (
                f"etcd history lost: its revision went back below the highest {seen}, so its "
                "data was wiped or restored from an older snapshot. Every session on this "
                "client ended (etcd_history_lost); the revisions above the current one will be "
                "issued again, so leadership with a fencing token at or below the floor is "
                "refused"
            )
            remedy: str | None = f"remedy: {REMEDY}"
        else:
            message = (
                "etcd history changed: another etcd cluster answers (restored with a new "
                "cluster token, or the endpoints reach another cluster). Every session on this "
                "client ended (etcd_history_lost); tokens remain above the floor, so campaigns "
                "go on"
            )
            remedy = None
        previous_cluster = loss.previous_cluster_id
        log_event(
            log,
            logging.ERROR,
            message,
            revision=loss.revision,
            previous_revision=loss.previous_revision,
            cluster_id=f"{loss.cluster_id:x}",
            previous_cluster_id=None if previous_cluster is None else f"{previous_cluster:x}",
            endpoint=loss.endpoint,
            floor=loss.floor,
            detail=remedy,
        )
        _metrics.sink().history_lost(loss.kind)
        for listener in listeners:
            try:
                listener(loss)
            except Exception:
                log.exception("history loss listener %r failed", listener)

    # -- tokens and the override ------------------------------------------------------------------

    async def record_token(self, token: int) -> None:
        """Remember ``token`` (one of our keys' create revisions) in the token file, before
        anyone can act on it. A failed write is logged, not raised."""
        with self._lock:
            if token <= self._highest_token:
                return
            self._highest_token = token
            value, cluster = max(token, self._floor), self._cluster_id
        if self._file is not None:
            await asyncio.to_thread(self._persist_now, value, cluster)

    def _persist_now(self, token: int, cluster_id: int | None) -> None:
        if self._file is None:
            return
        try:
            self._file.raise_to(token, cluster_id)
        except (OSError, ConfigurationError) as exc:
            log_event(
                log,
                logging.ERROR,
                "cannot write the token file: a restarted process would not know the token",
                token_file=str(self._file.path),
                token=token,
                detail=exc,
            )

    def accept_reset(self) -> int:
        """The operator's override: accept etcd's current history as it is, dropping the
        floor (here and in the token file), so that its tokens can lead again. Do this only
        once every outside system that keeps the highest token it saw has been reset too.

        Returns the floor that was dropped.

        :raises OSError: if the token file cannot be written.
        """
        with self._lock:
            dropped = self._floor
            self._floor = self._highest_token = self._revision = 0
            self._cluster_id, self._from_file = None, False
            self._epoch += 1
        if self._file is not None:
            self._file.reset(TokenRecord(0, None))
        log_event(
            log,
            logging.WARNING,
            "accepted etcd's current history: fencing tokens at or below the floor are no "
            "longer refused; outside systems that keep the highest token must be reset too",
            floor=dropped,
        )
        return dropped

    # -- confirming ------------------------------------------------------------------------------

    def set_probe(self, probe: Probe) -> None:
        """How :meth:`confirm` asks etcd: one linearizable read, with a timeout in seconds."""
        self._probe = probe

    async def confirm(self, timeout: float) -> None:
        """Ask etcd once with a linearizable read, so that a history loss shows now (used when
        a lease is found gone: that is also what a wiped etcd answers). Errors are ignored."""
        if self._probe is None:
            return
        try:
            await self._probe(timeout)
        except EtcdElectorError as exc:
            log.debug("history probe failed: %s", exc)

    async def close(self) -> None:
        """Record the highest revision seen in the token file (every later token must pass
        it), so a process that never led still remembers."""
        with self._lock:
            value = max(self._revision, self._floor, self._highest_token)
            cluster = self._cluster_id
        if self._file is not None and value > 0:
            await asyncio.to_thread(self._persist_now, value, cluster)
