"""Who should own which shard: a pure function of the members and the current owners.

Every replica computes the same plan from the same state (the state at one etcd revision), so
the plan needs no coordinator and no extra writes. It is *sticky*: a member keeps what it owns
up to its quota, and only the shards above a quota, or owned by no live member, move. Moving a
shard the way the plan says never changes the rest of the plan, so a rebalance converges.

Quotas follow the weights within one shard: member ``m`` gets ``floor(P * w_m / W)``, and the
``P - sum(floors)`` shards left over go one each to members ranked by (already owns more than
its floor, larger remainder, older lease). The plan says nothing about safety: ownership is a
compare-and-swap on the owner key, whatever the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["moves", "plan", "quotas"]


def quotas(total: int, weights: Mapping[int, int], owned: Mapping[int, int]) -> dict[int, int]:
    """How many shards each member (by lease) should own; they add up to ``total``."""
    if not weights:
        return {}
    weight_sum = sum(weights.values())
    floors = {m: total * w // weight_sum for m, w in weights.items()}
    remainders = {m: total * w % weight_sum for m, w in weights.items()}
    extra = total - sum(floors.values())
    ranked = sorted(weights, key=lambda m: (owned.get(m, 0) <= floors[m], -remainders[m], m))
    chosen = set(ranked[:extra])
    return {m: floors[m] + (1 if m in chosen else 0) for m in weights}


def plan(
    shards: Sequence[str], weights: Mapping[int, int], owners: Mapping[str, int]
) -> dict[str, int | None]:
    """The target owner (a member's lease) of every shard, or ``None`` with no members.

    ``owners`` maps a shard to its current owner's lease; owners that are not members (a
    replica that left or died, its key not yet gone) count as owning nothing.
    """
    owned_by: dict[int, list[str]] = {m: [] for m in weights}
    for shard in shards:
        owner = owners.get(shard)
        if owner in owned_by:
            owned_by[owner].append(shard)
    quota = quotas(len(shards), weights, {m: len(s) for m, s in owned_by.items()})
    target: dict[str, int | None] = dict.fromkeys(shards)
    for member, held in owned_by.items():
        for shard in held[: quota[member]]:
            target[shard] = member
    pool = iter([s for s in shards if target[s] is None])
    for member in sorted(weights):
        for _ in range(quota[member] - min(len(owned_by[member]), quota[member])):
            target[next(pool)] = member
    return target


def moves(target: Mapping[str, int | None], owners: Mapping[str, int]) -> dict[str, int | None]:
    """Shards whose owner is not their target: shard -> target."""
    return {s: t for s, t in target.items() if owners.get(s) != t}
