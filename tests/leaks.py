"""What a test may not leave behind: asyncio tasks on its loop, threads of ours (named
``etcd-elector-*`` or ``FaultProxy->*``; gRPC's process-wide poller threads are not ours), and
child processes (etcd members, candidates, CLI processes). Used by the autouse fixtures in
conftest.py; a leak fails the test that left it, naming what was left."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["OUR_THREADS", "children", "leaked_tasks", "settle", "threads"]

C = TypeVar("C", bound=Collection[Any])

OUR_THREADS = ("etcd-elector", "FaultProxy")
# How long something being torn down may take to be gone (joined, reaped) after its owner
# returned from close(): a bound, never a wait for its own sake.
SETTLE_S = 5.0


def threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(OUR_THREADS) and t.is_alive()}


def children() -> dict[int, str]:
    """This process's live children: pid -> command line (zombies are not alive)."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in map(int, pids):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue  # gone meanwhile
            shown = command.decode(errors="replace").strip()
            if stat.rsplit(")", 1)[-1].split()[0] != "Z" and not process_wide(shown):
                found[pid] = shown[:200]
    return found


def process_wide(command: str) -> bool:
    """Python's multiprocessing starts one resource tracker per process at its first use (a
    library under test may), and it lives as long as the process by design."""
    return "from multiprocessing.resource_tracker import main" in command


def settle(still_there: Callable[[], C]) -> C:
    """``still_there()`` once it is empty, or once :data:`SETTLE_S` have passed."""
    deadline = time.monotonic() + SETTLE_S
    left = still_there()
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = still_there()
    return left


async def leaked_tasks(before: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    """Tasks on the running loop that were not there ``before`` and are still pending after
    being given :data:`SETTLE_S` to finish (those already cancelled are finishing)."""
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and t not in before]
    if not pending:
        return []
    _, still = await asyncio.wait(pending, timeout=SETTLE_S)
    return sorted(still, key=lambda task: task.get_name())
