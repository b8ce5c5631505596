"""Where the benchmarks' files are, and the names of the scenarios."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
WORKERS = BENCH_DIR / "workers"
RESULTS_DIR = BENCH_DIR / "results"

# Each runs as benchmarks/scenario_<name>.py and writes <name>.json; run.py runs them in
# this order.
SCENARIOS = (
    "overhead",
    "handoff",
    "failover",
    "partition",
    "scale",
    "steady",
    "shards",
    "startup",
    "moves",
)

# python-etcd3 0.12 needs an old protobuf: it runs from a virtual environment of its own.
ETCD3_VENV = BENCH_DIR / ".venv-etcd3"
ETCD3_PYTHON = ETCD3_VENV / "bin" / "python"
NO_ETCD3_ENV = "ETCD_ELECTOR_BENCH_NO_ETCD3"  # set by run.py when python-etcd3 is skipped
