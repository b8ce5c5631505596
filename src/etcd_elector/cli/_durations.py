"""Durations on the command line: ``90``, ``90s``, ``30m``, ``1h``."""

from __future__ import annotations

import re

from ._exit import CliError, ExitCode

__all__ = ["parse_duration"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, what: str = "duration", *, allow_zero: bool = False) -> float:
    """``text`` as seconds; ``what`` names the option in the error.

    :raises CliError: (exit code 4) for a malformed, negative or (unless allowed) zero value.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or (float(match.group(1)) <= 0 and not allow_zero):
        raise CliError(
            f"{what} {text!r} is malformed: use seconds or a unit, e.g. 90s, 30m, 1h",
            ExitCode.CONFIGURATION,
        )
    return float(match.group(1)) * _UNITS[match.group(2)]
