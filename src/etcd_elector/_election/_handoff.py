"""Handing leadership to a chosen successor in one fenced transaction.

etcd's rule stays whole: the leader is the candidate with the lowest create revision (Go's
``etcdctl elect -l`` reads it so). To make a chosen candidate that, the leader deletes its own
key *and* the keys of the candidates queued ahead of the successor, in one transaction that
commits only while each of those keys (the leader's first: its term) is the one it read. The
successor's predecessor watch fires and it confirms as any next-in-line does; the candidates
taken out find their key deleted, read the handoff's record that names them, and queue again
(behind the successor). If anything moved meanwhile (a candidate died, the successor left)
the transaction fails, and it is tried again from a fresh read; without a successor the
caller resigns instead, which is the normal order.

Only candidates that declared themselves (a priority key on their lease, written with their
candidate key) are ever taken out of the queue: they know to queue again. Go's recipe (and a
candidate driving an election without an elector) would take its deleted key for a won
election, so a handoff that would have to pass such a candidate is a plain resign instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._tasks import all_results
from ..etcd._txn import Compare, Op
from ..etcd._types import KeyValue, RangeResult
from ._moves import DEFAULT_PRIORITY, HandoffRecord, MoveKeys, decode_priority
from ._names import is_candidate_key
from ._term import Term
from ._view import AsyncElectionView, LeaderInfo

__all__ = [
    "MAX_REQUEUED",
    "NoPlan",
    "Plan",
    "Successor",
    "choose_successor",
    "hand_off_txn",
    "plan_handoff",
]

#: Candidates a handoff may take out of the queue ahead of its successor: each costs two
#: operations of one transaction, and etcd's default limit is 128 operations.
MAX_REQUEUED = 50
_ATTEMPTS = 3


@dataclass(frozen=True)
class Successor:
    """Who a handoff made the next leader, and the candidates it asked to queue again."""

    candidate: LeaderInfo
    requeued: int


def _priorities(keys: MoveKeys, kvs: Sequence[KeyValue]) -> dict[int, int]:
    priorities: dict[int, int] = {}
    for kv in kvs:
        lease = keys.lease_of_priority(kv.key)
        priority = decode_priority(kv.value)
        if lease is not None and priority is not None:
            priorities[lease] = priority
    return priorities


def choose_successor(
    others: Sequence[LeaderInfo], priorities: Mapping[int, int], to: bytes | None
) -> LeaderInfo | None:
    """The candidate to hand off to, from ``others`` (queue order): the first whose value is
    ``to``; without ``to``, the first of the highest priority (a candidate that declared
    none has the default). ``None``: nobody fits (a named successor that is gone), or nobody
    may lead (priority 0)."""
    if to is not None:
        return next((c for c in others if c.value == to), None)
    best: LeaderInfo | None = None
    best_priority = 0
    for candidate in others:
        priority = priorities.get(candidate.lease_id, DEFAULT_PRIORITY)
        if priority > best_priority:
            best, best_priority = candidate, priority
    return best


@dataclass(frozen=True)
class Plan:
    """A handoff as read: the successor and the candidates queued ahead of it."""

    successor: LeaderInfo
    ahead: tuple[LeaderInfo, ...]


@dataclass(frozen=True)
class NoPlan:
    """Why there is nothing to hand off to (the caller resigns: the normal order)."""

    why: str


async def plan_handoff(
    view: AsyncElectionView, keys: MoveKeys, term: Term, to: bytes | None
) -> Plan | NoPlan:
    """Read who to hand off to: the candidates and the declared priorities (no write: safe
    while the term still holds, which keeps the leaderless gap to the transaction alone).

    Two plain reads side by side, never a read-only transaction (see
    :meth:`AsyncElectionView.standing`); if etcd moved on between them, the priorities are
    read again at the candidates' revision (a candidate declares its priority in the
    transaction that queues it: seen at two revisions, it could look as if it did not).
    """
    client = view.client
    found: RangeResult
    found, priorities = await all_results(
        client.get_prefix(view.prefix), client.get_prefix(keys.priorities)
    )
    if priorities.revision != found.revision:
        priorities = await client.get_prefix(keys.priorities, revision=found.revision)
    declared = _priorities(keys, priorities.kvs)
    candidates = sorted(
        (LeaderInfo.from_kv(kv) for kv in found.kvs if is_candidate_key(view.prefix, kv.key)),
        key=lambda c: c.token,
    )
    if not candidates or candidates[0].key != term.key or candidates[0].token != term.token:
        return NoPlan("we no longer lead")
    successor = choose_successor(candidates[1:], declared, to)
    if successor is None:
        return NoPlan("no such candidate" if to is not None else "no candidate may lead")
    ahead = tuple(c for c in candidates[1:] if c.token < successor.token)
    if len(ahead) > MAX_REQUEUED:
        return NoPlan(f"more than {MAX_REQUEUED} candidates queued ahead of the successor")
    unaware = [c for c in ahead if c.lease_id not in declared]
    if unaware:
        return NoPlan(
            f"{len(unaware)} candidate(s) ahead of the successor do not follow planned moves "
            f"(the first: lease {unaware[0].lease_hex})"
        )
    return Plan(successor, ahead)


async def hand_off_txn(
    view: AsyncElectionView, keys: MoveKeys, term: Term, to: bytes | None, plan: Plan | NoPlan
) -> Successor | NoPlan:
    """Delete our key (while it is ``term``'s) and those queued ahead of the successor of
    ``plan``, in one transaction; if anything moved since it was read, read again and retry.
    A :class:`NoPlan` if there is nobody to hand off to (the caller resigns).

    :raises TransportError: if etcd cannot be reached (the caller resigns, or the key
        expires with the lease).
    """
    own = term.key.encode()
    for attempt in range(_ATTEMPTS):
        if attempt:
            plan = await plan_handoff(view, keys, term, to)
        if isinstance(plan, NoPlan):
            return plan
        successor, ahead = plan.successor, plan.ahead
        compares = [
            Compare.create_revision(own) == term.token,
            Compare.create_revision(successor.key) == successor.token,
            *(Compare.create_revision(c.key) == c.token for c in ahead),
        ]
        success = [Op.delete(own), *(Op.delete(c.key) for c in ahead), Op.delete(keys.request)]
        if ahead:
            record = HandoffRecord(
                from_key=term.key,
                token=term.token,
                to_key=successor.key,
                to_token=successor.token,
                requeue=tuple((c.key, c.token) for c in ahead),
            )
            success.append(Op.put(keys.record, record.encode()))
        result = await view.client.txn(compares, success, [Op.get(own)])
        if result.succeeded:
            return Successor(successor, len(ahead))
        mine = result.responses[0].kvs
        if not mine or mine[0].create_revision != term.token:
            return NoPlan("our key went meanwhile")
    return NoPlan(f"the queue kept changing ({_ATTEMPTS} attempts)")
