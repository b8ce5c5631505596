"""etcd's gRPC methods and the mapping of gRPC failures to our errors.

Our protobuf package is private (``etcd_elector.etcdserverpb``) so our descriptors never clash
with another etcd client's in the same process; the method paths below are etcd's real ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc

from .. import _metrics
from .._bounded import bounded
from .._errors import (
    AmbiguousResult,
    AuthenticationFailed,
    ConnectionFailed,
    DatabaseSpaceExceeded,
    EtcdServerError,
    LeaseNotFound,
    NoLeader,
    PermissionDenied,
    RequestRejected,
    RequestTimeout,
    RequestTooLarge,
    TransportError,
    WatchCanceled,
    WatchCompacted,
    WatchError,
)
from .._proto import rpc_pb2
from .._tls import handshake_error

__all__ = [
    "Method",
    "cancelled_by_us",
    "finished_stream_error",
    "is_lost_write",
    "map_rpc_error",
    "map_status",
    "token_rejected",
    "watch_canceled_error",
    "watch_refused_error",
    "write_before",
]


@dataclass(frozen=True)
class Method:
    path: str
    request: Any
    response: Any


RANGE = Method("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest, rpc_pb2.RangeResponse)
PUT = Method("/etcdserverpb.KV/Put", rpc_pb2.PutRequest, rpc_pb2.PutResponse)
DELETE_RANGE = Method(
    "/etcdserverpb.KV/DeleteRange", rpc_pb2.DeleteRangeRequest, rpc_pb2.DeleteRangeResponse
)
TXN = Method("/etcdserverpb.KV/Txn", rpc_pb2.TxnRequest, rpc_pb2.TxnResponse)
COMPACT = Method("/etcdserverpb.KV/Compact", rpc_pb2.CompactionRequest, rpc_pb2.CompactionResponse)
WATCH = Method("/etcdserverpb.Watch/Watch", rpc_pb2.WatchRequest, rpc_pb2.WatchResponse)
LEASE_GRANT = Method(
    "/etcdserverpb.Lease/LeaseGrant", rpc_pb2.LeaseGrantRequest, rpc_pb2.LeaseGrantResponse
)
LEASE_REVOKE = Method(
    "/etcdserverpb.Lease/LeaseRevoke", rpc_pb2.LeaseRevokeRequest, rpc_pb2.LeaseRevokeResponse
)
LEASE_KEEPALIVE = Method(
    "/etcdserverpb.Lease/LeaseKeepAlive",
    rpc_pb2.LeaseKeepAliveRequest,
    rpc_pb2.LeaseKeepAliveResponse,
)
LEASE_TIME_TO_LIVE = Method(
    "/etcdserverpb.Lease/LeaseTimeToLive",
    rpc_pb2.LeaseTimeToLiveRequest,
    rpc_pb2.LeaseTimeToLiveResponse,
)
LEASE_LEASES = Method(
    "/etcdserverpb.Lease/LeaseLeases", rpc_pb2.LeaseLeasesRequest, rpc_pb2.LeaseLeasesResponse
)
MEMBER_LIST = Method(
    "/etcdserverpb.Cluster/MemberList", rpc_pb2.MemberListRequest, rpc_pb2.MemberListResponse
)
STATUS = Method("/etcdserverpb.Maintenance/Status", rpc_pb2.StatusRequest, rpc_pb2.StatusResponse)
AUTHENTICATE = Method(
    "/etcdserverpb.Auth/Authenticate", rpc_pb2.AuthenticateRequest, rpc_pb2.AuthenticateResponse
)

_DETAILS_LIMIT = 300

# etcd rejects these before proposing anything to raft, so a write that got one never applied.
_NOT_APPLIED = ("no leader", "too many requests", "not capable", "permission denied")

# etcd's answers to a token it no longer accepts (expired, or older than a change of users or
# roles), or to a missing one: a fresh token cures them. A write that got one never applied.
_TOKEN_REJECTED = (
    "invalid auth token",
    "revision of auth store is old",
    "auth: revision in header is old",
    "user name is empty",
)


# etcd's refusals of a request as such (checked before anything is applied), with what to do:
# sending the same request again cannot succeed.
_REJECTED = (
    (
        "too many operations in txn request",
        "etcd allows --max-txn-ops operations in one transaction (128 by default): split the "
        "transaction, or raise the limit on every member",
    ),
    (
        "duplicate key given in txn request",
        "a transaction may write each key only once: merge the writes to the same key",
    ),
    ("key is not provided", "give a non-empty key"),
    ("value is provided", "a put that keeps the key's value (ignore_value) takes no value"),
    ("lease is provided", "a put that keeps the key's lease (ignore_lease) takes no lease"),
    ("too large lease ttl", "ask for a shorter lease TTL"),
)

# The request is over etcd's --max-request-bytes (etcd's own check), or so far over it that
# etcd's gRPC server refused to read it (above that limit plus 512 KiB).
_TOO_LARGE = ("request is too large", "grpc: received message larger than max")

# etcd's database reached --quota-backend-bytes: the NOSPACE alarm is raised, and etcd refuses
# every write that adds data (puts, new leases) until an operator frees space and disarms it.
_NO_SPACE = "database space exceeded"


def token_rejected(details: str | None) -> bool:
    """Whether etcd refused a call only because of its auth token (get a new one and retry)."""
    lowered = (details or "").lower()
    return any(marker in lowered for marker in _TOKEN_REJECTED)


def map_rpc_error(exc: grpc.aio.AioRpcError, endpoint: str, *, write: bool) -> TransportError:
    """Translate a failed call into our error tree.

    ``write`` says the request was a mutation that reached the wire: then any failure whose
    outcome is unknown (timeout, broken connection, etcd's own timeouts) is ``AmbiguousResult``.
    """
    return map_status(exc.code(), exc.details(), endpoint, write=write)


async def finished_stream_error(call: Any, endpoint: str, what: str) -> TransportError:
    """The error a stream call that gRPC already finished ended with (etcd's status, mapped).

    Writing to such a call raises a bare "RPC already finished"; the status says why.
    """
    code, details = None, None
    if call.done():
        try:
            code = await call.code()
            details = await call.details()
        except Exception:  # the call cannot tell: report it as closed
            code = None
    if code is None or code == grpc.StatusCode.OK:
        return ConnectionFailed(f"etcd at {endpoint} closed the {what} stream", endpoint=endpoint)
    mapped = map_status(code, details, endpoint, write=False)
    if type(mapped) is EtcdServerError:
        # Nothing more specific (gRPC reports a write that lost the race with the stream's
        # end as INTERNAL): for the caller the stream just broke.
        return ConnectionFailed(
            f"etcd at {endpoint} ended the {what} stream ({code.name}: {details})",
            endpoint=endpoint,
        )
    return mapped


def is_lost_write(exc: BaseException) -> bool:
    """Whether a stream write failed only because gRPC had already seen the stream end.

    gRPC then reports a bare INTERNAL in place of the stream's real status.
    """
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.INTERNAL


def map_status(
    code: grpc.StatusCode, details: str | None, endpoint: str, *, write: bool
) -> TransportError:
    """:func:`map_rpc_error` for a status code and its details."""
    details = (details or code.name.lower()).strip()
    lowered = details.lower()
    details = bounded(details, _DETAILS_LIMIT)  # etcd's text goes into one-line messages
    where = f"etcd at {endpoint}"
    if "no leader" in lowered:
        return NoLeader(f"{where} has no raft leader (lost quorum): {details}", endpoint=endpoint)
    if code == grpc.StatusCode.UNAVAILABLE:
        tls = handshake_error(details, endpoint)
        if tls is not None:
            return tls  # nothing was sent: never ambiguous
    if "user name is empty" in lowered:
        return AuthenticationFailed(
            f"{where} requires credentials (authentication is enabled): pass a user and "
            f"password (--user, --password-file, ETCD_USER, ETCD_PASSWORD) ({details})",
            endpoint=endpoint,
        )
    if "invalid user id or password" in lowered:
        return AuthenticationFailed(
            f"{where} rejected the credentials: wrong user name or password ({details})",
            endpoint=endpoint,
        )
    if code == grpc.StatusCode.PERMISSION_DENIED or "permission denied" in lowered:
        return PermissionDenied(
            f"{where} denied the request: {details}; grant the user's role access to the key range",
            endpoint=endpoint,
        )
    if code == grpc.StatusCode.UNAUTHENTICATED or any(
        marker in lowered
        for marker in (
            "authentication failed",
            "user name is empty",
            "user name not found",
            "invalid auth token",
            "auth: revision",
            "revision of auth store is old",
        )
    ):
        return AuthenticationFailed(
            f"{where} rejected the credentials: {details}", endpoint=endpoint
        )
    if "lease not found" in lowered:
        return LeaseNotFound(f"{where}: {details}", endpoint=endpoint)
    if _NO_SPACE in lowered:
        return DatabaseSpaceExceeded(
            f"{where} refused the write: its database is full (NOSPACE alarm, {details}); "
            "an operator must free space: compact old revisions, defragment every member, "
            "then `etcdctl alarm disarm` (or raise --quota-backend-bytes)",
            endpoint=endpoint,
        )
    if any(marker in lowered for marker in _TOO_LARGE):
        return RequestTooLarge(
            f"{where} refused a request as too large ({details}); etcd accepts requests up "
            "to --max-request-bytes (1.5 MiB by default): store a smaller value, or raise "
            "the limit on every member",
            endpoint=endpoint,
        )
    for marker, advice in _REJECTED:
        if marker in lowered:
            return RequestRejected(
                f"{where} refused the request ({details}): {advice}", endpoint=endpoint
            )
    if (
        write
        and not any(marker in lowered for marker in _NOT_APPLIED)
        and code
        in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.UNKNOWN,
            grpc.StatusCode.INTERNAL,
        )
    ):
        return AmbiguousResult(
            f"write to {where} may or may not have committed ({code.name}: {details}); "
            "re-read the keys before deciding",
            endpoint=endpoint,
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or "request timed out" in lowered:
        return RequestTimeout(f"{where} did not answer in time ({details})", endpoint=endpoint)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return ConnectionFailed(f"cannot reach {where}: {details}", endpoint=endpoint)
    return EtcdServerError(f"{where} answered {code.name}: {details}", endpoint=endpoint)


def watch_refused_error(cancel_reason: str, endpoint: str) -> TransportError | None:
    """The error for a watch creation etcd refused for want of access, or ``None`` when it
    refused for another reason (etcd 3.5 answers an expired token with "permission denied")."""
    reason = bounded(cancel_reason)  # etcd's text, shown in a one-line message
    where = f"etcd at {endpoint}"
    if token_rejected(cancel_reason):
        return AuthenticationFailed(
            f"{where} refused the watch's credentials: {reason}", endpoint=endpoint
        )
    if "permission denied" in cancel_reason.lower():
        return PermissionDenied(
            f"{where} denied the watch: {reason}; grant the user's role read access to the "
            "key range",
            endpoint=endpoint,
        )
    return None


def watch_canceled_error(response: rpc_pb2.WatchResponse) -> WatchError:
    """The error for a watch etcd cancelled: compacted away, or for the reason it gives."""
    if response.compact_revision:
        _metrics.sink().watch_compacted()
        return WatchCompacted(
            f"watch start revision is compacted; etcd keeps history from revision "
            f"{response.compact_revision}",
            compact_revision=response.compact_revision,
        )
    reason = bounded(response.cancel_reason or "no reason given")
    return WatchCanceled(f"etcd cancelled the watch: {reason}", reason=reason)


async def write_before(call: Any, request: Any, timeout: float) -> None:
    """Write ``request`` to a stream call within ``timeout`` seconds.

    A write that is not done when this returns (it timed out, or the writer was stopped) is
    cancelled, and that ends the whole RPC: callers give up the stream in both cases anyway.
    gRPC may never finish a write on a call cancelled under it, so nothing else would end it.

    :raises TimeoutError: if the write did not finish in time.
    """
    write = asyncio.ensure_future(call.write(request))
    # Its error is read whatever becomes of us: the writer may be stopped with its stream at
    # the very moment the write fails, and then nothing else would read it.
    write.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait([write], timeout=timeout)
    finally:
        if not write.done():
            write.cancel()
    if not done:
        raise TimeoutError
    write.result()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def cancelled_by_us() -> bool:
    """Whether a ``CancelledError`` in the current task means it was asked to stop.

    gRPC also raises ``CancelledError`` into calls on a channel that was closed under them
    (another call reset the connection): that is a broken call, to be handled as one.
    """
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
