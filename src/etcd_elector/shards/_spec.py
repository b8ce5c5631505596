"""A shard group's fixed facts: its name, its shards, and where its keys live in etcd.

Keys live under ``<namespace>/#shards/<group>/``: an election's name cannot contain ``#``, so no
election's prefix (``<namespace>/<name>/``, where Go's ``etcdctl elect -l`` would count every key
as a candidate) can contain a shard group's keys, and no group's prefix contains an election's.

    <namespace>/#shards/<group>/m/<lease hex>   a member: JSON {identity, weight, shards}
    <namespace>/#shards/<group>/o/<shard>       a shard's owner: the owner's identity

Both are bound to the replica's lease, so a dead replica's membership and ownerships vanish
together, in one revision, when etcd expires its lease.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .._election._names import validate_namespace
from .._errors import ConfigurationError

__all__ = [
    "GROUP_SEGMENT",
    "MAX_SHARDS",
    "MAX_WEIGHT",
    "GroupKeys",
    "MemberInfo",
    "shard_names",
    "validate_group",
    "validate_weight",
]

GROUP_SEGMENT = "#shards"  # '#' is not allowed in election names
MAX_SHARDS = 10_000
MAX_WEIGHT = 1_000
MAX_NAME_LENGTH = 200
MAX_IDENTITY_LENGTH = 200
_NAME = re.compile(r"^[A-Za-z0-9_.:@=+-][A-Za-z0-9_.:@=+ -]*$")
_LEASE_HEX = re.compile(r"^[0-9a-f]{1,16}$")


def _check_name(what: str, name: object) -> str:
    if not isinstance(name, str):
        raise ConfigurationError(f"{what} must be a string, got {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(f"{what} must have 1 to {MAX_NAME_LENGTH} characters")
    if "/" in name or not _NAME.match(name) or name != name.strip():
        raise ConfigurationError(
            f"{what} {name!r} is malformed: use letters, digits and _ . : @ = + - "
            "(no '/', no leading or trailing spaces)"
        )
    return name


def validate_group(name: object) -> str:
    """Return ``name`` if it is a usable group name, else raise ``ConfigurationError``."""
    return _check_name("shard group name", name)


def validate_weight(weight: object) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise ConfigurationError(f"weight must be a whole number from 1 to {MAX_WEIGHT}")
    return weight


def shard_names(shards: int | Sequence[str]) -> tuple[str, ...]:
    """``64`` means shards ``"0"`` .. ``"63"``; a list names them (unique, no ``/``).

    :raises ConfigurationError: for a count out of range or a bad or repeated name.
    """
    if isinstance(shards, bool):
        raise ConfigurationError("shards must be a count or a list of shard names")
    if isinstance(shards, int):
        if not 1 <= shards <= MAX_SHARDS:
            raise ConfigurationError(f"the shard count must be 1 to {MAX_SHARDS}, got {shards}")
        return tuple(str(i) for i in range(shards))
    if isinstance(shards, str):
        raise ConfigurationError("shards must be a count or a list of names, not one string")
    names = tuple(_check_name("shard name", name) for name in shards)
    if not 1 <= len(names) <= MAX_SHARDS:
        raise ConfigurationError(f"a group has 1 to {MAX_SHARDS} shards, got {len(names)}")
    if len(set(names)) != len(names):
        raise ConfigurationError("shard names must be unique")
    return names


@dataclass(frozen=True)
class MemberInfo:
    """A live replica of the group, as its member key says."""

    lease: int
    identity: str
    weight: int
    shards: tuple[str, ...]
    token: int  # the member key's create revision: when it joined

    @property
    def lease_hex(self) -> str:
        return f"{self.lease:x}"

    def encode(self) -> bytes:
        """The member key's value; numbered shards are stored as their count."""
        numbered = self.shards == tuple(str(i) for i in range(len(self.shards)))
        spec: int | list[str] = len(self.shards) if numbered else list(self.shards)
        record = {"identity": self.identity, "weight": self.weight, "shards": spec}
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def decode(cls, lease: int, token: int, value: bytes) -> MemberInfo | None:
        """``None`` for a value that is not a member record (etcd's data is untrusted)."""
        try:
            data = json.loads(value)
            identity, weight, spec = data["identity"], data["weight"], data["shards"]
            if not isinstance(identity, str) or not isinstance(spec, int | list):
                return None
            return cls(
                lease,
                identity[:MAX_IDENTITY_LENGTH],
                validate_weight(weight),
                shard_names(spec),
                token,
            )
        except (ValueError, TypeError, KeyError, ConfigurationError):
            return None


class GroupKeys:
    """The key layout of one group."""

    def __init__(self, namespace: str, group: str) -> None:
        self.namespace = validate_namespace(namespace).rstrip("/")  # the root: ""
        self.group = validate_group(group)
        self.base = f"{self.namespace}/{GROUP_SEGMENT}/{self.group}/"
        self.members = self.base + "m/"
        self.owners = self.base + "o/"

    def member(self, lease: int) -> str:
        return f"{self.members}{lease:x}"

    def owner(self, shard: str) -> str:
        return self.owners + shard

    def member_lease(self, key: bytes) -> int | None:
        """The lease id a member key names, or ``None`` for any other key."""
        text = key.decode(errors="replace")
        if not text.startswith(self.members):
            return None
        tail = text[len(self.members) :]
        return int(tail, 16) if _LEASE_HEX.match(tail) else None

    def owner_shard(self, key: bytes) -> str | None:
        """The shard an owner key names, or ``None`` for any other key."""
        text = key.decode(errors="replace")
        if not text.startswith(self.owners):
            return None
        shard = text[len(self.owners) :]
        return shard if shard and "/" not in shard else None
