"""A partitioned queue consumer: run several copies and they share the partitions.

    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/shard_consumer.py --produce 20
    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/shard_consumer.py   # in a second terminal

The queue lives in etcd for the sake of the example: partition ``p`` holds messages at
``<namespace>/queue/<p>/<sequence>`` and its committed offset at ``<namespace>/offsets/<p>``.
Each copy joins the shard group ``consumers`` with one shard per partition and consumes only
the partitions it owns. Start a second copy and half the partitions move to it (their
consumers finish the message in hand, then stop); stop a copy (Ctrl-C or SIGTERM) and its
partitions move back. A copy killed with ``kill -9`` loses its partitions when its lease
expires, after the TTL.

Every offset commit is fenced (``group.txn``): it commits only while this copy owns the
partition, and only if nobody moved the offset since we read it, so a consumer that lost its
partition mid-message cannot commit over its successor. Delivery is at least once: a message
processed but not committed when the partition moved is processed again by the next owner.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from etcd_elector import AsyncClient, AsyncShardGroup, Compare, LeadershipError, Op, OwnedShard


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Consume a partitioned queue, shared.")
    parser.add_argument("--partitions", type=int, default=8, help="number of partitions")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector"),
        help="key prefix of the group and of the example's queue",
    )
    parser.add_argument(
        "--ttl", type=int, default=int(os.environ.get("ETCD_ELECTOR_TTL", "10")), help="seconds"
    )
    parser.add_argument("--produce", type=int, default=0, help="first add N messages per partition")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between polls")
    return parser.parse_args(argv)


async def produce(client: AsyncClient, namespace: str, partitions: int, count: int) -> None:
    for partition in range(partitions):
        for sequence in range(1, count + 1):
            await client.put(f"{namespace}/queue/{partition}/{sequence:08d}", f"m{sequence}")


async def main(args: argparse.Namespace) -> int:
    async with AsyncClient() as client:  # endpoints from ETCD_ENDPOINTS
        if args.produce:
            await produce(client, args.namespace, args.partitions, args.produce)
        group = AsyncShardGroup(
            client,
            "consumers",
            shards=args.partitions,
            namespace=args.namespace,
            ttl=args.ttl,
            drain=5.0,  # a moving partition's consumer gets 5 s to finish its message
        )

        async def consume(shard: OwnedShard) -> None:
            partition = shard.shard
            offset_key = f"{args.namespace}/offsets/{partition}"
            print(f"partition {partition}: owned, token {shard.token}", flush=True)
            while not shard.stopping.is_set():
                read = await client.get(offset_key)
                offset = int(read.kv.value) if read.kv else 0
                seen = read.kv.mod_revision if read.kv else 0
                nxt = f"{args.namespace}/queue/{partition}/{offset + 1:08d}"
                message = (await client.get(nxt)).kv
                if message is None:  # nothing new: wait, or stop when told
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(shard.wait_stopping(), args.every)
                    continue
                # ... process the message here ...
                try:
                    result = await group.txn(
                        shard,
                        [Compare.mod_revision(offset_key) == seen],
                        [Op.put(offset_key, str(offset + 1))],
                    )
                except LeadershipError:
                    return  # the partition is no longer ours: its new owner carries on
                if result.succeeded:
                    text = message.value.decode()
                    print(f"partition {partition}: {text} committed", flush=True)
            print(f"partition {partition}: released", flush=True)

        async with group:
            # SIGTERM or Ctrl-C: drain every partition, hand them over, leave; run() returns.
            group.stop_on_signals()
            await group.run(consume)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
