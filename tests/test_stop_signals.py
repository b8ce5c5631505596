"""``stop_on_signals()`` in this process: a real SIGTERM or SIGINT stops the work, resigns and
makes ``run()`` return, on both twins; the handlers that were there before come back. (The
same as users run it, as processes signalled by a shell: tests/test_replicas.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, namespace_of, wait_until

from etcd_elector import AsyncClient, Client, Term
from etcd_elector._stop_signals import StopSignals

pytestmark = pytest.mark.timeout(60)

TTL = 2


def current_handlers() -> dict[int, Any]:
    return {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}


@pytest.fixture
def handlers() -> Iterator[dict[int, Any]]:
    """The SIGTERM and SIGINT handlers before the test; put back whatever the test did."""
    before = current_handlers()
    yield before
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("handlers")  # puts them back even if the test fails
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_stops_the_async_elector_and_the_handlers_come_back(
    signum: int, etcd_endpoint: str, etcd_prefix: str
) -> None:
    lost: list[str] = []
    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector(
            "signalled",
            namespace=namespace_of(etcd_prefix),
            ttl=TTL,
            on_lost=lambda term, reason: lost.append(reason),
        )

        async def work(term: Term) -> None:
            await asyncio.Event().wait()

        async with elector:
            before = current_handlers()  # inside the loop's run: asyncio's own SIGINT handler
            elector.stop_on_signals()
            assert current_handlers() != before
            runner = asyncio.create_task(elector.run(work))
            await wait_until(elector.is_leader, "elected")
            os.kill(os.getpid(), signum)
            assert await asyncio.wait_for(runner, WAIT_S) is None
            assert lost == ["closed"]
            assert await elector.leader() is None  # resigned before run() returned
        assert current_handlers() == before


def test_a_signal_stops_the_blocking_elector_while_run_blocks_the_main_thread(
    handlers: dict[int, Any], etcd_endpoint: str, etcd_prefix: str
) -> None:
    elected = threading.Event()
    seen_lost: list[str | None] = []

    def work(term: Term) -> None:
        elected.set()
        term.lost.wait(WAIT_S)  # set when the signal stops the elector
        seen_lost.append(term.end_reason)

    def signal_once_elected() -> None:
        if elected.wait(WAIT_S):
            os.kill(os.getpid(), signal.SIGTERM)

    with Client(etcd_endpoint) as client:
        namespace = namespace_of(etcd_prefix)
        with client.elector("signalled", namespace=namespace, ttl=TTL) as elector:
            elector.stop_on_signals()
            sender = threading.Thread(target=signal_once_elected)
            sender.start()
            assert elector.run(work) is None  # blocks this, the main, thread
            sender.join(WAIT_S)
            assert seen_lost == ["closed"]
            assert client.get_prefix(f"{namespace}/signalled/").kvs == ()
        assert current_handlers() == handlers


def test_stop_on_signals_is_refused_outside_the_main_thread(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    errors: list[BaseException] = []
    with (
        Client(etcd_endpoint) as client,
        client.elector("threaded", namespace=namespace_of(etcd_prefix), ttl=TTL) as elector,
    ):

        def install() -> None:
            try:
                elector.stop_on_signals()
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=install)
        thread.start()
        thread.join(WAIT_S)
    assert len(errors) == 1
    assert "must be called from the main thread" in str(errors[0])


def test_handlers_put_back_from_another_thread_take_over_at_the_next_signal(
    handlers: dict[int, Any],
) -> None:
    """Only the main thread may set handlers: closing elsewhere hands the signal back the next
    time it comes, to the handler that was there before, as if we had never been installed."""
    received: list[int] = []
    forwarded: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    loop = asyncio.new_event_loop()
    try:
        stop = StopSignals(loop, forwarded.append)
        stop.install()
        signal.raise_signal(signal.SIGTERM)
        assert received == []  # ours now: forwarded to the loop (which is not running here)
        closer = threading.Thread(target=stop.restore)
        closer.start()
        closer.join(WAIT_S)
        signal.raise_signal(signal.SIGTERM)
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) == handlers[signal.SIGINT]
        loop.run_until_complete(asyncio.sleep(0))  # run what was forwarded
        assert forwarded == [signal.SIGTERM]
    finally:
        loop.close()
