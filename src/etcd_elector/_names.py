"""Election names, namespaces and the candidate keys built from them.

A candidate's key is ``<namespace>/<name>/<lease id in hex>``. Names may not contain ``/``, so
no election's prefix can contain another election's keys within a namespace; reads and watches
also ignore any key under the prefix that is not exactly a candidate key.
"""

from __future__ import annotations

import re

from ._errors import ConfigurationError

__all__ = [
    "DEFAULT_NAMESPACE",
    "candidate_key",
    "election_prefix",
    "is_candidate_key",
    "validate_name",
    "validate_namespace",
]

DEFAULT_NAMESPACE = "/etcd-elector"
MAX_NAME_LENGTH = 200
_NAME = re.compile(r"^[A-Za-z0-9_.:@=+-][A-Za-z0-9_.:@=+ -]*$")
_LEASE_HEX = re.compile(rb"^[0-9a-f]{1,16}$")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a usable election name, else raise ``ConfigurationError``."""
    if not isinstance(name, str):
        raise ConfigurationError(f"election name must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ConfigurationError("election name is empty: give a name such as 'scheduler'")
    if "/" in name:
        raise ConfigurationError(
            f"election name {name!r} contains '/': use a name without slashes "
            "(group elections with the namespace instead)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(f"election name is longer than {MAX_NAME_LENGTH} characters")
    if name != name.strip() or not _NAME.match(name):
        raise ConfigurationError(
            f"election name {name!r} is malformed: use letters, digits and _ . : @ = + - "
            "(no leading or trailing spaces)"
        )
    return name


def validate_namespace(namespace: object) -> str:
    """Return the namespace without a trailing ``/``, or raise ``ConfigurationError``."""
    if not isinstance(namespace, str):
        raise ConfigurationError(f"namespace must be a string, got {type(namespace).__name__}")
    cleaned = namespace.rstrip("/")
    if "//" in cleaned or any(ord(ch) < 32 for ch in cleaned) or cleaned != cleaned.strip():
        raise ConfigurationError(
            f"namespace {namespace!r} is malformed: use a path like '/etcd-elector' "
            "(no empty segments, spaces at the ends or control characters)"
        )
    return cleaned


def election_prefix(namespace: str, name: str) -> bytes:
    return f"{namespace}/{name}/".encode()


def candidate_key(namespace: str, name: str, lease_id: int) -> bytes:
    return election_prefix(namespace, name) + f"{lease_id:x}".encode()


def is_candidate_key(prefix: bytes, key: bytes) -> bool:
    """True only for ``prefix + <lease hex>``: deeper or foreign keys are not candidates."""
    return key.startswith(prefix) and bool(_LEASE_HEX.match(key[len(prefix) :]))
