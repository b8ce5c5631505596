"""``CandidateKey``: a candidate's key in etcd, and the only writes ever made to it.

The key is ``<namespace>/<election>/<lease id in hex>``, bound to the session's lease, so its
name says whose it is. Every write is a compare-and-swap: created only where no key exists,
changed and deleted only while it is the same key (its create revision, the term's token). A
write whose outcome is unknown (``AmbiguousResult``) is re-read, never sent again blindly.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from .._bounded import bounded
from .._errors import AmbiguousResult, CampaignFailed, ConfigurationError, TransportError
from ..etcd._client import AsyncEtcdClient
from ..etcd._txn import Compare, Op
from ..etcd._types import KeyValue, RangeResult

if TYPE_CHECKING:
    from ._session import AsyncSession

__all__ = ["CandidateKey", "claim_candidacy"]

#: Runs a read of the key until it succeeds (the caller's deadline bounds it).
RideOut = Callable[[Callable[[], Awaitable[KeyValue | None]]], Awaitable[KeyValue | None]]

_DELETE_ATTEMPTS = 3

# Election prefixes in use on each session (weak: a session forgotten frees its entry).
_claimed: weakref.WeakKeyDictionary[AsyncSession, set[bytes]] = weakref.WeakKeyDictionary()
_claimed_lock = threading.Lock()  # the blocking twins make elections from any thread


def claim_candidacy(session: AsyncSession, prefix: bytes, name: str, namespace: str) -> None:
    """Record that ``session`` has an election under ``prefix``. A session holds one candidacy
    per election, its key being named after the session's lease: a second election object
    would silently share that key.

    :raises ConfigurationError: if the session has one already.
    """
    with _claimed_lock:
        in_use = _claimed.setdefault(session, set())
        if prefix in in_use:
            raise ConfigurationError(
                f"this session already has an election {name!r} in namespace {namespace!r}: a "
                "session holds one candidate key per election, so keep using that election "
                "object, or open another session for a second candidate"
            )
        in_use.add(prefix)


class CandidateKey:
    """One candidate key of ``lease_id`` on ``client``; ``log`` writes the election's log
    lines (``log(level, message, **fields)``)."""

    def __init__(
        self, client: AsyncEtcdClient, key: bytes, lease_id: int, log: Callable[..., None]
    ) -> None:
        self.client = client
        self.key = key
        self.lease_id = lease_id
        self._log = log

    async def create(
        self, value: bytes, ride_out: RideOut, also: Sequence[Op] = ()
    ) -> tuple[int, bytes]:
        """Create the key with a CAS, or find it already ours; return its create revision (the
        token) and the value it holds (``value``, unless it was ours from before).
        ``ride_out`` repeats a read through transport trouble (a campaign rides out an outage
        until its session's deadline). ``also`` are writes made in the same transaction as
        the create (a declared priority: whoever sees it sees the key).

        :raises CampaignFailed: if the key exists under another lease.
        """
        key, lease = self.key, self.lease_id
        while True:
            try:
                result = await self.client.txn(
                    [Compare.create_revision(key) == 0],
                    [Op.put(key, value, lease=lease), *also],
                    [Op.get(key)],
                )
            except AmbiguousResult:
                # The key name carries our lease id, so reading it tells us what happened;
                # read until we know (a lost session ends the wait), or a ghost key may stay.
                existing = await ride_out(self.read)
                if existing is None:
                    continue  # not created: the CAS is safe to send again
                return existing.create_revision, existing.value
            if result.succeeded:
                return result.revision, value
            found: RangeResult = result.responses[0]
            if not found.kvs:
                continue  # deleted between compare and read: try again
            kv = found.kvs[0]
            if kv.lease != lease:
                raise CampaignFailed(
                    f"key {bounded(key)} exists under another lease {kv.lease:x}; "
                    "remove it or use another namespace"
                )
            return kv.create_revision, kv.value

    async def read(self) -> KeyValue | None:
        """The key as etcd holds it now (``None``: it does not exist).

        :raises CampaignFailed: if it exists under another lease.
        """
        found = (await self.client.get(self.key)).kv
        if found is not None and found.lease != self.lease_id:
            raise CampaignFailed(f"key {bounded(self.key)} belongs to lease {found.lease:x}")
        return found

    async def put(self, token: int, value: bytes) -> bool:
        """Set the key's value while it is the key created at ``token``; ``False`` if it is
        gone (deleted, or replaced by another)."""
        key = self.key
        while True:
            try:
                result = await self.client.txn(
                    [Compare.create_revision(key) == token],
                    [Op.put(key, value, lease=self.lease_id)],
                )
            except AmbiguousResult:
                existing = await self.client.get(key)
                if existing.kv is None or existing.kv.create_revision != token:
                    return False
                if existing.kv.value == value:
                    return True
                continue  # our guarded put did not apply; sending it again is safe
            return result.succeeded

    async def delete(self, token: int | None) -> None:
        """Delete the key if it is still the one created at ``token`` (or, with no token, if
        it still carries our lease). When etcd cannot be told, the key vanishes with the lease
        (and a warning says so)."""
        key = self.key
        compares = [Compare.lease(key) == self.lease_id]
        if token:
            compares = [Compare.create_revision(key) == token]
        for _attempt in range(_DELETE_ATTEMPTS):
            try:
                await self.client.txn(compares, [Op.delete(key)])
                return
            except AmbiguousResult:
                if (await self.client.get(key)).kv is None:
                    return
            except TransportError as exc:
                self._log(
                    logging.WARNING,
                    "could not delete our key (it vanishes with the lease)",
                    key=key,
                    detail=exc,
                )
                return
