"""A replica whose work takes its time to stop: it prints ``stopping`` when told to, then
waits for a line on stdin before it returns, so a test can signal it again meanwhile.

    python slow_stop_worker.py async|sync

Settings from ``ETCD_ENDPOINTS``, ``ETCD_ELECTOR_NAMESPACE`` and ``ETCD_ELECTOR_TTL``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from etcd_elector import AsyncClient, Client, Term

NAMESPACE = os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector")
TTL = int(os.environ.get("ETCD_ELECTOR_TTL", "10"))


async def async_work(term: Term) -> None:
    print(f"leading, token {term.token}", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        print("stopping", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        raise


async def async_main() -> None:
    async with (
        AsyncClient() as client,
        client.elector("scheduler", namespace=NAMESPACE, ttl=TTL) as elector,
    ):
        elector.stop_on_signals()
        await elector.run(async_work)


def sync_work(term: Term) -> None:
    print(f"leading, token {term.token}", flush=True)
    term.lost.wait(60)
    print("stopping", flush=True)
    sys.stdin.readline()


def sync_main() -> None:
    with (
        Client() as client,
        client.elector("scheduler", namespace=NAMESPACE, ttl=TTL) as elector,
    ):
        elector.stop_on_signals()
        elector.run(sync_work)


if __name__ == "__main__":
    if sys.argv[1] == "async":
        asyncio.run(async_main())
    else:
        sync_main()
    print("stopped, resigned", flush=True)
