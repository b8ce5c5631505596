"""Election names, namespaces and the candidate keys built from them.

A candidate's key is ``<namespace>/<name>/<lease id in hex>``. Names may not contain ``/``, so
no election's prefix can contain another election's keys within a namespace; reads and watches
also ignore any key under the prefix that is not exactly a candidate key.

Every namespace has one canonical form: ``/apps/billing`` (``/apps/billing/`` is read as that,
as users write prefixes; ``/apps//billing`` is refused), and the root of the keyspace is ``/``
(keys ``/<name>/...``), never ``""``: spellings that silently shared keys by accident would
let two deployments meet.
"""

from __future__ import annotations

import re

from .._errors import ConfigurationError

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_NAMESPACE_LENGTH",
    "MAX_NAME_LENGTH",
    "ROOT_NAMESPACE",
    "candidate_key",
    "election_prefix",
    "is_candidate_key",
    "validate_name",
    "validate_namespace",
]

DEFAULT_NAMESPACE = "/etcd-elector"
ROOT_NAMESPACE = "/"
MAX_NAME_LENGTH = 200
MAX_NAMESPACE_LENGTH = 256
# One name, or one segment of a namespace: printable ASCII only (no look-alike letters that
# would name different keys), spaces only inside.
_SEGMENT = re.compile(r"[A-Za-z0-9_.:@=+-]([A-Za-z0-9_.:@=+ -]*[A-Za-z0-9_.:@=+-])?")
_SEGMENT_RULE = "ASCII letters, digits, spaces (not at the ends) and _ . : @ = + -"
_LEASE_HEX = re.compile(rb"[0-9a-f]{1,16}")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a usable election name, else raise ``ConfigurationError``."""
    if not isinstance(name, str):
        raise ConfigurationError(f"election name must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ConfigurationError("election name is empty: give a name such as 'scheduler'")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"election name is {len(name)} characters long: the limit is {MAX_NAME_LENGTH}"
        )
    if "/" in name:
        raise ConfigurationError(
            f"election name {name!r} contains '/': use a name without slashes "
            "(group elections with the namespace instead)"
        )
    if name in (".", ".."):
        raise ConfigurationError(f"election name {name!r} is reserved: use a name with a letter")
    if not _SEGMENT.fullmatch(name):
        raise ConfigurationError(f"election name {name!r} is malformed: use {_SEGMENT_RULE}")
    return name


def validate_namespace(namespace: object) -> str:
    """Return ``namespace`` in its canonical form, else raise ``ConfigurationError`` saying how
    to write it.

    ``/`` is the root of the keyspace; otherwise segments (each like an election name, not
    ``.`` or ``..``) are separated by single slashes; one trailing ``/`` is dropped.
    """
    if not isinstance(namespace, str):
        raise ConfigurationError(f"namespace must be a string, got {type(namespace).__name__}")
    if namespace == ROOT_NAMESPACE:
        return namespace
    if not namespace:
        raise ConfigurationError(
            "namespace is empty: write '/' for elections at the root of the keyspace "
            f"(keys /NAME/...), or leave it unset for the default {DEFAULT_NAMESPACE}"
        )
    if len(namespace) > MAX_NAMESPACE_LENGTH:
        raise ConfigurationError(
            f"namespace is {len(namespace)} characters long: the limit is {MAX_NAMESPACE_LENGTH}"
        )
    if namespace.endswith("/") and not namespace.endswith("//"):
        # "/apps/billing/" is how many people write a prefix; it means "/apps/billing".
        namespace = namespace[:-1]
    if namespace.endswith("/"):
        lead = "/" if namespace.startswith("/") else ""
        canonical = lead + "/".join(part for part in namespace.split("/") if part) or "/"
        raise ConfigurationError(
            f"namespace {namespace!r} ends with '/': write it as {canonical!r} (the '/' before "
            "the election name is added, and each namespace has one spelling)"
        )
    segments = namespace.split("/")
    for index, segment in enumerate(segments):
        if not segment and index == 0:
            continue  # the leading '/' of an absolute namespace
        if not segment:
            problem = "has an empty segment ('//')"
        elif segment in (".", ".."):
            problem = f"has a {segment!r} segment (keys are not paths; nothing resolves it)"
        elif not _SEGMENT.fullmatch(segment):
            problem = f"is malformed: use {_SEGMENT_RULE} between single slashes"
        else:
            continue
        raise ConfigurationError(f"namespace {namespace!r} {problem}")
    return namespace


def election_prefix(namespace: str, name: str) -> bytes:
    base = "" if namespace == ROOT_NAMESPACE else namespace
    return f"{base}/{name}/".encode()


def candidate_key(namespace: str, name: str, lease_id: int) -> bytes:
    return election_prefix(namespace, name) + f"{lease_id:x}".encode()


def is_candidate_key(prefix: bytes, key: bytes) -> bool:
    """True only for ``prefix + <lease hex>``: deeper or foreign keys are not candidates."""
    return key.startswith(prefix) and bool(_LEASE_HEX.fullmatch(key[len(prefix) :]))
