"""A replica running an APScheduler ``BackgroundScheduler`` under ``LeaderScheduler``.

One interval job, ``tick``, every ``--every`` seconds from ``--anchor`` (a Unix time all
replicas share, so they agree on the run times). Each run appends
``RUN <run time> <token> <identity> <term began> <caught up 0|1>`` to ``--record``. Stops on
SIGTERM (resigning) or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from etcd_elector import Client
from etcd_elector.integrations.apscheduler import LeaderScheduler, current_run
from helpers.replicas import append_record


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ttl", type=int, default=2)
    parser.add_argument("--every", type=float, default=0.2)
    parser.add_argument("--anchor", type=float, required=True)
    parser.add_argument("--missed", choices=["catch_up", "skip"], default="catch_up")
    parser.add_argument("--max-seconds", type=float, default=90.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    identity = os.environ["ETCD_ELECTOR_IDENTITY"]
    fd = os.open(args.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def tick() -> None:
        run = current_run()
        append_record(
            fd,
            "RUN",
            run.run_time.timestamp(),
            run.term.token,
            identity,
            run.term_began.timestamp(),
            int(run.caught_up),
        )

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        tick,
        "interval",
        id="tick",
        seconds=args.every,
        start_date=datetime.fromtimestamp(args.anchor, UTC),
    )
    with Client(timeout=2, stream_timeout=1) as client:
        elector = client.elector(args.name, namespace=args.namespace, ttl=args.ttl)
        with LeaderScheduler(scheduler, elector, missed=args.missed):
            stop.wait(args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
