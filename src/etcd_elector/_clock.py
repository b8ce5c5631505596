"""The one clock every deadline in etcd-elector is measured on.

Lease deadlines must keep counting while the machine is suspended, because etcd's clock does.
``CLOCK_BOOTTIME`` does that on Linux; ``CLOCK_MONOTONIC`` stops during suspend. Both are
system-wide, so stamps taken in different processes on one host are comparable.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "now"]

Clock = Callable[[], float]

_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _boottime() -> float:
    assert _BOOTTIME is not None
    return time.clock_gettime(_BOOTTIME)


now: Clock = _boottime if _BOOTTIME is not None else time.monotonic
"""Seconds on a clock that never goes backwards and counts through suspend where it can."""
