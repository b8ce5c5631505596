"""A replica that calls a ``@leader_only`` function once per slot of the wall clock.

Slot ``n`` is ``floor(time.time() / every)``: every replica agrees on it, so two replicas
that both ran the body in one slot would both record it. The body appends
``TICK <slot> <token> <identity>`` to ``--record``. Stops on SIGTERM (resigning) or after
``--max-seconds``.

    python leader_only_child.py --record FILE --name job --namespace /ns --ttl 2 --every 0.1
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import NoReturn

from etcd_elector import Client, Term
from etcd_elector.integrations.leader_only import Leadership, leader_only
from helpers.replicas import append_record


def _stop(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ttl", type=int, default=2)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--max-seconds", type=float, default=90.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    identity = os.environ["ETCD_ELECTOR_IDENTITY"]
    fd = os.open(args.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with (
        Client(timeout=2, stream_timeout=1) as client,
        Leadership(client.elector(args.name, namespace=args.namespace, ttl=args.ttl)) as leader,
    ):

        @leader_only(leader, pass_term=True)
        def tick(term: Term, slot: int) -> None:
            append_record(fd, "TICK", slot, term.token, identity)

        last = -1
        give_up = time.monotonic() + args.max_seconds
        try:
            while time.monotonic() < give_up:
                slot = int(time.time() // args.every)
                if slot != last:
                    tick(slot)
                    last = slot
                time.sleep(args.every / 10)
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
