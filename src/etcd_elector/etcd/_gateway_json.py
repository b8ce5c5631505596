"""etcd's JSON gateway answers, decoded strictly: every field checked for its type and range,
anything else refused as malformed (``Malformed``), so that no answer reaches the client's
callers in a shape etcd does not send.

How etcd writes its messages as JSON: bytes as base64, 64-bit integers as decimal strings (or
numbers), fields at their zero value left out, and an error as ``{"code": <gRPC status
number>, "message": ...}`` (etcd 3.4 also writes it as ``"error"``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ._reads import KeyValue, LeaseInfo, RangeResult

__all__ = [
    "Malformed",
    "b64",
    "error_status",
    "lease_info",
    "range_result",
    "token",
]

# gRPC's status codes by number, as the gateway's error bodies carry them.
_CODES = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
]
_INTEGER = re.compile(r"-?[0-9]{1,20}")
_INT64 = range(-(2**63), 2**64)


class Malformed(ValueError):
    """An answer that is not what etcd sends."""


def error_status(body: bytes) -> tuple[str, str] | None:
    """The gRPC status name and etcd's message of an error answer, or None if ``body`` is
    not one."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(answer, dict):
        return None
    code, message = answer.get("code"), answer.get("message", answer.get("error"))
    if isinstance(code, int) and 0 < code < len(_CODES) and isinstance(message, str):
        return _CODES[code], message
    return None


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not an object")
    return value


def _int(answer: dict[str, Any], name: str) -> int:
    value = answer.get(name, 0)  # zero values are left out
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in _INT64:
        raise Malformed(f"{name} is not a 64-bit integer")
    return value


def _bytes(answer: dict[str, Any], name: str) -> bytes:
    value = answer.get(name, "")
    if not isinstance(value, str):
        raise Malformed(f"{name} is not base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{name} is not base64") from None


def _flag(answer: dict[str, Any], name: str) -> bool:
    value = answer.get(name, False)
    if not isinstance(value, bool):
        raise Malformed(f"{name} is not true or false")
    return value


def _revision(answer: Any) -> int:
    return _int(_object(_object(answer, "the answer").get("header"), "header"), "revision")


def range_result(answer: Any) -> RangeResult:
    revision = _revision(answer)
    kvs = answer.get("kvs", [])
    if not isinstance(kvs, list):
        raise Malformed("kvs is not a list")
    return RangeResult(
        kvs=tuple(_key_value(_object(kv, "a key")) for kv in kvs),
        revision=revision,
        count=_int(answer, "count"),
        more=_flag(answer, "more"),
    )


def _key_value(kv: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=_bytes(kv, "key"),
        value=_bytes(kv, "value"),
        create_revision=_int(kv, "create_revision"),
        mod_revision=_int(kv, "mod_revision"),
        version=_int(kv, "version"),
        lease=_int(kv, "lease"),
    )


def lease_info(answer: Any) -> LeaseInfo:
    _revision(answer)
    return LeaseInfo(
        id=_int(answer, "ID"),
        ttl=_int(answer, "TTL"),
        granted_ttl=_int(answer, "grantedTTL"),
        keys=(),
    )


def token(answer: Any) -> str:
    token = _object(answer, "the answer").get("token")
    if not isinstance(token, str) or not token.isprintable() or len(token) > 4096:
        raise Malformed("token is not a printable string")
    return token
