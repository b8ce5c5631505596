"""Handing leadership to a chosen successor, as an election does it: read the plan while the
term holds, end the term, then one fenced transaction (:mod:`._handoff`); and, for a
candidate, whether a handoff took its key out of the queue. Part of :class:`AsyncElection`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .._errors import EtcdElectorError
from .._keys import KeyLike, as_bytes
from .._reasons import EndReason
from ._handoff import NoPlan, Plan, Successor, hand_off_txn, plan_handoff
from ._moves import HandoffRecord, MoveKeys
from ._names import candidate_key
from ._view import AsyncElectionView, LeaderInfo

if TYPE_CHECKING:
    from ..etcd._client import AsyncEtcdClient
    from ._session import AsyncSession
    from ._term import Term

__all__ = ["HandingOff"]


class HandingOff:
    """The handoff of :class:`AsyncElection`, which provides what is declared here."""

    if TYPE_CHECKING:
        session: AsyncSession
        name: str
        namespace: str
        view: AsyncElectionView
        moves: MoveKeys
        _client: AsyncEtcdClient
        _lock: asyncio.Lock
        _key: bytes | None

        def check(self) -> Term: ...
        def _end_term(self, reason: EndReason, term: Term | None = None) -> None: ...
        async def _stop_guards(self) -> None: ...
        async def _delete_key(self, key: bytes, token: int | None) -> None: ...
        def _event(self, level: int, message: str, /, **fields: Any) -> None: ...

    async def hand_off(self, to: KeyLike | None = None) -> LeaderInfo | None:
        """Give up leadership to a chosen successor: the candidate whose value is ``to``
        (the first of them in queue order), or without ``to`` the first candidate of the
        highest priority (the next in line when nobody declared one). One fenced transaction
        deletes our key and those queued ahead of the successor (they queue again, behind
        it), so the successor leads next and the lowest create revision still leads. With no
        such candidate (gone, or died meanwhile) it is a plain resign: the next in line leads.
        Returns the successor, or ``None`` after a plain resign.

        The term ends (reason ``handed_off``) before etcd is asked. This does not drain the
        work: an elector's ``term.hand_off()`` does (stops the work, then calls this).

        :raises NotLeader: if we do not lead.
        """
        wanted = None if to is None else as_bytes(to)
        async with self._lock:
            term = self.check()
            key, token = term.key.encode(), term.token
            plan: Plan | NoPlan
            outcome: Successor | NoPlan
            try:
                # Read while the term still holds: the leaderless gap is the txn alone.
                plan = await plan_handoff(self.view, self.moves, term, wanted)
            except EtcdElectorError as exc:  # a plain resign then
                plan = NoPlan(f"cannot read the candidates: {exc}")
            self._end_term(EndReason.HANDED_OFF)
            await self._stop_guards()
            try:
                outcome = await hand_off_txn(self.view, self.moves, term, wanted, plan)
            except EtcdElectorError as exc:  # ambiguous, unreachable, refused: resign
                outcome = NoPlan(f"the handoff failed: {exc}")
            if isinstance(outcome, NoPlan):
                await self._delete_key(key, token)  # guarded: a no-op if it went already
            self._key = None
        if isinstance(outcome, NoPlan):
            self._event(logging.INFO, "no handoff, resigned", key=key, detail=outcome.why)
            return None
        successor = outcome
        self._event(
            logging.INFO,
            "handed off",
            key=key,
            token=token,
            successor=successor.candidate.key,
            successor_lease=successor.candidate.lease_hex,
            requeued=successor.requeued,
        )
        return successor.candidate

    async def _requeue_asked(self, token: int) -> bool:
        """Whether the last handoff took our key (created at ``token``) out of the queue."""
        found = (await self._client.get(self.moves.record)).kv
        record = HandoffRecord.decode(found.value) if found is not None else None
        key = candidate_key(self.namespace, self.name, self.session.lease_id).decode()
        return record is not None and record.asks_to_requeue(key, token)
