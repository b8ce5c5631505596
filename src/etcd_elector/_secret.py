"""``Secret``: a string that never shows itself in a ``repr``, ``str``, log line or message."""

from __future__ import annotations

from typing import Any

__all__ = ["Secret"]

_MASK = "********"


class Secret:
    """A password (or any credential) that prints as ``********``.

    Only :meth:`reveal` returns the value; ``repr``, ``str`` and f-strings show the mask, so
    a secret inside a dataclass, an exception or a log argument stays hidden. Pickling is
    refused: a secret must not travel to another process by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: pass it on to etcd, never to a log."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")
