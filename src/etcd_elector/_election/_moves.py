"""Planned moves' keys: a pause, a handoff request, a handoff's record, candidates' priorities.

They live beside the election, under ``<namespace>/<name>#moves/``: ``#`` is a character no
election name or namespace may contain, so these keys are never under any election's prefix
``<namespace>/<name>/``, and neither Go's recipe (``etcdctl elect -l`` reads the lowest create
revision under that prefix) nor another election can take them for candidates.

Their values are small JSON objects written by anyone with access, so they are read as
untrusted input: bounded, type-checked, and ignored (with ``None``) when malformed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .._bounded import bounded
from .._errors import ConfigurationError
from ._names import ROOT_NAMESPACE

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "HandoffRecord",
    "HandoffRequest",
    "MoveKeys",
    "Pause",
    "decode_priority",
    "validate_drain",
    "validate_priority",
]

#: A candidate that declares nothing (Go's, an older release's) has this priority.
DEFAULT_PRIORITY = 1
MAX_PRIORITY = 1_000_000
_MAX_VALUE = 4096  # bytes of a metadata value we parse; longer ones are ignored
_TEXT = 200  # characters of a free-text field (who, why) we keep


def validate_drain(drain: object) -> float:
    """:raises ConfigurationError: unless a finite number of seconds >= 0."""
    if isinstance(drain, bool) or not isinstance(drain, int | float) or not 0 <= drain < 1e6:
        raise ConfigurationError(
            f"drain must be a number of seconds from 0 (cancel the work at once), got {drain!r}"
        )
    return float(drain)


def validate_priority(priority: object) -> int:
    """Return ``priority`` if it is a whole number from 0 (never lead) to ``MAX_PRIORITY``.

    :raises ConfigurationError: otherwise.
    """
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigurationError(
            f"priority must be a whole number, got {type(priority).__name__}: use 0 (never "
            f"lead) to {MAX_PRIORITY} (default {DEFAULT_PRIORITY})"
        )
    if not 0 <= priority <= MAX_PRIORITY:
        raise ConfigurationError(
            f"priority {priority} is out of range: use 0 (never lead) to {MAX_PRIORITY}"
        )
    return priority


class MoveKeys:
    """The metadata keys of the election ``name`` in ``namespace``."""

    def __init__(self, namespace: str, name: str) -> None:
        base = "" if namespace == ROOT_NAMESPACE else namespace
        self.prefix = f"{base}/{name}#moves/".encode()
        self.pause = self.prefix + b"pause"
        self.request = self.prefix + b"handoff-request"
        self.record = self.prefix + b"handoff"
        self.priorities = self.prefix + b"priority/"

    def priority(self, lease_id: int) -> bytes:
        return self.priorities + f"{lease_id:x}".encode()

    def lease_of_priority(self, key: bytes) -> int | None:
        """The lease a priority key belongs to, or ``None`` if ``key`` is not one."""
        if not key.startswith(self.priorities):
            return None
        tail = key[len(self.priorities) :]
        if not 1 <= len(tail) <= 16:
            return None
        try:
            return int(tail, 16)
        except ValueError:
            return None


def _text(value: object) -> str | None:
    return bounded(value, _TEXT) if isinstance(value, str) else None


def _load(raw: bytes) -> dict[str, object] | None:
    if len(raw) > _MAX_VALUE:
        return None
    try:
        found = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class Pause:
    """Nobody may lead while this exists: who paused, why, and when (Unix time)."""

    by: str
    reason: str
    at: float

    def encode(self) -> bytes:
        return json.dumps({"by": self.by, "reason": self.reason, "at": self.at}).encode()

    @classmethod
    def make(cls, by: str, reason: str | None) -> Pause:
        return cls(by=bounded(by, _TEXT), reason=bounded(reason or "", _TEXT), at=time.time())

    @classmethod
    def decode(cls, raw: bytes) -> Pause:
        """Any value is a pause (the key's existence is what counts); its fields when valid."""
        found = _load(raw) or {}
        return cls(
            by=_text(found.get("by")) or "unknown",
            reason=_text(found.get("reason")) or "",
            at=_number(found.get("at")) or 0.0,
        )


@dataclass(frozen=True)
class HandoffRequest:
    """Anyone's request that the leader whose term is ``token`` hand off: to the candidate
    whose value is ``to``, or (``None``) to the next in line. A request for an earlier term
    is stale and ignored (the next handoff clears it)."""

    to: str | None
    by: str
    at: float
    token: int

    def encode(self) -> bytes:
        fields = {"to": self.to, "by": self.by, "at": self.at, "token": self.token}
        return json.dumps(fields).encode()

    @classmethod
    def make(cls, to: str | None, by: str, token: int) -> HandoffRequest:
        return cls(to=to, by=bounded(by, _TEXT), at=time.time(), token=token)

    @classmethod
    def decode(cls, raw: bytes) -> HandoffRequest | None:
        found = _load(raw)
        if found is None:
            return None
        to = found.get("to")
        if to is not None and not (isinstance(to, str) and len(to) <= _MAX_VALUE):
            return None
        token = found.get("token")
        if isinstance(token, bool) or not isinstance(token, int):
            return None
        return cls(
            to=to,
            by=_text(found.get("by")) or "unknown",
            at=_number(found.get("at")) or 0.0,
            token=token,
        )


@dataclass(frozen=True)
class HandoffRecord:
    """What the last handoff did: the candidates it took out of the queue ahead of the
    successor (``requeue``: key and create revision of each), who must queue again."""

    from_key: str
    token: int
    to_key: str
    to_token: int
    requeue: tuple[tuple[str, int], ...]

    def encode(self) -> bytes:
        return json.dumps(
            {
                "from": self.from_key,
                "token": self.token,
                "to": self.to_key,
                "to_token": self.to_token,
                "requeue": [list(pair) for pair in self.requeue],
            }
        ).encode()

    def asks_to_requeue(self, key: str, token: int) -> bool:
        return (key, token) in self.requeue

    @classmethod
    def decode(cls, raw: bytes) -> HandoffRecord | None:
        found = _load(raw)
        if found is None:
            return None
        requeue: list[tuple[str, int]] = []
        pairs = found.get("requeue")
        if not isinstance(pairs, list):
            return None
        for pair in pairs:
            if (
                isinstance(pair, list)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and isinstance(pair[1], int)
            ):
                requeue.append((pair[0], pair[1]))
        token, to_token = found.get("token"), found.get("to_token")
        return cls(
            from_key=_text(found.get("from")) or "",
            token=token if isinstance(token, int) else 0,
            to_key=_text(found.get("to")) or "",
            to_token=to_token if isinstance(to_token, int) else 0,
            requeue=tuple(requeue),
        )


def decode_priority(raw: bytes) -> int | None:
    """A priority key's value, or ``None`` if it is not a valid priority."""
    if len(raw) > 16:
        return None
    try:
        value = int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return value if 0 <= value <= MAX_PRIORITY else None
