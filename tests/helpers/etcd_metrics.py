"""etcd's own view of our watches: the Prometheus metrics it serves on its client URL.

``etcd_debugging_mvcc_watcher_total`` (a gauge, served by etcd 3.4 and 3.5 alike) counts the
watchers etcd holds on all streams: what a client leaked there, whatever the client believes.
"""

from __future__ import annotations

import asyncio
import urllib.request

from etcd_elector.testing import EtcdMember

WATCHERS = "etcd_debugging_mvcc_watcher_total"

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def metric(member: EtcdMember, name: str) -> float:
    """The value of an unlabelled metric; fails when etcd does not serve it."""
    with _HTTP.open(f"{member.client_url}/metrics", timeout=5.0) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    raise AssertionError(f"etcd at {member.client_endpoint} serves no metric {name}")


async def watcher_count(member: EtcdMember) -> int:
    """How many watchers etcd holds right now (asked off the event loop)."""
    return int(await asyncio.to_thread(metric, member, WATCHERS))
