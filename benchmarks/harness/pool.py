"""The candidates of one peer in one election, and a key counter to see them queued."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from harness.children import Child, ChildExited, Line
from harness.peers import Peer


class Pool:
    """Candidates of one peer in one election; events from all of them in arrival order."""

    def __init__(
        self, peer: Peer, election: str, endpoint: str | Callable[[], str], ttl: int
    ) -> None:
        self.peer = peer
        self.election = election
        self._endpoint = endpoint
        self.ttl = ttl
        self.children: list[Child] = []
        self.events: list[Line] = []
        self._event = asyncio.Event()
        self._serial = 0
        self.leader: Child | None = None

    def _on_line(self, line: Line) -> None:
        self.events.append(line)
        event, self._event = self._event, asyncio.Event()
        event.set()

    def endpoint(self) -> str:
        return self._endpoint() if callable(self._endpoint) else self._endpoint

    async def spawn(self, n: int = 1) -> list[Child]:
        started = []
        for _ in range(n):
            self._serial += 1
            value = f"{self.peer.key}-{self.election}-{self._serial}"
            child = Child(
                value,
                self.peer.argv(self.election, self.endpoint(), self.ttl, value),
                self.peer.env(),
                on_line=self._on_line,
            )
            child.tags["value"] = value
            await child.start()
            self.children.append(child)
            started.append(child)
        return started

    def live(self) -> list[Child]:
        return [c for c in self.children if c.running]

    def waiting(self) -> list[Child]:
        return [c for c in self.live() if c is not self.leader]

    def elected_line(self, line: Line) -> bool:
        child = line.child
        return child is not None and self.peer.is_elected(
            line, self.election, child.tags.get("value", "")
        )

    async def wait_event(self, pred: Callable[[Line], bool], timeout: float, since: int) -> Line:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = since
        while True:
            while index < len(self.events):
                if pred(self.events[index]):
                    return self.events[index]
                index += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.peer.key}/{self.election}: no matching event within {timeout:g}s; "
                    + "; ".join(c.stderr_tail() for c in self.children[-3:] if c.stderr_tail())
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)

    async def wait_elected(self, timeout: float, since: int) -> Line:
        line = await self.wait_event(self.elected_line, timeout, since)
        self.leader = line.child
        return line

    async def wait_queued(self, counter: KeyCounter, timeout: float = 30.0) -> None:
        """Until every live candidate is queued at etcd (has its key, or said 'waiting')."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        prefix = self.peer.queue_prefix(self.election)
        while True:
            live = self.live()
            for child in live:
                if child.exited_at is not None:
                    raise ChildExited(child)
            if prefix is not None:
                if await counter.count(prefix) >= len(live):
                    await asyncio.sleep(0.05)  # the watch on the predecessor follows the key
                    return
            elif all(
                any(self.peer.is_waiting(x) or self.elected_line(x) for x in c.lines) for c in live
            ):
                await asyncio.sleep(0.3)  # from 'waiting' to its watch being registered
                return
            dead = [c for c in self.children if c.exited_at is not None and c.tags.get("expect")]
            if dead:
                raise ChildExited(dead[0])
            if loop.time() > deadline:
                raise TimeoutError(
                    f"{self.peer.key}: candidates not queued within {timeout:g}s: "
                    + "; ".join(c.stderr_tail() for c in live if c.stderr_tail())
                )
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.children), return_exceptions=True)


class KeyCounter:
    """Counts keys under a prefix with our library's client (outside measured windows)."""

    def __init__(self, endpoint: str) -> None:
        from etcd_elector import AsyncClient

        self.client = AsyncClient(endpoint)

    async def __aenter__(self) -> KeyCounter:
        await self.client.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    async def count(self, prefix: bytes) -> int:
        result = await self.client.get_prefix(prefix, count_only=True)
        return result.count
