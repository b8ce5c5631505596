"""A shard-group replica process for fault runs and benchmarks
(``python -m etcd_elector.testing._shard_replica``).

It joins a group through the public API. For every shard it owns it does fenced writes (a
guarded transaction putting the token on a per-shard key) until told to stop, and it prints one
JSON :class:`Record` per event on stdout, the shard in ``detail``: ``joined`` (its member key
is in etcd), ``elected`` (acquired, at the moment it started believing), ``lost`` (``until`` =
when it stopped believing), each write, and a clean exit with its lease.
SIGTERM leaves the group gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from etcd_elector import AsyncClient, LeadershipError, Op, TransportError, _clock
from etcd_elector._stop_signals import StopSignals
from etcd_elector._tasks import cancel_and_wait, wait_first
from etcd_elector.shards import AsyncShardGroup, OwnedShard, ShardEventKind
from etcd_elector.testing._history import Record, RecordKind


def emit(record: Record) -> None:
    sys.stdout.write(record.to_json() + "\n")
    sys.stdout.flush()


def writes_key(namespace: str, group: str, shard: str) -> str:
    """Where replicas of ``group`` write for ``shard`` (outside the group's own keys)."""
    return f"{namespace}/{group}-writes/{shard}"


async def main(args: argparse.Namespace) -> None:
    me = args.id
    leases: set[int] = set()
    loop = asyncio.get_running_loop()
    # Fault runs detect a dead connection fast; benchmarks measure the library's defaults.
    fast = not args.library_defaults
    async with (
        StopSignals() as stop,
        AsyncClient(
            args.endpoints, timeout=2.0 if fast else None, stream_timeout=1.0 if fast else None
        ) as client,
    ):
        group = AsyncShardGroup(
            client,
            args.group,
            shards=args.shards,
            weight=args.weight,
            identity=me,
            namespace=args.namespace,
            ttl=args.ttl,
            drain=args.drain,
        )

        async def work(shard: OwnedShard) -> None:
            if args.write_every <= 0:
                await shard.wait_stopping()
                return
            key = writes_key(args.namespace, args.group, shard.shard)
            while not shard.stopping.is_set():
                try:
                    result = await group.txn(shard, [], [Op.put(key, str(shard.token))])
                    emit(
                        Record(
                            RecordKind.WRITE,
                            _clock.now(),
                            candidate=me,
                            token=shard.token,
                            ok=result.succeeded,
                            revision=result.revision,
                            detail=shard.shard,
                        )
                    )
                except LeadershipError:
                    emit(
                        Record(
                            RecordKind.WRITE,
                            _clock.now(),
                            candidate=me,
                            token=shard.token,
                            detail=shard.shard,
                        )
                    )
                except TransportError:
                    pass  # unknown outcome or unreachable: no claim either way
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shard.wait_stopping(), args.write_every)

        async def report() -> None:
            """Records from the group's events, published the moment things happen: an end
            is recorded before the owner key is deleted, so a kill cannot lose it."""
            async for event in group.events():
                owned = event.owned
                if event.kind is ShardEventKind.JOINED:
                    leases.add(event.lease)
                    emit(Record("joined", _clock.now(), candidate=me, leases=(event.lease,)))
                elif event.kind is ShardEventKind.ACQUIRED and owned is not None:
                    emit(
                        Record(
                            RecordKind.ELECTED,
                            owned.acquired_at,
                            candidate=me,
                            token=owned.token,
                            detail=owned.shard,
                        )
                    )
                elif event.kind in (ShardEventKind.RELEASED, ShardEventKind.LOST) and owned:
                    emit(
                        Record(
                            RecordKind.LOST,
                            _clock.now(),
                            candidate=me,
                            token=owned.token,
                            until=owned.ended_at or _clock.now(),
                            reason=event.reason or "",
                            detail=owned.shard,
                        )
                    )

        def dump_state() -> None:
            """SIGUSR1: what this replica holds and sees, on stderr (its log)."""
            snapshot = group.snapshot
            logging.getLogger(__name__).warning(
                "state: session=%r owned=%s internals=%s snapshot_revision=%s tasks=%d",
                group.session,
                sorted(group.owned()),
                group.debug_state(),
                snapshot.revision if snapshot else None,
                len(asyncio.all_tasks()),
            )

        loop.add_signal_handler(signal.SIGUSR1, dump_state)
        async with group:
            reporter = asyncio.create_task(report())
            runner = asyncio.create_task(group.run(work))
            stopped = asyncio.create_task(stop.wait())
            await wait_first(runner, stopped)
            await cancel_and_wait(stopped)
            await group.close()
            await wait_first(runner)
            await cancel_and_wait(reporter)
        if not runner.cancelled() and runner.exception() is not None:
            logging.getLogger(__name__).error("the group's run failed: %r", runner.exception())
    emit(Record(RecordKind.EXITED, _clock.now(), candidate=me, leases=tuple(sorted(leases))))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ttl", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--weight", type=int, default=1)
    parser.add_argument("--drain", type=float, default=1.0)
    parser.add_argument("--write-every", type=float, default=0.1, help="0: no writes")
    parser.add_argument("--library-defaults", action="store_true", help="default client timeouts")
    parser.add_argument("--log-level", default="warning", choices=("info", "warning"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    logging.basicConfig(
        level=arguments.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main(arguments))
