"""Jittered exponential backoff, the one retry pacing every retry loop uses."""

from __future__ import annotations

import asyncio
import random

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``low``, ``2 low``, ``4 low``... capped at ``high``, each scaled by a random
    factor in ``[0.5, 1.0]`` so that many candidates retrying together spread out."""

    def __init__(self, low: float = 0.05, high: float = 1.0) -> None:
        self.low, self.high = low, high
        self.failures = 0

    def next(self) -> float:
        """The next delay; each call doubles the one after."""
        delay: float = min(self.high, self.low * 2.0**self.failures) * random.uniform(0.5, 1.0)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

    async def sleep(self) -> None:
        await asyncio.sleep(self.next())
