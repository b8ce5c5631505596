"""A scenario's entry point: its command line, its context, interleaved trials, the result file.

Each ``scenario_<name>.py`` defines ``async def run(ctx) -> dict`` and ends with
``scenario_main("<name>", run)``; the JSON it writes carries the result, or the error that
ended the scenario, with the load average and the library's source digest before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.machine import src_digest
from harness.peers import PEERS


@dataclass
class Context:
    quick: bool
    out: Path
    peers: list[str] = field(default_factory=list)
    seed: int = 1

    def skipped_peers(self) -> dict[str, str]:
        """The peers asked for that cannot run here, with the reason for each."""
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


def scenario_main(name: str, run: Callable[[Context], Coroutine[Any, Any, dict[str, Any]]]) -> None:
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
    return str(value)


def log(message: str) -> None:
    """A time-stamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
