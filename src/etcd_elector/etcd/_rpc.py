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
    AuthenticationFailed,
    ConnectionFailed,
    EtcdServerError,
    PermissionDenied,
    TransportError,
    WatchCanceled,
    WatchCompacted,
    WatchError,
)
from .._proto import rpc_pb2
from . import _status
from ._status import token_rejected

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
    return _status.map_status(code.name, details, endpoint, write=write)


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
