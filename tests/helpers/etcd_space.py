"""etcd's space quota, filled and freed the way an operator sees it.

A test etcd started with a tiny ``--quota-backend-bytes`` is filled until etcd raises its
NOSPACE alarm; freeing it is the documented recovery: delete, compact, defragment, then disarm
the alarm (``etcdctl alarm disarm``; here through etcd's JSON gateway, which needs no etcdctl).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from etcd_elector import AsyncClient, DatabaseSpaceExceeded
from etcd_elector.testing import EtcdCluster, EtcdMember

QUOTA_BYTES = 1024 * 1024
QUOTA_ARGS = ("--quota-backend-bytes", str(QUOTA_BYTES))
_CHUNK = b"x" * 100_000
_MAX_PUTS = 500  # far more than a 1 MiB quota takes

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start_small_etcd(binary: str) -> EtcdCluster:
    """A one-member etcd whose space quota is 1 MiB."""
    return EtcdCluster.start(1, binary=binary, extra_args=QUOTA_ARGS)


async def fill_until_full(client: AsyncClient, prefix: str) -> DatabaseSpaceExceeded:
    """Write under ``prefix`` until etcd refuses for want of space; return its error."""
    for index in range(_MAX_PUTS):
        try:
            await client.put(f"{prefix}fill/{index}", _CHUNK)
        except DatabaseSpaceExceeded as full:
            return full
    raise AssertionError(f"etcd took {_MAX_PUTS} puts of {len(_CHUNK)} bytes without filling up")


async def free_space(member: EtcdMember, client: AsyncClient, prefix: str) -> None:
    """What the error tells an operator to do: delete, compact, defragment, disarm."""
    deleted = await client.delete(f"{prefix}fill/", prefix=True)
    await client.compact(deleted.revision, physical=True)
    await asyncio.to_thread(_post, member, "/v3/maintenance/defragment", {})
    await asyncio.to_thread(
        _post,
        member,
        "/v3/maintenance/alarm",
        {"action": "DEACTIVATE", "memberID": str(member.member_id), "alarm": "NOSPACE"},
    )


def _post(member: EtcdMember, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        member.client_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with _HTTP.open(request, timeout=10.0) as answer:
        answer.read()
