"""Durations given in seconds: the one check that a setting is a usable number of seconds."""

from __future__ import annotations

import math

from ._errors import ConfigurationError

__all__ = ["seconds"]


def seconds(
    value: object,
    what: str,
    *,
    allow_zero: bool = False,
    allow_infinite: bool = False,
    shown: str | None = None,
) -> float:
    """``value`` as a float if it is a number of seconds above zero (or zero, with
    ``allow_zero``), and finite (unless ``allow_infinite``: a later check bounds it).

    :raises ConfigurationError: naming the setting ``what``, with the value as ``shown`` (what
        the user typed, e.g. on a command line) or as its ``repr``.
    """
    shown = repr(value) if shown is None else shown
    kind = "a non-negative" if allow_zero else "a positive"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or (math.isinf(value) and not allow_infinite)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise ConfigurationError(f"{what} must be {kind} number of seconds, got {shown}")
    return float(value)
