"""The shard plan (pure logic) and the group's key layout and records.

The plan decides balance and movement; safety never depends on it. These tests play out
joins, leaves and crashes on the plan alone and count what moves.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from etcd_elector import ConfigurationError
from etcd_elector._election._names import election_prefix, validate_name
from etcd_elector.shards import GroupKeys, MemberInfo, plan, quotas, shard_names


def settle(
    shards: tuple[str, ...], weights: dict[int, int], owners: dict[str, int], rng: random.Random
) -> tuple[dict[str, int], int]:
    """Apply the plan as replicas would: from each state, a random part of the moves it asks
    for (a release, or a claim of a free shard) happens before the plan is computed again,
    until nothing moves. Returns the final owners and how many shards changed hands."""
    owners = dict(owners)
    moved: set[str] = set()
    for _ in range(10 * len(shards) + 10):
        target = plan(shards, weights, owners)
        steps = [s for s in shards if owners.get(s) != target[s]]
        if not steps:
            return owners, len(moved)
        for shard in rng.sample(steps, max(1, len(steps) // rng.randint(1, 4))):
            if shard in owners:  # release first (the owner left, died, or is over quota)
                del owners[shard]
                moved.add(shard)
            else:
                wanted = target[shard]
                assert wanted is not None
                owners[shard] = wanted
    pytest.fail("the plan did not converge")


def counts(owners: dict[str, int], members: dict[int, int]) -> list[int]:
    tally = Counter(owners.values())
    return [tally[m] for m in members]


@pytest.mark.parametrize(("replicas", "total"), [(1, 1), (3, 64), (5, 64), (10, 1000), (7, 3)])
def test_equal_weights_balance_within_one(replicas: int, total: int) -> None:
    shards = shard_names(total)
    members = {100 + i: 1 for i in range(replicas)}
    owners, _ = settle(shards, members, {}, random.Random(1))
    assert len(owners) == total
    per_member = counts(owners, members)
    assert max(per_member) - min(per_member) <= 1


def test_weights_are_followed_within_one() -> None:
    shards = shard_names(100)
    members = {1: 1, 2: 2, 3: 5}
    owners, _ = settle(shards, members, {}, random.Random(2))
    for member, weight in members.items():
        ideal = 100 * weight / 8
        assert abs(Counter(owners.values())[member] - ideal) < 1


@pytest.mark.parametrize(("replicas", "total", "seed"), [(3, 64, 1), (5, 64, 2), (10, 1000, 3)])
def test_a_join_moves_only_what_the_newcomer_needs(replicas: int, total: int, seed: int) -> None:
    rng = random.Random(seed)
    shards = shard_names(total)
    members = {100 + i: 1 for i in range(replicas)}
    before, _ = settle(shards, members, {}, rng)
    members[999] = 1
    after, moved = settle(shards, members, before, rng)
    assert moved == Counter(after.values())[999] <= math.ceil(total / (replicas + 1))
    assert all(after[s] == before[s] for s in shards if after[s] != 999)


@pytest.mark.parametrize("crash", [False, True])
def test_a_leave_or_crash_moves_only_the_leavers_shards(crash: bool) -> None:
    rng = random.Random(4)
    shards = shard_names(64)
    members = {100 + i: 1 for i in range(5)}
    before, _ = settle(shards, members, {}, rng)
    del members[102]
    # A graceful leaver still owns its shards when the others stop counting it (its member
    # key goes first); a crashed one's keys vanish with its membership.
    start = before if not crash else {s: o for s, o in before.items() if o != 102}
    after, moved = settle(shards, members, start, rng)
    leaver = [s for s in shards if before[s] == 102]
    assert sorted(s for s in shards if after[s] != before[s]) == sorted(leaver)
    assert moved == (len(leaver) if not crash else 0)  # a crash releases nothing itself
    per_member = counts(after, members)
    assert max(per_member) - min(per_member) <= 1


def test_random_histories_always_converge_balanced() -> None:
    rng = random.Random(5)
    shards = shard_names(37)
    members: dict[int, int] = {}
    owners: dict[str, int] = {}
    next_lease = 1
    for _ in range(60):
        if len(members) < 2 or rng.random() < 0.5:
            members[next_lease] = 1
            next_lease += 1
        else:
            gone = rng.choice(sorted(members))
            del members[gone]
            owners = {s: o for s, o in owners.items() if o != gone or rng.random() < 0.5}
        owners, _ = settle(shards, members, owners, rng)
        per_member = counts(owners, members)
        assert len(owners) == len(shards)
        assert max(per_member) - min(per_member) <= 1


def test_quotas_add_up_and_prefer_who_already_holds_the_extra() -> None:
    assert sum(quotas(10, {1: 1, 2: 1, 3: 1}, {}).values()) == 10
    # Member 3 already owns 4 of 10: it keeps the one extra slot; nobody else moves.
    assert quotas(10, {1: 1, 2: 1, 3: 1}, {1: 3, 2: 3, 3: 4}) == {1: 3, 2: 3, 3: 4}
    assert quotas(5, {}, {}) == {}


def test_owners_that_are_not_members_are_reassigned() -> None:
    shards = shard_names(4)
    target = plan(shards, {7: 1}, {"0": 99, "1": 7})
    assert target == {"0": 7, "1": 7, "2": 7, "3": 7}
    assert plan(shards, {}, {"0": 99}) == dict.fromkeys(shards)


def test_shard_names_are_validated() -> None:
    assert shard_names(3) == ("0", "1", "2")
    assert shard_names(["eu", "us"]) == ("eu", "us")
    for bad in (0, -1, True, "abc", ["a", "a"], ["a/b"], [""], [" a"], 10**6):
        with pytest.raises(ConfigurationError):
            shard_names(bad)


def test_member_records_from_etcd_are_untrusted() -> None:
    good = MemberInfo(1, "host:1", 2, shard_names(8), 5)
    assert MemberInfo.decode(1, 5, good.encode()) == good
    named = MemberInfo(1, "x", 1, ("eu", "us"), 5)
    assert MemberInfo.decode(1, 5, named.encode()) == named
    for value in (b"", b"\xff", b"[]", b'{"identity": 1, "weight": 1, "shards": 2}',
                  b'{"identity": "a", "weight": 0, "shards": 2}',
                  b'{"identity": "a", "weight": 1, "shards": "2"}',
                  b'{"identity": "a", "weight": 1, "shards": ["a/b"]}'):  # fmt: skip
        assert MemberInfo.decode(1, 5, value) is None
    long = MemberInfo(1, "y" * 10_000, 1, ("a",), 1)
    decoded = MemberInfo.decode(1, 1, long.encode())
    assert decoded is not None and len(decoded.identity) <= 200


@pytest.mark.parametrize("namespace", ["/etcd-elector", "/apps/x", "/"])
def test_group_keys_are_never_under_an_election_prefix(namespace: str) -> None:
    keys = GroupKeys(namespace, "orders")
    # An election's prefix is <namespace>/<name>/; the group's segment is not a valid name,
    # so no election of the namespace (and no election named like the group) covers our keys.
    segment = keys.base[len(keys.namespace) + 1 :].split("/")[0]
    with pytest.raises(ConfigurationError):
        validate_name(segment)
    for name in ("orders", "shards", "_shards", "m", "o"):
        prefix = election_prefix(namespace, name).decode()
        assert not keys.member(0xABC).startswith(prefix)
        assert not keys.owner("7").startswith(prefix)
    assert keys.member_lease(keys.member(0xABC).encode()) == 0xABC
    assert keys.member_lease((keys.members + "zz").encode()) is None
    assert keys.owner_shard(keys.owner("7").encode()) == "7"
    assert keys.owner_shard((keys.owners + "a/b").encode()) is None


def test_group_names_are_validated() -> None:
    for bad in ("", "a/b", " a", "x" * 300, 5):
        with pytest.raises(ConfigurationError):
            GroupKeys("/etcd-elector", bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        GroupKeys("/a//b", "g")
