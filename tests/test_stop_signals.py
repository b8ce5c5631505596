"""``stop_on_signals()`` in this process: a real SIGTERM or SIGINT stops the work, resigns and
makes ``run()`` return, on both twins; the handlers that were there before come back. (The
same as users run it, as processes signalled by a shell: tests/test_replicas.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, namespace_of, wait_until

from etcd_elector import AsyncClient, Client, Term
from etcd_elector._portal import Portal
from etcd_elector._stop_signals import COMMAND_LINE_SIGNALS, StopSignals

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
            assert current_handlers() == before  # stopped: a further signal is not ours


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
            assert current_handlers() == handlers  # stopped: a further signal is not ours


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
    portal = Portal()  # a loop on its own thread, as the blocking API runs it
    try:
        stop = StopSignals(portal.loop, forwarded.append)
        stop.install()
        signal.raise_signal(signal.SIGTERM)
        wait_for(lambda: forwarded == [signal.SIGTERM], "the loop to get the signal")
        assert received == []
        closer = threading.Thread(target=stop.restore)
        closer.start()
        closer.join(WAIT_S)
        signal.raise_signal(signal.SIGTERM)
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) == handlers[signal.SIGINT]
        assert signal.set_wakeup_fd(-1) == -1  # ours is gone too
        portal.call(asyncio.sleep, 0)  # whatever the loop had queued has run
        assert forwarded == [signal.SIGTERM]  # the second one was not ours
    finally:
        portal.close()


def test_a_signal_reaches_the_loop_while_the_main_thread_stays_blocked(
    handlers: dict[int, Any],
) -> None:
    """The kernel may hand a signal to any thread, and the main thread may sit in a call that
    does not return for it: the loop learns of the signal by itself (the wakeup fd)."""
    forwarded = threading.Event()
    go = threading.Event()

    def send() -> None:
        if go.wait(WAIT_S):
            os.kill(os.getpid(), signal.SIGTERM)

    portal = Portal()
    sender = threading.Thread(target=send)
    sender.start()  # before the mask below: threads inherit it
    try:
        stop = StopSignals(portal.loop, lambda signum: forwarded.set())
        stop.install()
        # This, the main, thread blocks SIGTERM, so another thread must catch it, and waits in
        # a call that only the loop can end: a Python-level handler would never run in time.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            go.set()
            assert forwarded.wait(WAIT_S)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        stop.restore()
    finally:
        sender.join(WAIT_S)
        portal.close()
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


async def test_one_mechanism_for_the_library_and_the_command_line() -> None:
    """The command line's stop signals are the library's class with SIGHUP added: the first
    signal is remembered and waited for, each one after it escalates, and once one came a
    late repeat is ignored instead of killing the process; with none, the handlers before
    come back."""
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {signum: signal.getsignal(signum) for signum in watched}
    seen: list[int] = []
    repeats: list[int] = []
    try:
        async with StopSignals(None, seen.append, signals=COMMAND_LINE_SIGNALS) as stop:
            stop.on_repeat(repeats.append)
            assert not stop.stopping
            signal.raise_signal(signal.SIGHUP)
            assert await asyncio.wait_for(stop.wait(), WAIT_S) == signal.SIGHUP
            signal.raise_signal(signal.SIGTERM)
            await wait_until(lambda: repeats == [signal.SIGTERM], "the repeat", WAIT_S)
            assert seen == [signal.SIGHUP, signal.SIGTERM]
            assert (stop.received, stop.count, stop.stopping) == (signal.SIGHUP, 2, True)
        assert all(signal.getsignal(signum) == signal.SIG_IGN for signum in watched)

        async with StopSignals(signals=COMMAND_LINE_SIGNALS):
            pass  # no signal came: nothing to ignore
        assert {signum: signal.getsignal(signum) for signum in watched} == {
            signum: signal.SIG_IGN for signum in watched
        }
        for signum, handler in before.items():
            signal.signal(signum, handler)
        async with StopSignals(signals=COMMAND_LINE_SIGNALS):
            assert signal.getsignal(signal.SIGHUP) != before[signal.SIGHUP]
        assert {signum: signal.getsignal(signum) for signum in watched} == before
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
