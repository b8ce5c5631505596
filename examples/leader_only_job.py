"""Run a periodic job on the leader only, with ``@leader_only`` (plain threads, no asyncio).

    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/leader_only_job.py
    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/leader_only_job.py --iterations 5

Start it in two or three terminals: every copy calls ``report()`` every ``--every`` seconds,
and the body runs only in the copy that leads; in the others the call returns ``None`` at
once. Stop the leader (Ctrl-C or ``kill`` resign at once; ``kill -9`` leaves its lease to
expire after the TTL) and another copy's calls start running. With ``--iterations N`` (or
``EXAMPLE_ITERATIONS=N``) a copy exits after running the body N times.

The body writes its progress *fenced* by the term: the write commits only if the term's key
still has the term's token as its create revision, so a leader that lost its term in the
middle of a call cannot overwrite its successor's progress.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from etcd_elector import Client, Compare, Op, Term
from etcd_elector.integrations.leader_only import Leadership, leader_only


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a job only while leader (@leader_only).")
    parser.add_argument("--name", default="reports", help="election name")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector"),
        help="key prefix of the elections",
    )
    parser.add_argument(
        "--ttl", type=int, default=int(os.environ.get("ETCD_ELECTOR_TTL", "10")), help="seconds"
    )
    parser.add_argument("--every", type=float, default=1.0, help="seconds between calls")
    parser.add_argument(
        "--iterations",
        type=int,
        default=int(os.environ.get("EXAMPLE_ITERATIONS", "0")),
        help="exit after the body ran this many times (default 0: until stopped)",
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    progress_key = f"{args.namespace}/{args.name}.progress"  # outside the election's prefix
    done = 0

    with (
        Client() as client,  # endpoints from ETCD_ENDPOINTS
        Leadership(client.elector(args.name, namespace=args.namespace, ttl=args.ttl)) as leadership,
    ):

        @leader_only(leadership, pass_term=True)
        def report(term: Term) -> int:
            nonlocal done
            fence = Compare.create_revision(term.key) == term.token
            result = client.txn(
                [fence], [Op.put(progress_key, f"token={term.token} run={done + 1}")]
            )
            if not result.succeeded:
                print("fenced out: our term is over", flush=True)
                return done
            done += 1
            print(f"report {done} by token {term.token}", flush=True)
            return done

        while not stop.is_set() and (args.iterations == 0 or done < args.iterations):
            report()  # None where this copy does not lead
            stop.wait(args.every)
    print(f"stopped after {done} reports, resigned", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
