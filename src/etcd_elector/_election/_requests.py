"""Planned moves anyone with access can ask for: a handoff, a pause, a resume.

Each is one write to a moves key (:mod:`._moves`) that the electors of the election follow;
none needs a session. A handoff request names the term it is for, so a request that found no
leader to carry it out is never acted on by a later one.
"""

from __future__ import annotations

from .._identity import default_identity
from ..etcd._client import AsyncEtcdClient
from ..etcd._txn import Compare, Op
from ._moves import HandoffRequest, MoveKeys, Pause

__all__ = ["clear_pause", "read_pause", "request_handoff", "set_pause", "withdraw_request"]


async def request_handoff(
    client: AsyncEtcdClient,
    keys: MoveKeys,
    token: int,
    to: str | None,
    by: str | None,
) -> int:
    """Ask the leader whose term is ``token`` to hand off (to the candidate whose value is
    ``to``); return the request's revision."""
    request = HandoffRequest.make(to, by or default_identity(), token)
    result = await client.put(keys.request, request.encode())
    return result.revision


async def withdraw_request(client: AsyncEtcdClient, keys: MoveKeys, revision: int) -> bool:
    """Delete our request if it is still the one written at ``revision`` (not carried out);
    ``True`` if it was."""
    result = await client.txn(
        [Compare.mod_revision(keys.request) == revision], [Op.delete(keys.request)]
    )
    return result.succeeded


async def set_pause(
    client: AsyncEtcdClient, keys: MoveKeys, reason: str | None, by: str | None
) -> Pause:
    pause = Pause.make(by or default_identity(), reason)
    await client.put(keys.pause, pause.encode())
    return pause


async def read_pause(client: AsyncEtcdClient, keys: MoveKeys) -> Pause | None:
    found = (await client.get(keys.pause)).kv
    return None if found is None else Pause.decode(found.value)


async def clear_pause(client: AsyncEtcdClient, keys: MoveKeys) -> bool:
    """Lift the pause; ``True`` if there was one."""
    return (await client.delete(keys.pause)).deleted > 0
