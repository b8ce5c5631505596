"""``GatewayClient``: a blocking, read-only etcd client over etcd's JSON gateway, built on the
standard library alone.

etcd 3.4 and later serve their gRPC API as JSON on every client URL (``POST /v3/kv/range``,
``/v3/lease/timetolive``, ``/v3/auth/authenticate``): bytes travel as base64, 64-bit integers
as decimal strings, fields at their zero value are left out, and a failure is an HTTP error
status with ``{"code": <gRPC status>, "message": ...}``. A command that reads once and exits
(``etcd-elector leader``) can then start without gRPC, asyncio and protobuf, whose imports
alone take longer than the whole read. Everything that streams (watches, keepalives) and every
write stays on the gRPC transport (:mod:`._transport`).

What it keeps of the transport's promises, so that both end in the same errors:

- reads are linearizable (never serializable) and carry etcd's require-leader marker (the
  gateway passes ``Grpc-Metadata-*`` headers on as gRPC metadata): a member that lost quorum
  answers "no leader" at once instead of waiting out etcd's own request timeout;
- each call has a deadline (the client's timeout, failover included), and a member that stays
  silent gets only its share of what is left, so the next endpoint still gets its chance;
- failover, in preference order, on a refused or broken connection, a timeout or "no leader";
  an endpoint that failed goes last for the calls after;
- TLS with the same files, server name and verification as the gRPC channels, a failed
  handshake explained by the same :func:`~.._tls.handshake_error`;
- a user and password exchanged for a token (sent as ``Authorization``), and a new token once
  when etcd refuses the old one; errors mapped by the transport's own :func:`~._status.map_status`;
- every answer is untrusted: read up to :data:`MAX_ANSWER_BYTES` (:mod:`._http`), decoded
  strictly (:mod:`._gateway_json`), etcd's words bounded before they reach a message.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from .. import _clock, _tls
from .._bounded import bounded
from .._config import ClientConfig, Endpoint
from .._errors import (
    AuthenticationFailed,
    ConnectionFailed,
    EtcdServerError,
    RequestTimeout,
    TLSHandshakeFailed,
    TransportError,
)
from .._keys import prefix_range_end
from . import _http
from ._gateway_json import Malformed, b64, error_status, lease_info, range_result, token
from ._reads import LeaseInfo, RangeResult
from ._status import AUTH_NOT_ENABLED, cannot_connect, map_status, refused_user, token_rejected

__all__ = ["MAX_ANSWER_BYTES", "GatewayClient"]

log = logging.getLogger(__name__)

#: The largest answer read (a page of 8 candidates at etcd's 1.5 MiB request limit is about
#: 16 MiB as base64); a longer one is refused unread.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
_DETAILS_LIMIT = 300

T = TypeVar("T")


class _Refused(Exception):
    """etcd answered with an error: its gRPC status name and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class GatewayClient:
    """Reads from etcd over its JSON gateway; see the module docs. Blocking, one thread.

    ::

        with GatewayClient(config) as client:
            result = client.get_prefix(b"/etcd-elector/job/", limit=8)

    :raises ConfigurationError: if a certificate file cannot be read any more.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._order = list(config.endpoints)  # preference order: a failed endpoint goes last
        self._connections: dict[Endpoint, _http.HttpConnection] = {}
        self._wrap: Callable[[Endpoint, socket.socket], socket.socket] | None = None
        self._tls_errors: tuple[type[OSError], ...] = ()  # ssl.SSLError, once TLS is loaded
        if config.tls:  # ssl is loaded only for TLS: a third of a plaintext start-up
            import ssl

            context = _tls.ssl_context(config.ca_file, config.cert_file, config.key_file)
            server_name = config.server_name

            def wrap(endpoint: Endpoint, sock: socket.socket) -> socket.socket:
                return context.wrap_socket(sock, server_hostname=server_name or endpoint.host)

            self._wrap, self._tls_errors = wrap, (ssl.SSLError,)
        self._token: str | None = None
        self._authenticated = config.username is None  # no credentials: nothing to exchange

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection. Idempotent."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __repr__(self) -> str:
        return f"<GatewayClient endpoints={','.join(map(str, self.config.endpoints))}>"

    # -- calls -----------------------------------------------------------------------------

    def get_prefix(
        self,
        prefix: bytes,
        *,
        revision: int = 0,
        limit: int = 0,
        sort_by_create_revision: bool = False,
        descending: bool = False,
        max_create_revision: int = 0,
    ) -> RangeResult:
        """Every key starting with ``prefix``, read linearizably, as ``AsyncEtcdClient``'s
        ``get_prefix`` reads it.

        :raises TransportError: as the gRPC client would (see the module docs).
        """
        request: dict[str, str] = {"key": b64(prefix), "range_end": b64(prefix_range_end(prefix))}
        if revision:
            request["revision"] = str(revision)
        if limit:
            request["limit"] = str(limit)
        if sort_by_create_revision:
            request["sort_target"] = "CREATE"
            request["sort_order"] = "DESCEND" if descending else "ASCEND"
        if max_create_revision:
            request["max_create_revision"] = str(max_create_revision)
        return self._call("/v3/kv/range", request, range_result)

    def lease_time_to_live(self, lease_id: int) -> LeaseInfo:
        """A lease's remaining TTL (``-1`` when it does not exist) and granted TTL.

        :raises TransportError: as the gRPC client would.
        """
        return self._call("/v3/lease/timetolive", {"ID": str(lease_id)}, lease_info)

    # -- failover ------------------------------------------------------------------------------

    def _call(self, path: str, request: dict[str, str], decode: Callable[[Any], T]) -> T:
        deadline = _clock.now() + self.config.timeout
        payload = json.dumps(request).encode()
        unreachable: list[_Unreachable] = []
        last: TransportError | None = None
        renewed = False
        endpoints = list(self._order)
        index = 0
        while index < len(endpoints):
            endpoint = endpoints[index]
            remaining = deadline - _clock.now()
            if remaining <= 0:
                break
            # A silent member gets its share of the time left, never all of it.
            until = _clock.now() + remaining / (len(endpoints) - index)
            try:
                if not self._authenticated:
                    self._authenticate(endpoint, until)
                answer = self._post(endpoint, path, payload, until, token=self._token)
                return _decoded(decode, answer, endpoint, path)
            except _Refused as refused:
                if token_rejected(refused.message) and self._renewable(renewed):
                    renewed, self._authenticated = True, False  # a new token, same endpoint
                    log.debug(
                        "%s: etcd refused the auth token (%s), sending again",
                        path,
                        bounded(refused.message, _DETAILS_LIMIT),
                    )
                    continue
                error = map_status(refused.code, refused.message, str(endpoint), write=False)
            except _Unreachable as exc:
                error = exc.error
                unreachable.append(exc)
            except TransportError as exc:  # a timeout, a broken connection, a refused answer
                error = exc
            if not isinstance(error, ConnectionFailed | RequestTimeout):  # NoLeader is one
                raise error
            log.debug("%s failed on %s, trying another endpoint: %s", path, endpoint, error)
            self._demote(endpoint)
            last = error
            index += 1
        if last is not None and len(unreachable) == len(endpoints):
            # Nothing could be reached: why (TLS), when known, says more than "cannot connect".
            explained = [failure.error for failure in unreachable if failure.explained]
            raise explained[0] if explained else cannot_connect(", ".join(map(str, endpoints)))
        if last is not None:
            raise last
        raise RequestTimeout(f"POST {path} got no answer from etcd within the timeout")

    def _renewable(self, renewed: bool) -> bool:
        return not renewed and self.config.username is not None

    def _demote(self, endpoint: Endpoint) -> None:
        if endpoint in self._order:
            self._order.remove(endpoint)
            self._order.append(endpoint)

    def _authenticate(self, endpoint: Endpoint, until: float) -> None:
        """Exchange the user and password for a token (none when etcd has auth off)."""
        username, password = self.config.username, self.config.password
        assert username is not None and password is not None  # ClientConfig checks both
        request = json.dumps({"name": username, "password": password.reveal()}).encode()
        try:
            answer = self._post(endpoint, "/v3/auth/authenticate", request, until, token=None)
        except _Refused as refused:
            if AUTH_NOT_ENABLED in refused.message:
                log.debug("etcd has authentication disabled: calls carry no token")
                self._token, self._authenticated = None, True
                return
            error = map_status(refused.code, refused.message, str(endpoint), write=False)
            if isinstance(error, AuthenticationFailed):
                raise refused_user(username, str(endpoint)) from error
            raise
        self._token = _decoded(token, answer, endpoint, "/v3/auth/authenticate")
        self._authenticated = True
        log.debug("authenticated to etcd as user=%s", username)

    # -- one request ---------------------------------------------------------------------------

    def _post(
        self, endpoint: Endpoint, path: str, payload: bytes, until: float, *, token: str | None
    ) -> Any:
        """POST ``payload`` to ``endpoint`` and return its JSON answer, before ``until``.

        :raises _Refused: when etcd answered with an error.
        :raises _Unreachable: when no connection could be made.
        :raises TransportError: for a timeout, a broken connection or an answer we refuse.
        """
        connection = self._connected(endpoint, until)
        headers = {
            "Content-Type": "application/json",
            "Grpc-Metadata-Hasleader": "true",  # etcd's require-leader marker
        }
        if token is not None:
            headers["Authorization"] = token
        try:
            answer = connection.post(path, payload, headers, until=until, limit=MAX_ANSWER_BYTES)
        except _http.TooLarge:
            self._drop(endpoint)
            raise _oversized(endpoint, path) from None
        except _http.NotHttp as exc:
            self._drop(endpoint)
            raise _malformed(endpoint, path, f"not HTTP: {exc}") from None
        except TimeoutError:
            self._drop(endpoint)
            raise RequestTimeout(
                f"etcd at {endpoint} did not answer POST {path} in time", endpoint=str(endpoint)
            ) from None
        except self._tls_errors as exc:  # TLS 1.3: a refused client certificate shows up here
            self._drop(endpoint)
            raise _Unreachable(self._tls_error(exc, endpoint), explained=True) from exc
        except _http.Unanswered as exc:
            self._drop(endpoint)
            if exc.first and not endpoint.secure:  # as gRPC's channels explain it too
                raise _Unreachable(_tls.serves_tls(endpoint.address), explained=True) from exc
            raise ConnectionFailed(
                f"etcd at {endpoint} closed the connection without answering",
                endpoint=str(endpoint),
            ) from exc
        except OSError as exc:
            self._drop(endpoint)
            raise ConnectionFailed(
                f"etcd at {endpoint} broke the connection ({_reason(exc)})",
                endpoint=str(endpoint),
            ) from exc
        if not connection.reusable:
            self._drop(endpoint)
        if answer.status != 200:
            raise _refusal(answer.status, answer.body, endpoint, path)
        try:
            return json.loads(answer.body)
        except (ValueError, RecursionError):
            raise _malformed(endpoint, path, "not JSON") from None

    def _connected(self, endpoint: Endpoint, until: float) -> _http.HttpConnection:
        connection = self._connections.get(endpoint)
        if connection is not None:
            return connection
        timeout = max(0.001, min(self.config.connect_timeout, until - _clock.now()))
        wrap = self._wrap
        try:
            connection = _http.connect(
                endpoint.host,
                endpoint.port,
                timeout,
                None if wrap is None else lambda sock: wrap(endpoint, sock),
            )
        except self._tls_errors as exc:
            raise _Unreachable(self._tls_error(exc, endpoint), explained=True) from exc
        except OSError as exc:  # refused, unreachable, no such host, timed out
            error = ConnectionFailed(
                f"cannot reach etcd at {endpoint}: {_reason(exc)}", endpoint=str(endpoint)
            )
            raise _Unreachable(error) from exc
        self._connections[endpoint] = connection
        return connection

    def _drop(self, endpoint: Endpoint) -> None:
        connection = self._connections.pop(endpoint, None)
        if connection is not None:
            connection.close()

    def _tls_error(self, exc: OSError, endpoint: Endpoint) -> ConnectionFailed:
        details = str(exc)
        error = _tls.handshake_error(
            details,
            str(endpoint),
            server_name=self.config.server_name,
            client_certificate=self.config.cert_file,
        )
        if error is not None:
            return error
        return TLSHandshakeFailed(
            f"TLS handshake with etcd at {endpoint} failed: {bounded(details, _DETAILS_LIMIT)} "
            "(check --cacert, --cert and --key)",
            endpoint=str(endpoint),
            reason=TLSHandshakeFailed.OTHER,
        )


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return bounded(exc.strerror or str(exc) or type(exc).__name__, _DETAILS_LIMIT)


class _Unreachable(Exception):
    """No connection to an endpoint (refused, timed out, TLS failed): try the next one.
    ``explained``: the error says why (TLS), which beats "cannot connect" when all fail."""

    def __init__(self, error: ConnectionFailed, *, explained: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.explained = explained


def _decoded(decode: Callable[[Any], T], answer: Any, endpoint: Endpoint, path: str) -> T:
    """``decode(answer)``; an answer it cannot decode is etcd's fault, said as such."""
    try:
        return decode(answer)
    except Malformed as exc:
        raise _malformed(endpoint, path, str(exc)) from None


def _oversized(endpoint: Endpoint, path: str) -> EtcdServerError:
    return EtcdServerError(
        f"etcd at {endpoint} sent an answer to POST {path} over {MAX_ANSWER_BYTES} bytes: "
        "refused unread (is that etcd?)",
        endpoint=str(endpoint),
    )


def _malformed(endpoint: Endpoint, path: str, what: str) -> EtcdServerError:
    return EtcdServerError(
        f"etcd at {endpoint} sent a malformed answer to POST {path} ({bounded(what, 120)}): "
        "is that etcd 3.4 or later?",
        endpoint=str(endpoint),
    )


def _refusal(status: int, body: bytes, endpoint: Endpoint, path: str) -> Exception:
    """The error for an answer with an HTTP error status: etcd's own (``_Refused``, mapped by
    the caller), or ours for something that is not etcd's gateway."""
    refused = error_status(body)
    if refused is not None:
        return _Refused(*refused)
    if status == 400 and b"HTTP request to an HTTPS server" in body:
        return _Unreachable(_tls.serves_tls(endpoint.address), explained=True)
    return EtcdServerError(
        f"etcd at {endpoint} answered HTTP {status} to POST {path} "
        f"({bounded(body, _DETAILS_LIMIT)}): is that etcd 3.4 or later, at its client URL?",
        endpoint=str(endpoint),
    )
