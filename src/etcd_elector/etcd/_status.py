"""Which of our errors a failed etcd call becomes, from its gRPC status name and etcd's
message: the one mapping, shared by the gRPC transport (:mod:`._rpc`) and the JSON gateway
(:mod:`._gateway`), which carries the same status and message in its error bodies.
"""

from __future__ import annotations

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
)
from .._tls import handshake_error

__all__ = [
    "AUTH_NOT_ENABLED",
    "cannot_connect",
    "map_status",
    "refused_user",
    "token_rejected",
]

# etcd's answer to Authenticate when it has authentication off: calls then carry no token.
AUTH_NOT_ENABLED = "authentication is not enabled"

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


def map_status(code: str, details: str | None, endpoint: str, *, write: bool) -> TransportError:
    """Our error for a failed call: ``code`` is the gRPC status name (``"UNAVAILABLE"``),
    ``details`` etcd's message.

    ``write`` says the request was a mutation that reached the wire: then any failure whose
    outcome is unknown (timeout, broken connection, etcd's own timeouts) is ``AmbiguousResult``.
    """
    details = (details or code.lower()).strip()
    lowered = details.lower()
    details = bounded(details, _DETAILS_LIMIT)  # etcd's text goes into one-line messages
    where = f"etcd at {endpoint}"
    if "no leader" in lowered:
        return NoLeader(f"{where} has no raft leader (lost quorum): {details}", endpoint=endpoint)
    if code == "UNAVAILABLE":
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
    if code == "PERMISSION_DENIED" or "permission denied" in lowered:
        return PermissionDenied(
            f"{where} denied the request: {details}; grant the user's role access to the key range",
            endpoint=endpoint,
        )
    if code == "UNAUTHENTICATED" or any(
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
            "UNAVAILABLE",
            "DEADLINE_EXCEEDED",
            "CANCELLED",
            "UNKNOWN",
            "INTERNAL",
        )
    ):
        return AmbiguousResult(
            f"write to {where} may or may not have committed ({code}: {details}); "
            "re-read the keys before deciding",
            endpoint=endpoint,
        )
    if code == "DEADLINE_EXCEEDED" or "request timed out" in lowered:
        return RequestTimeout(f"{where} did not answer in time ({details})", endpoint=endpoint)
    if code in ("UNAVAILABLE", "CANCELLED"):
        return ConnectionFailed(f"cannot reach {where}: {details}", endpoint=endpoint)
    return EtcdServerError(f"{where} answered {code}: {details}", endpoint=endpoint)


def cannot_connect(tried: str) -> ConnectionFailed:
    """No endpoint of ``tried`` (their addresses, joined) could be reached."""
    return ConnectionFailed(
        f"cannot connect to etcd at {tried}: check that etcd is running and the endpoints "
        "are right (--endpoints / ETCD_ENDPOINTS)"
    )


def refused_user(username: str, endpoint: str | None) -> AuthenticationFailed:
    """etcd refused to authenticate ``username``: the one message for a wrong user or password."""
    return AuthenticationFailed(
        f"etcd at {endpoint} refused user {username!r}: wrong user name "
        "or password (check --user and --password-file / ETCD_USER and "
        "ETCD_PASSWORD)",
        endpoint=endpoint,
    )
