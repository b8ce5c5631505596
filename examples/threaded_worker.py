"""Run a periodic job on the leader only, from plain threaded code (no asyncio).

    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/threaded_worker.py
    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/threaded_worker.py --iterations 5

``Client`` runs the library's event loop on a background thread, so keepalives continue
while this thread works. A thread cannot be cancelled: the work checks ``term.is_leader()``
(computed from the clock, so right even just after the process was paused) before each unit,
and waits on ``term.lost`` (a ``threading.Event`` set the moment the loss is noticed) instead
of sleeping, so it wakes at once on a loss. After a loss the elector campaigns again.
Ctrl-C or SIGTERM stops the work, resigns and exits.

Outside systems are fenced with the term's token: here the write to etcd itself carries the
compare ``create_revision(term.key) == term.token`` (what ``election.txn`` adds for you in
the async API); a database or queue would store the token and refuse lower ones.
"""

from __future__ import annotations

import argparse
import os
import sys

from etcd_elector import (
    AmbiguousResult,
    Client,
    Compare,
    ConnectionFailed,
    LeadershipLost,
    Op,
    RequestTimeout,
    Term,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a job only while leader (threads).")
    parser.add_argument("--name", default="scheduler", help="election name")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector"),
        help="key prefix of the elections",
    )
    parser.add_argument(
        "--ttl", type=int, default=int(os.environ.get("ETCD_ELECTOR_TTL", "10")), help="seconds"
    )
    parser.add_argument("--every", type=float, default=1.0, help="seconds between units")
    parser.add_argument(
        "--iterations",
        type=int,
        default=int(os.environ.get("EXAMPLE_ITERATIONS", "0")),
        help="stop after this many units of work (default 0: until interrupted)",
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    progress_key = f"{args.namespace}/{args.name}.progress"  # outside the election's prefix

    with Client() as client:  # endpoints from ETCD_ENDPOINTS

        def work(term: Term) -> int:
            print(f"elected: token {term.token}, key {term.key}", flush=True)
            done = 0
            while args.iterations == 0 or done < args.iterations:
                if not term.is_leader():
                    print(f"term over ({term.end_reason or 'deadline'})", flush=True)
                    break
                fence = Compare.create_revision(term.key) == term.token
                try:
                    result = client.txn(
                        [fence], [Op.put(progress_key, f"token={term.token} unit={done + 1}")]
                    )
                except (ConnectionFailed, RequestTimeout, AmbiguousResult) as exc:
                    # etcd out of reach: the unit may or may not have committed (fenced, so
                    # only while our term held); write it again next time, if we still lead.
                    print(f"unit {done + 1} not confirmed, trying again: {exc}", flush=True)
                    term.lost.wait(args.every)
                    continue
                if not result.succeeded:
                    print("fenced out: our term is over", flush=True)
                    break
                done += 1
                print(f"unit {done} committed at revision {result.revision}", flush=True)
                term.lost.wait(args.every)  # a sleep that ends early on loss
            return done

        with client.elector(
            args.name, namespace=args.namespace, ttl=args.ttl, requeue=args.iterations == 0
        ) as elector:
            # SIGTERM (docker stop, systemd, Kubernetes) and Ctrl-C set term.lost, wait for the
            # work to return, and resign; run() then returns None.
            elector.stop_on_signals()
            try:
                done = elector.run(work)
            except LeadershipLost as exc:
                print(f"lost leadership before finishing: {exc}", flush=True)
                return 1
    if done is None:
        print("stopped, resigned", flush=True)
        return 0
    print(f"done: {done} units, resigned", flush=True)
    return 0 if done == args.iterations else 1


if __name__ == "__main__":
    sys.exit(main(parse_args()))
