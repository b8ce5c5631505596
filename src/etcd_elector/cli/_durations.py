"""Durations on the command line: ``90``, ``1.5``, ``500ms``, ``90s``, ``30m``, ``1h``."""

from __future__ import annotations

import re

from ._exit import CliError, ExitCode

__all__ = ["duration_seconds", "parse_duration"]

_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|[smh]?)\s*")


def duration_seconds(text: str) -> float | None:
    """``text`` (a non-negative number, optionally with a unit) in seconds; ``None`` if it is
    not written that way."""
    match = _DURATION.fullmatch(text)
    return None if match is None else float(match.group(1)) * _UNITS[match.group(2)]


def parse_duration(text: str, what: str = "duration", *, allow_zero: bool = False) -> float:
    """``text`` as seconds; ``what`` names the option in the error.

    :raises CliError: (exit code 4) for a malformed, negative or (unless allowed) zero value.
    """
    value = duration_seconds(text)
    if value is None or (value <= 0 and not allow_zero):
        raise CliError(
            f"{what} {text!r} is malformed: use seconds or a unit, e.g. 90s, 30m, 1h",
            ExitCode.CONFIGURATION,
        )
    return value
