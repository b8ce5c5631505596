"""A candidate in its own process, for tests that pause it with SIGSTOP.

Campaigns, prints ``ELECTED <token> <stamp>``, then checks ``is_leader()`` every few
milliseconds and prints ``CHECK <before> <after> <0|1>`` for each check, where the stamps are
:func:`etcd_elector._clock.now` read just before and just after the check (comparable across
processes on one host). After the first check that answers False it prints
``LOST <reason>``, makes a few more checks and exits. Every loop is bounded by ``--max-seconds``.

    python candidate.py --endpoint 127.0.0.1:2379 --namespace /ns --name job --ttl 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from etcd_elector import AsyncClient, AsyncElection, _clock

CHECK_INTERVAL_S = 0.005
CHECKS_AFTER_LOSS = 20


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> int:
    give_up = _clock.now() + args.max_seconds
    async with AsyncClient(args.endpoint, timeout=2, stream_timeout=1) as client:
        session = client.session(ttl=args.ttl, margin=args.margin)
        async with session:
            election = AsyncElection(session, args.name, namespace=args.namespace)
            term = await election.campaign(args.value)
            emit(f"ELECTED {term.token} {term.elected_at:.6f} {session.ttl}")
            after_loss = 0
            max_checks = int(args.max_seconds / CHECK_INTERVAL_S) + 1
            for _ in range(max_checks):
                before = _clock.now()
                leader = election.is_leader()
                after = _clock.now()
                emit(f"CHECK {before:.6f} {after:.6f} {int(leader)}")
                if not leader:
                    if after_loss == 0:
                        emit(f"LOST {session.loss_reason or 'unknown'}")
                    after_loss += 1
                    if after_loss > CHECKS_AFTER_LOSS:
                        return 0
                if after > give_up:
                    emit("GAVE-UP")
                    return 2
                await asyncio.sleep(CHECK_INTERVAL_S)
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--value", default="child")
    parser.add_argument("--ttl", type=int, default=2)
    parser.add_argument("--margin", type=float, default=0.5)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
