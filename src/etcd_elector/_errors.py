"""Every error etcd-elector raises, in one tree.

    EtcdElectorError                  root: catch this to catch everything of ours
    ├── ConfigurationError        !   bad input found before any I/O (also a ValueError)
    ├── ClientClosed              !   the client is not open: closed, or never opened
                                      (also a RuntimeError)
    ├── TransportError                talking to etcd failed
    │   ├── ConnectionFailed          no endpoint could be reached or it dropped us
    │   │   ├── NoLeader              the member we reached has lost its raft leader (quorum)
    │   │   └── TLSHandshakeFailed    TLS failed: unknown CA, hostname, expiry... (has `reason`)
    │   ├── RequestTimeout            a call got no answer before its deadline
    │   ├── AmbiguousResult           a write may or may not have committed: re-read, never retry
    │   ├── AuthenticationFailed  !   etcd refused our credentials
    │   ├── PermissionDenied      !   our user's role lacks access to a key or call
    │   ├── LeaseNotFound             the lease does not exist (expired or revoked)
    │   ├── RequestRejected       !   etcd refused the request itself (empty key, too many ops...)
    │   │   └── RequestTooLarge   !   the request is over etcd's --max-request-bytes
    │   ├── DatabaseSpaceExceeded     etcd's NOSPACE alarm: writes refused until space is freed
    │   └── EtcdServerError           any other error etcd answered with
    ├── WatchError                    a watch ended
    │   ├── WatchCompacted            the start revision was compacted (has `compact_revision`)
    │   └── WatchCanceled             etcd cancelled the watch (has `reason`)
    └── LeadershipError               about a term of leadership
        ├── SessionLost               the session's lease is (or may be) gone (has `reason`)
        ├── NotLeader             !   the call needs a term we do not hold
        ├── LeadershipLost            a term we held has ended (has `reason`)
        └── CampaignFailed            a campaign could not finish (our key vanished, and so on)
            └── TokenRegressed        won with a token not above the highest known (etcd lost
                                      history: wiped, or restored from an older snapshot)

``!`` marks the errors that retrying cannot cure: their class attribute ``retriable`` is
``False``, and every retry loop of ours (the elector, campaigns, observers) raises them at once
instead of trying again. Someone has to change something first: the settings, the request, the
user's permissions. The others are ``retriable``: the same call may succeed later by itself, or
once an operator has acted (``DatabaseSpaceExceeded``: the elector keeps trying, and says so).

Errors raised at the gRPC boundary keep the original exception as ``__cause__``.
"""

from __future__ import annotations

from typing import ClassVar

from ._reasons import EndReason

__all__ = [
    "AmbiguousResult",
    "AuthenticationFailed",
    "CampaignFailed",
    "ClientClosed",
    "ConfigurationError",
    "ConnectionFailed",
    "DatabaseSpaceExceeded",
    "EtcdElectorError",
    "EtcdServerError",
    "LeadershipError",
    "LeadershipLost",
    "LeaseNotFound",
    "NoLeader",
    "NotLeader",
    "PermissionDenied",
    "RequestRejected",
    "RequestTimeout",
    "RequestTooLarge",
    "SessionLost",
    "TLSHandshakeFailed",
    "TokenRegressed",
    "TransportError",
    "WatchCanceled",
    "WatchCompacted",
    "WatchError",
]


class EtcdElectorError(Exception):
    """Root of every error raised by etcd-elector.

    ``retriable`` says whether trying again can cure the error without anyone changing the
    settings, the request or the permissions (see the tree at the top of this module).
    """

    retriable: ClassVar[bool] = False


class ConfigurationError(EtcdElectorError, ValueError):
    """Invalid settings or arguments, detected before talking to etcd."""


class ClientClosed(EtcdElectorError, RuntimeError):
    """The client is not open: it was closed, or never opened (``async with AsyncClient(...)``
    or ``await client.open()`` opens it). A call on it cannot succeed, nor can a retry."""


class TransportError(EtcdElectorError):
    """A call to etcd failed. ``endpoint`` names the member, when one was involved."""

    retriable: ClassVar[bool] = True

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ConnectionFailed(TransportError):
    """No endpoint answered, or the connection broke before an answer."""


class NoLeader(ConnectionFailed):
    """The etcd member has no raft leader (it lost quorum); another member may still serve."""


class TLSHandshakeFailed(ConnectionFailed):
    """The TLS handshake with etcd failed; ``reason`` says why, as one of the constants below.

    gRPC retries the connection, so a fixed certificate on either side heals it.
    """

    UNKNOWN_CA = "unknown-ca"  # etcd's certificate is not signed by a CA we trust
    EXPIRED = "expired"  # etcd's certificate has expired
    NOT_YET_VALID = "not-yet-valid"  # etcd's certificate is not valid yet (clocks?)
    HOSTNAME_MISMATCH = "hostname-mismatch"  # etcd's certificate is for another name
    CLIENT_CERTIFICATE_REJECTED = "client-certificate-rejected"  # missing, unknown CA, expired
    NOT_TLS = "not-tls"  # etcd speaks plaintext on that port
    OTHER = "other"

    def __init__(self, message: str, *, endpoint: str | None = None, reason: str) -> None:
        super().__init__(message, endpoint=endpoint)
        self.reason = reason


class RequestTimeout(TransportError, TimeoutError):
    """The call's deadline passed without an answer (also a built-in ``TimeoutError``)."""


class AmbiguousResult(TransportError):
    """A write was sent but its outcome is unknown: it may have committed.

    Never retry a compare-and-swap after this; read the affected keys to learn what happened.
    """


class AuthenticationFailed(TransportError):
    """etcd rejected the user name, password, token or client certificate."""

    retriable: ClassVar[bool] = False


class PermissionDenied(TransportError):
    """The authenticated user may not perform this call on this key."""

    retriable: ClassVar[bool] = False


class LeaseNotFound(TransportError):
    """The lease does not exist: it expired or was revoked."""


class RequestRejected(TransportError):
    """etcd refused the request itself: an empty key, too many operations in one transaction,
    a key written twice in one transaction... Sending it again cannot succeed; the message
    says what to change."""

    retriable: ClassVar[bool] = False


class RequestTooLarge(RequestRejected):
    """The request is larger than etcd accepts (``--max-request-bytes``, 1.5 MiB by default):
    store a smaller value, or raise the limit on every etcd member."""


class DatabaseSpaceExceeded(TransportError):
    """etcd's database reached its space quota (``--quota-backend-bytes``) and etcd raised
    its NOSPACE alarm: it refuses writes and new leases until an operator frees space
    (compact, defragment every member, then ``etcdctl alarm disarm``).

    Retriable, because an operator can cure it: the elector keeps campaigning, and logs it.
    """


class EtcdServerError(TransportError):
    """etcd answered with an error we have no more specific class for."""


class WatchError(EtcdElectorError):
    """A watch ended and will not deliver more events."""

    retriable: ClassVar[bool] = True


class WatchCompacted(WatchError):
    """The watch's start revision is older than etcd's compaction point."""

    def __init__(self, message: str, *, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class WatchCanceled(WatchError):
    """etcd cancelled the watch; ``reason`` carries etcd's explanation."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class LeadershipError(EtcdElectorError):
    """Base for errors about sessions, campaigns and terms."""

    retriable: ClassVar[bool] = True


class SessionLost(LeadershipError):
    """The session's lease expired, was revoked, or its local deadline passed; ``reason``
    (an :class:`EndReason`) says which."""

    def __init__(self, message: str, *, reason: EndReason) -> None:
        super().__init__(message)
        self.reason = reason


class NotLeader(LeadershipError):
    """The operation needs leadership that this candidate does not hold."""

    retriable: ClassVar[bool] = False


class LeadershipLost(LeadershipError):
    """A term of leadership ended; ``reason`` (an :class:`EndReason`) says why."""

    def __init__(self, message: str, *, reason: EndReason) -> None:
        super().__init__(message)
        self.reason = reason


class CampaignFailed(LeadershipError):
    """A campaign could not complete (for example our key was deleted while we waited)."""


class TokenRegressed(CampaignFailed):
    """The campaign won, but with a fencing token (``token``) not above ``floor``, the highest
    revision this process knows etcd issued before: etcd lost history (its data was wiped, or
    restored from an older snapshot), so outside systems may already have seen this token.

    The campaign deleted its key. Leadership is refused until etcd's revisions pass ``floor``
    or the operator accepts the new history (``client.history.accept_reset()``).
    """

    def __init__(self, message: str, *, token: int, floor: int) -> None:
        super().__init__(message)
        self.token = token
        self.floor = floor
