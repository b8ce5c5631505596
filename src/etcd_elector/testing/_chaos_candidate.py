"""A candidate process for fault runs (``python -m etcd_elector.testing._chaos_candidate``).

It runs the elector through the public API. While leader it does fenced writes (a guarded
transaction bumping a counter key) and prints one JSON :class:`Record` per event on stdout:
elected, lost (with the moment it stopped believing it led), each write, the moment its work
stopped acting (``work_end``: it returns when drained, or is cancelled), each history loss
the library reports (with the revisions it names), the highest revision the library has seen
whenever it changes (what the candidate knows of etcd's history), and a clean exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from etcd_elector import (
    AsyncClient,
    AsyncElection,
    ElectorState,
    HistoryLoss,
    LeadershipError,
    Op,
    Term,
    TransportError,
    _clock,
)
from etcd_elector.testing._history import Record, RecordKind

WRITE_EVERY = 0.05
SEEN_EVERY = 0.25


def emit(record: Record) -> None:
    sys.stdout.write(record.to_json() + "\n")
    sys.stdout.flush()


async def record_seen(client: AsyncClient, me: str, stop: asyncio.Event) -> None:
    """A ``seen`` record whenever the highest revision the library saw changed."""
    last = 0
    while not stop.is_set():
        revision = client.history.revision
        if revision != last:
            emit(Record(RecordKind.SEEN, _clock.now(), candidate=me, revision=revision))
            last = revision
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SEEN_EVERY)


async def main(args: argparse.Namespace) -> None:
    me = args.id
    leases: set[int] = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with AsyncClient(args.endpoints, timeout=2.0, stream_timeout=1.0) as client:

        def history_lost(loss: HistoryLoss) -> None:
            emit(
                Record(
                    RecordKind.HISTORY_LOST,
                    loss.detected_at,
                    candidate=me,
                    revision=loss.revision,
                    previous_revision=loss.previous_revision,
                    reason=loss.kind,
                    detail=loss.describe(),
                )
            )

        client.history.add_listener(history_lost)
        seen = asyncio.create_task(record_seen(client, me, stop))
        elector = client.elector(
            args.name,
            namespace=args.namespace,
            ttl=args.ttl,
            value=me,
            backoff=(0.05, 1.0),
            drain=args.drain,
            priority=args.priority,
        )

        async def record_sessions() -> None:
            # Every lease it campaigns with, so that the runner can tell a key this candidate
            # left after a clean exit (a leak) from one a killed candidate left (it lapses).
            async for event in elector.states():
                session = elector.session
                if event.state is ElectorState.CAMPAIGNING and session is not None:
                    leases.add(session.lease_id)

        sessions = asyncio.create_task(record_sessions())

        def on_elected(term: Term) -> None:
            leases.add(term.lease_id)
            emit(Record(RecordKind.ELECTED, term.elected_at, candidate=me, token=term.token))

        def on_lost(term: Term, reason: str) -> None:
            now = _clock.now()
            session = elector.session
            # is_leader() turned false when the term ended (a resign ends it before deleting
            # the key), and at the session deadline at the latest, however late a loss after
            # a pause was noticed.
            until = term.ended_at or now
            if session is not None:
                until = min(until, session.deadline)
            emit(
                Record(
                    RecordKind.LOST, now, candidate=me, token=term.token, until=until, reason=reason
                )
            )

        elector.on_elected, elector.on_lost = on_elected, on_lost
        counter = f"{args.namespace}/{args.name}-writes"

        async def work(term: Term) -> None:
            election = elector.election
            assert election is not None
            try:
                await act(term, election)
            finally:
                # Stamped after the last action: drained (it returned) or cancelled.
                emit(Record(RecordKind.WORK_END, _clock.now(), candidate=me, token=term.token))

        async def act(term: Term, election: AsyncElection) -> None:
            while not term.draining.is_set():
                if not term.is_leader():
                    await asyncio.sleep(WRITE_EVERY)
                    continue
                try:
                    result = await election.txn([], [Op.put(counter, str(term.token))])
                    emit(
                        Record(
                            RecordKind.WRITE,
                            _clock.now(),
                            candidate=me,
                            token=term.token,
                            ok=result.succeeded,
                            revision=result.revision,
                        )
                    )
                except LeadershipError:
                    emit(Record(RecordKind.WRITE, _clock.now(), candidate=me, token=term.token))
                except TransportError:
                    pass  # unknown outcome or unreachable: no claim either way
                await asyncio.sleep(WRITE_EVERY)

        async with elector:
            runner = asyncio.create_task(elector.run(work))
            await stop.wait()
            await elector.close()
            with contextlib.suppress(Exception):
                await runner
            await seen
            with contextlib.suppress(TimeoutError):  # the stream ends once the elector stopped
                await asyncio.wait_for(sessions, 5)
    emit(Record(RecordKind.EXITED, _clock.now(), candidate=me, leases=tuple(sorted(leases))))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ttl", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--priority", type=int, default=1)
    parser.add_argument("--drain", type=float, default=0.5)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
