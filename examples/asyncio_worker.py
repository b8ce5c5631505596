"""Run a periodic job on the leader only, with asyncio.

    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/asyncio_worker.py
    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/asyncio_worker.py --iterations 5

Start it in two or three terminals: one copy leads and works, the others wait. Stop the
leader (Ctrl-C or SIGTERM resigns at once; ``kill -9`` leaves its lease to expire after the
TTL) and another copy takes over. A copy that loses its term (paused past its deadline, etcd
unreachable) stops its work and campaigns again. With ``--iterations N`` (or
``EXAMPLE_ITERATIONS=N``) a leader stops after N units of work, resigns and exits.

Each unit of work is a *fenced* write (``election.txn``): it commits only while this term
holds, so a leader that lost its term in the middle of a step cannot overwrite the progress
of its successor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from etcd_elector import (
    AmbiguousResult,
    AsyncClient,
    AsyncElector,
    ConnectionFailed,
    LeadershipLost,
    Op,
    RequestTimeout,
    Term,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a job only while leader (asyncio).")
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


async def main(args: argparse.Namespace) -> int:
    progress_key = f"{args.namespace}/{args.name}.progress"  # outside the election's prefix

    async with AsyncClient() as client:  # endpoints from ETCD_ENDPOINTS
        elector: AsyncElector = client.elector(
            args.name,
            namespace=args.namespace,
            ttl=args.ttl,
            requeue=args.iterations == 0,  # bounded: one term, then return
        )

        async def work(term: Term) -> int:
            print(f"elected: token {term.token}, key {term.key}", flush=True)
            election = elector.election
            assert election is not None
            done = 0
            while args.iterations == 0 or done < args.iterations:
                # Raises LeadershipLost once the term is over, even right after a pause, before
                # the elector has cancelled us: the elector takes it as the loss it is.
                term.check()
                try:
                    result = await election.txn(
                        success=[Op.put(progress_key, f"token={term.token} unit={done + 1}")]
                    )
                except (ConnectionFailed, RequestTimeout, AmbiguousResult) as exc:
                    # etcd out of reach: the unit may or may not have committed (fenced, so
                    # only while our term held); write it again next time, if we still lead.
                    print(f"unit {done + 1} not confirmed, trying again: {exc}", flush=True)
                    await asyncio.sleep(args.every)
                    continue
                done += 1
                print(f"unit {done} committed at revision {result.revision}", flush=True)
                await asyncio.sleep(args.every)
            return done

        async with elector:
            # SIGTERM (docker stop, systemd, Kubernetes) and Ctrl-C stop the work and resign;
            # run() then returns None.
            elector.stop_on_signals()
            try:
                done = await elector.run(work)
            except LeadershipLost as exc:
                print(f"lost leadership before finishing: {exc}", flush=True)
                return 1
    if done is None:
        print("stopped, resigned", flush=True)
    else:
        print(f"done: {done} units, resigned", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
