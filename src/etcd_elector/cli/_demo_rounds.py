"""The demo's rounds: candidate processes, what they report, and the faults injected on
the leader (SIGKILL, SIGSTOP past the TTL then SIGCONT, or SIGTERM to resign). Failover is
the new leader's ``elected`` time minus the time the fault was injected; every reported term
goes to the two-leaders check (:mod:`._demo_check`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._client import AsyncClient
from .._environ import without_etcd_settings
from .._errors import EtcdElectorError
from ._demo_check import LeaderLog
from ._demo_view import CandidateRow, DemoView, RoundResult
from ._options import Options
from ._output import Printer
from ._process import ChildProcess

__all__ = ["ELECTION", "FAULTS", "Candidate", "Demo", "DemoFailed"]

ELECTION = "demo"
FAULTS = ("kill", "pause", "resign")
FAULT_SIGNALS = {"kill": "SIGKILL", "pause": "SIGSTOP", "resign": "SIGTERM"}
RESIGN_BOUND_MS = 1000.0
EXPIRY_SLACK_MS = 1000.0  # etcd checks lease expiry every 500 ms, plus a round trip or two
STOP_TIMEOUT = 5.0


class DemoFailed(Exception):
    """A round could not complete (no new leader in time, a candidate would not start)."""


@dataclass
class Candidate:
    """One candidate process (a restart makes a new one with the same name)."""

    name: str
    child: ChildProcess
    state: str = "starting"
    lease: str | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.child.pid


@dataclass
class Demo:
    options: Options
    printer: Printer
    endpoints: str
    namespace: str
    ttl: int
    size: int
    rounds: int
    view: DemoView
    log_dir: str
    candidates: dict[str, Candidate] = field(default_factory=dict)
    elections: list[tuple[str, float, int]] = field(default_factory=list)  # name, time, token
    results: list[RoundResult] = field(default_factory=list)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (position, ttl)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.terms = LeaderLog(self._alarm)

    @property
    def overlaps(self) -> list[str]:
        return self.terms.overlaps

    def _alarm(self, message: str) -> None:
        print(f"etcd-elector demo: {message}", file=sys.stderr, flush=True)
        self._note(message, alarm=True)

    # -- candidates ----------------------------------------------------------------------------

    async def start_candidate(self, name: str) -> Candidate:
        argv = [
            sys.executable,
            "-m",
            "etcd_elector.cli",
            "--json",
            "--log-level",
            "error",
            "--endpoints",
            self.endpoints,
            "--namespace",
            self.namespace,
            "--ttl",
            str(self.ttl),
            "campaign",
            ELECTION,
            "--value",
            name,
        ]
        env = without_etcd_settings(os.environ)
        log_path = os.path.join(self.log_dir, f"{name}.log")
        errors = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            child = await ChildProcess.start(
                argv, env, stdout=asyncio.subprocess.PIPE, stderr=errors
            )
        finally:
            os.close(errors)
        candidate = Candidate(name=name, child=child)
        self.candidates[name] = candidate
        candidate.reader = asyncio.create_task(self._read(candidate))
        self._note(f"{name} started (pid {child.pid})")
        return candidate

    async def _read(self, candidate: Candidate) -> None:
        stream = candidate.child.stdout
        assert stream is not None
        async for raw in stream:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                self._apply(candidate, record)
        code = await candidate.child.wait()
        self._exited(candidate, code)

    def _apply(self, candidate: Candidate, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == "campaigning":
            candidate.lease = record.get("lease")
            if candidate.state not in ("paused", "killed", "resigning"):
                candidate.state = "campaigning"
        elif event == "elected":
            candidate.state = "leader"
            token = int(record["token"])
            self.terms.opened(candidate, candidate.name, token, float(record["elected_at"]))
            self.elections.append((candidate.name, float(record["time"]), token))
            self._note(f"{candidate.name} elected (token {token})")
        elif event in ("lost", "resigned"):
            self.terms.closed(candidate, int(record["token"]), float(record["ended_at"]))
            if event == "lost":
                candidate.state = "campaigning"
                self._note(f"{candidate.name} lost leadership ({record.get('reason')})")
            else:
                self._note(f"{candidate.name} resigned")
        self._changed.set()

    def _exited(self, candidate: Candidate, code: int) -> None:
        self.terms.closed(candidate, None, time.time())  # died without saying so? (it must not)
        if candidate.state != "killed":
            candidate.state = "exited"
        self._note(f"{candidate.name} exited (code {code})")
        self._changed.set()

    def _note(self, message: str, *, alarm: bool = False) -> None:
        self.view.log(message, alarm=alarm)

    # -- waiting -------------------------------------------------------------------------------

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while not predicate():
            remaining = give_up - loop.time()
            if remaining <= 0:
                raise DemoFailed(f"no {what} within {timeout:g} s (candidate logs: {self.log_dir})")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def leaders(self) -> list[Candidate]:
        return [c for c in self.candidates.values() if c.state == "leader"]

    def _elected_after(self, since: float, other_than: str) -> tuple[str, float, int] | None:
        for election in self.elections:
            if election[0] != other_than and election[1] >= since:
                return election
        return None

    # -- rounds --------------------------------------------------------------------------------

    def bound_ms(self, fault: str) -> float:
        return RESIGN_BOUND_MS if fault == "resign" else self.ttl * 1000.0 + EXPIRY_SLACK_MS

    async def play_round(self, number: int) -> None:
        fault = FAULTS[(number - 1) % len(FAULTS)]
        await self.until(lambda: len(self.leaders()) == 1, 3 * self.ttl + 10, "leader")
        old = self.leaders()[0]

        def successor_waiting() -> bool:
            return any(c is not old and c.state == "campaigning" for c in self.candidates.values())

        await self.until(successor_waiting, 3 * self.ttl + 10, "second candidate")
        self.view.status(
            f"round {number}/{self.rounds}: {fault} the leader {old.name} "
            f"({FAULT_SIGNALS[fault]}), waiting for the next one..."
        )
        injected = time.time()
        if fault == "kill":
            old.child.send(signal.SIGKILL)
            old.state = "killed"
            self.terms.closed(old, None, injected)
        elif fault == "pause":
            old.child.send(signal.SIGSTOP)
            old.state = "paused"
        else:
            old.child.send(signal.SIGTERM)
            old.state = "resigning"
        paused_at = time.monotonic()
        self._note(f"round {number}: {FAULT_SIGNALS[fault]} to leader {old.name} ({fault})")
        bound = self.bound_ms(fault)
        result = RoundResult(number, fault, old.name, None, None, bound)
        self.results.append(result)
        await self.until(
            lambda: self._elected_after(injected, old.name) is not None,
            bound / 1000 + 10,
            f"new leader after round {number}",
        )
        found = self._elected_after(injected, old.name)
        assert found is not None
        result.new, result.failover_ms = found[0], (found[1] - injected) * 1000
        self._note(f"round {number}: {found[0]} took over in {result.failover_ms:.0f} ms")
        if self.printer.json_lines:
            self.printer.event(
                "failover",
                ELECTION,
                round=number,
                fault=fault,
                old=old.name,
                new=found[0],
                token=found[2],
                failover_ms=round(result.failover_ms, 1),
                bound_ms=bound,
            )
        await self._aftermath(old, fault, paused_at)

    async def _aftermath(self, old: Candidate, fault: str, paused_at: float) -> None:
        if fault == "pause":
            # Keep it frozen past the TTL, then let it find out it lost.
            wait = self.ttl + 0.5 - (time.monotonic() - paused_at)
            if wait > 0:
                await asyncio.sleep(wait)
            old.child.send(signal.SIGCONT)
            old.state = "leader" if self.terms.is_open(old) else "campaigning"
            self._note(f"{old.name} resumed (SIGCONT)")
            await self.until(
                lambda: not self.terms.is_open(old),
                STOP_TIMEOUT + self.ttl,
                f"loss report from resumed {old.name}",
            )
            return
        if fault == "resign":
            await self.until(lambda: not old.child.running, STOP_TIMEOUT, f"exit of {old.name}")
        await self.start_candidate(old.name)

    # -- etcd's side of the view -------------------------------------------------------------

    async def poll_etcd(self, client: AsyncClient) -> None:
        """Queue positions and lease TTLs as etcd sees them, for the live view."""
        view = client.election_view(ELECTION, namespace=self.namespace)
        while True:
            with contextlib.suppress(EtcdElectorError):
                listed = await view.candidates()
                infos = await asyncio.gather(
                    *(client.lease_time_to_live(c.lease_id, timeout=1.0) for c in listed)
                )
                self.positions = {
                    c.value_text: (position, info.ttl)
                    for position, (c, info) in enumerate(zip(listed, infos, strict=True), 1)
                }
            await asyncio.sleep(0.25)

    async def redraw(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(0.2)

    def draw(self) -> None:
        rows = []
        for name in sorted(self.candidates):
            candidate = self.candidates[name]
            position, ttl = self.positions.get(name, (None, None))
            rows.append(CandidateRow(name, candidate.pid, candidate.state, position, ttl))
        self.view.frame(rows, self.results, self.overlaps)

    # -- lifetime ------------------------------------------------------------------------------

    async def stop_all(self) -> None:
        """Resume paused candidates, ask all to resign, kill what lingers, read their last
        words (their final ``resigned`` lines close their intervals)."""
        live = [c for c in self.candidates.values() if c.child.running]
        for candidate in live:
            candidate.child.send(signal.SIGCONT)
            candidate.child.send(signal.SIGTERM)
        readers = [c.reader for c in self.candidates.values() if c.reader is not None]
        if readers:
            _, pending = await asyncio.wait(readers, timeout=STOP_TIMEOUT)
            for candidate in live:
                candidate.child.signal_group(signal.SIGKILL)
            if pending:
                await asyncio.wait(pending, timeout=STOP_TIMEOUT)
                for reader in pending:
                    reader.cancel()
