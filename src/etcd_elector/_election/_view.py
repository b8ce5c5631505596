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
from .._errors import TransportError, WatchError
from .._log import log_event
from ..etcd._history_guard import HistoryLoss
from ..etcd._txn import Op
from ..etcd._types import Event, EventType, KeyValue
from ._leader import PAGE, LeaderInfo, first_candidate, nearest_reads
from ._names import (
    DEFAULT_NAMESPACE,
    election_prefix,
    is_candidate_key,
    validate_name,
    validate_namespace,
)
from ._observe import EtcdReachable, EtcdUnreachable, LeaderObserved, ObservationEvent

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
        skipped (the rule of :func:`nearest_reads`, driven here over the client)."""
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
            found: tuple[KeyValue, int] | None = done.value
        return found

    async def standing(self, token: int) -> Standing:
        """Where the candidate created at ``token`` stands, in one linearizable read (a
        transaction of two reads at one revision): the first candidate, and the nearest one
        created before ``token``."""
        page = PAGE
        ops = [
            Op.get(self.prefix, prefix=True, limit=page, sort_by_create_revision=True),
            Op.get(
                self.prefix,
                prefix=True,
                limit=page,
                sort_by_create_revision=True,
                descending=True,
                max_create_revision=token - 1,
            ),
        ]
        result = await self.client.txn([], ops)
        revision = result.revision
        found: list[KeyValue | None] = []
        for read, descending in zip(result.responses, (False, True), strict=True):
            kv = first_candidate(self.prefix, read)
            if kv is None and read.more:
                # A page of keys that are not candidates (rare): read on at the same revision.
                bound = token - 1 if descending else 0
                rest = await self.nearest(
                    descending=descending, max_create_revision=bound, revision=revision
                )
                kv = rest[0] if rest is not None else None
            found.append(kv)
        return Standing(first=found[0], predecessor=found[1], revision=revision)

    async def observe(self) -> AsyncIterator[LeaderInfo | None]:
        """Yield the current leader (or ``None``) at once, then every change.

        Reads first, then watches from the read's revision + 1, so nothing is missed. Survives
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
                try:
                    current, revision = await self._read_leader()
                except TransportError as exc:
                    if not exc.retriable:
                        raise
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
                    await backoff.sleep()
                    continue
                trouble = None
                if outage is not None:
                    yield EtcdReachable(since=outage, outage=_clock.now() - outage)
                    outage, restate = None, True
                while losses:
                    yield losses.pop(0)
                    restate = True
                if current != last or restate:
                    yield LeaderObserved(current, restated=current == last)
                    last, restate = current, False
                try:
                    async with self.client.watch(
                        self.prefix, prefix=True, start_revision=revision + 1
                    ) as watch:
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
                    trouble = trouble if trouble is not None else _clock.now()
                    log.info("observe election=%s: %s; reading again", self.name, exc)
                    await backoff.sleep()
        finally:
            stop_listening()

    async def _read_leader(self) -> tuple[LeaderInfo | None, int]:
        """The leader and the revision it was read at (to watch from)."""
        first = await self.nearest(descending=False)
        if first is not None:
            revision = first[1]
        else:
            # "Nobody" was read without a revision to watch from. Take one from a second read
            # and look again at exactly that revision: a candidate created between the two
            # reads is then seen here instead of silently skipped.
            revision = (await self.client.get(self.prefix)).revision
            first = await self.nearest(descending=False, revision=revision)
        return (LeaderInfo.from_kv(first[0]) if first else None), revision

    def _may_change_leader(self, last: object, event: Event) -> bool:
        if not is_candidate_key(self.prefix, event.kv.key):
            return False
        if not isinstance(last, LeaderInfo):
            return event.type is EventType.PUT
        return event.kv.key.decode(errors="replace") == last.key


_UNSET = object()
