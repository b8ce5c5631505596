"""``AsyncElectionView``: read-only access to an election's candidates: leader, list, observe.

Needs no session, so observers, the CLI's ``leader``/``status``/``observe`` and the elector's
leader-change callbacks all share this one implementation. ``observe_events`` is the one
observation loop (reads, watches, retries, outages, history losses); ``observe`` keeps only
its leader changes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import _clock
from .._backoff import Backoff
from .._bounded import bounded
from .._errors import ConnectionFailed, RequestTimeout, TransportError, WatchError
from .._log import log_event
from ..etcd._history_guard import HistoryLoss
from ..etcd._types import Event, EventType, KeyValue
from ..etcd._watched_read import watched_read
from ._leader import LeaderInfo, nearest_reads
from ._moves import MoveKeys, Pause
from ._names import (
    DEFAULT_NAMESPACE,
    election_prefix,
    is_candidate_key,
    validate_name,
    validate_namespace,
)
from ._observe import EtcdReachable, EtcdUnreachable, LeaderObserved, ObservationEvent
from ._requests import clear_pause, read_pause, request_handoff, set_pause

if TYPE_CHECKING:
    from ..etcd._client import AsyncEtcdClient

__all__ = ["AsyncElectionView", "LeaderInfo", "Standing"]

log = logging.getLogger(__name__)

_ERROR_CHARS = 300  # an error from etcd goes into events and logs: keep it bounded


@dataclass(frozen=True)
class Standing:
    """One read of an election from a candidate's place in it, at ``revision``: the ``first``
    candidate, and the ``predecessor`` nearest before the candidate (``None``: there is none).
    """

    first: KeyValue | None
    predecessor: KeyValue | None
    revision: int


class AsyncElectionView:
    """Reads of one election: ``client.election_view("scheduler")``.

    :raises ConfigurationError: for a malformed name or namespace.
    """

    def __init__(
        self, client: AsyncEtcdClient, name: str, *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        self.client = client
        self.name = validate_name(name)
        self.namespace = validate_namespace(namespace)
        self.prefix = election_prefix(self.namespace, self.name)
        self.moves = MoveKeys(self.namespace, self.name)

    # -- planned moves anyone may ask for (no session needed) -------------------------------

    async def request_handoff(
        self, to: str | None = None, *, by: str | None = None
    ) -> LeaderInfo | None:
        """Ask the current leader to hand off: drained, then to the candidate whose value is
        ``to`` (normal order if it is gone), or without ``to`` to the next in line (the
        highest priority). The leader's elector carries it out; a request for a leader that
        is gone by then is ignored. Returns the leader asked, or ``None`` (nothing written)
        when nobody leads.

        :param by: who asks, for logs and events (default: ``hostname:pid``).
        """
        current = await self.leader()
        if current is None:
            return None
        await request_handoff(self.client, self.moves, current.token, to, by)
        return current

    async def pause(self, reason: str | None = None, *, by: str | None = None) -> Pause:
        """Pause the election: the leader drains and steps down, and no candidate leads (nor
        holds a key: ``etcdctl elect -l`` shows none) until :meth:`resume`. Candidates stay
        and say they are paused. Electors of releases before planned moves ignore it."""
        return await set_pause(self.client, self.moves, reason, by)

    async def resume(self) -> bool:
        """Lift a pause; ``True`` if the election was paused."""
        return await clear_pause(self.client, self.moves)

    async def paused(self) -> Pause | None:
        """The pause in force (who, why, since when), or ``None``."""
        return await read_pause(self.client, self.moves)

    async def leader(self) -> LeaderInfo | None:
        """The current leader, read linearizably, or ``None`` if nobody leads."""
        first = await self.nearest(descending=False)
        return LeaderInfo.from_kv(first[0]) if first is not None else None

    async def candidates(self) -> tuple[LeaderInfo, ...]:
        """Every candidate in election order (the leader first)."""
        result = await self.client.get_prefix(self.prefix, sort_by_create_revision=True)
        return tuple(
            LeaderInfo.from_kv(kv) for kv in result.kvs if is_candidate_key(self.prefix, kv.key)
        )

    async def nearest(
        self, *, descending: bool, max_create_revision: int = 0, revision: int = 0
    ) -> tuple[KeyValue, int] | None:
        """The first candidate by create revision (lowest, or highest at or below a bound),
        with the revision of the read. Keys under the prefix that are not candidates are
        skipped."""
        kv, read_at = await self._nearest(descending, max_create_revision, revision)
        return None if kv is None else (kv, read_at)

    async def _nearest(
        self, descending: bool, max_create_revision: int = 0, revision: int = 0
    ) -> tuple[KeyValue | None, int]:
        """The rule of :func:`nearest_reads`, driven here over the client."""
        plan = nearest_reads(
            self.prefix,
            descending=descending,
            max_create_revision=max_create_revision,
            revision=revision,
        )
        try:
            step = next(plan)
            while True:
                result = await self.client.get_prefix(
                    self.prefix,
                    sort_by_create_revision=True,
                    descending=step.descending,
                    limit=step.limit,
                    max_create_revision=step.max_create_revision,
                    revision=step.revision,
                )
                step = plan.send(result)
        except StopIteration as done:
            found: tuple[KeyValue | None, int] = done.value
        return found

    async def standing(self, token: int) -> Standing:
        """Where the candidate created at ``token`` stands: the first candidate (a
        linearizable read) and, unless that is the candidate itself, the nearest one created
        before ``token``, read at the same revision. A successor that leads needs the first
        read alone.

        Plain reads, never a read-only transaction: etcd 3.5.0 to 3.5.4 crash when a
        read-only transaction is cancelled while it runs (etcd-io/etcd#14110), and a
        candidate's reads are cancelled whenever it stops or its deadline passes.
        """
        first, revision = await self._nearest(descending=False)
        if first is None or first.create_revision >= token:
            return Standing(first=first, predecessor=None, revision=revision)
        predecessor, _ = await self._nearest(
            descending=True, max_create_revision=token - 1, revision=revision
        )
        return Standing(first=first, predecessor=predecessor, revision=revision)

    async def observe(self) -> AsyncIterator[LeaderInfo | None]:
        """Yield the current leader (or ``None``) at once, then every change.

        Watches, then reads where the watch starts, so nothing is missed. Survives
        compaction, broken streams, endpoint changes and outages by reading and watching again;
        it never ends silently. Raises only for errors retrying cannot cure (``retriable`` is
        false: permissions, credentials). To also learn when etcd cannot be reached, or lost
        its history, use :meth:`observe_events`.
        """
        async for event in self.observe_events():
            if isinstance(event, LeaderObserved) and not event.restated:
                yield event.leader

    async def observe_events(self) -> AsyncIterator[ObservationEvent]:
        """Everything an observer learns, as typed events: :class:`LeaderObserved` (the
        leader at the start and after every change, and re-stated after an outage or a
        history loss), :class:`EtcdUnreachable` once when every endpoint fails (the observer
        is blind from then on), :class:`EtcdReachable` when etcd answers again, and
        :class:`HistoryLoss` when etcd's history went back (its data was wiped or restored).

        An outage is reported when a read fails after the client tried every endpoint: at
        once when etcd refuses connections, and within 1.5 x the stream timeout plus the call
        timeout (8 s at the defaults) when it goes silent. Raises only for errors retrying
        cannot cure (``retriable`` is false: permissions, credentials).
        """
        losses: list[HistoryLoss] = []
        stop_listening = self.client.history.add_listener(losses.append)
        try:
            last: object = _UNSET
            outage: float | None = None  # when the current outage began
            trouble: float | None = None  # first failure since the last good read
            restate = False
            backoff = Backoff(high=2.0)
            while True:
                read = False  # whether etcd answered the watch and the read
                try:
                    async with watched_read(self.client, self.prefix, self._read_leader) as (
                        current,
                        watch,
                    ):
                        read, trouble = True, None
                        if outage is not None:
                            yield EtcdReachable(since=outage, outage=_clock.now() - outage)
                            outage, restate = None, True
                        while losses:
                            yield losses.pop(0)
                            restate = True
                        if current != last or restate:
                            yield LeaderObserved(current, restated=current == last)
                            last, restate = current, False
                        backoff.reset()
                        async for batch in watch:
                            for event in batch.events:
                                if not self._may_change_leader(last, event):
                                    continue
                                found = await self.nearest(
                                    descending=False, revision=event.kv.mod_revision
                                )
                                leader = LeaderInfo.from_kv(found[0]) if found else None
                                if leader != last:
                                    last = leader
                                    yield LeaderObserved(leader)
                            if losses:
                                break  # a watch in a lost history: read and watch again
                except (WatchError, TransportError) as exc:
                    if not exc.retriable:
                        raise
                    if not read and isinstance(exc, (ConnectionFailed, RequestTimeout)):
                        if outage is None:
                            outage = trouble if trouble is not None else _clock.now()
                            error = bounded(str(exc), _ERROR_CHARS)
                            log_event(
                                log,
                                logging.INFO,
                                "observe: cannot reach etcd",
                                election=self.name,
                                detail=error,
                            )
                            known = last if isinstance(last, LeaderInfo) else None
                            yield EtcdUnreachable(since=outage, error=error, last_leader=known)
                    else:
                        trouble = trouble if trouble is not None else _clock.now()
                        log.info("observe election=%s: %s; reading again", self.name, exc)
                    await backoff.sleep()
        finally:
            stop_listening()

    async def _read_leader(self, revision: int) -> LeaderInfo | None:
        """The leader as of ``revision``, or ``None`` when nobody led then."""
        first, _ = await self._nearest(descending=False, revision=revision)
        return LeaderInfo.from_kv(first) if first is not None else None

    def _may_change_leader(self, last: object, event: Event) -> bool:
        if not is_candidate_key(self.prefix, event.kv.key):
            return False
        if not isinstance(last, LeaderInfo):
            return event.type is EventType.PUT
        return event.kv.key.decode(errors="replace") == last.key


_UNSET = object()
