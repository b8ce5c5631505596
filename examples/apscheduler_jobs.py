"""APScheduler jobs that fire on the leader only, on as many replicas as you like.

    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/apscheduler_jobs.py
    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/apscheduler_jobs.py --every 0.5 --runs 5

Every copy runs a ``BackgroundScheduler`` with the same job; only the copy that leads fires
it. Stop the leader (Ctrl-C or ``kill`` resign at once; ``kill -9`` leaves its lease to
expire after the TTL) and another copy takes over where it stopped: the job's last run is
kept in etcd, so no run is repeated, and a run that fell due during the failover is run once
when the new leader starts (``--missed skip`` drops it instead). With ``--runs N`` (or
``EXAMPLE_RUNS=N``) a copy exits after the job ran N times on it.

The job learns its term and scheduled run time from ``current_run()`` and writes its progress
fenced by the term's token.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import UTC

from apscheduler.schedulers.background import BackgroundScheduler

from etcd_elector import Client, Compare, Op
from etcd_elector.integrations.apscheduler import LeaderScheduler, current_run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="APScheduler jobs on the leader only.")
    parser.add_argument("--name", default="jobs", help="election name")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector"),
        help="key prefix of the elections",
    )
    parser.add_argument(
        "--ttl", type=int, default=int(os.environ.get("ETCD_ELECTOR_TTL", "10")), help="seconds"
    )
    parser.add_argument("--every", type=float, default=5.0, help="seconds between runs")
    parser.add_argument("--missed", choices=["catch_up", "skip"], default="catch_up")
    parser.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("EXAMPLE_RUNS", "0")),
        help="exit after the job ran this many times here (default 0: until stopped)",
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    progress_key = f"{args.namespace}/{args.name}.progress"  # outside the election's prefix
    done = 0

    with Client() as client:  # endpoints from ETCD_ENDPOINTS

        def report() -> None:
            nonlocal done
            run = current_run()
            fence = Compare.create_revision(run.term.key) == run.term.token
            value = f"token={run.term.token} run_time={run.run_time.isoformat()}"
            if not client.txn([fence], [Op.put(progress_key, value)]).succeeded:
                print("fenced out: our term is over", flush=True)
                return
            done += 1
            late = " (caught up)" if run.caught_up else ""
            print(
                f"run {done} at {run.run_time:%H:%M:%S.%f} token {run.term.token}{late}", flush=True
            )
            if args.runs and done >= args.runs:
                stop.set()

        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(report, "interval", seconds=args.every, id="report")
        elector = client.elector(args.name, namespace=args.namespace, ttl=args.ttl)
        with LeaderScheduler(scheduler, elector, missed=args.missed):
            stop.wait()
    print(f"stopped after {done} runs, resigned", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
