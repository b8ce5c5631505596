"""Key encoding and etcd's range conventions."""

from __future__ import annotations

__all__ = ["KeyLike", "as_bytes", "prefix_range_end"]

KeyLike = str | bytes


def as_bytes(value: KeyLike) -> bytes:
    """Encode a key or value: text as UTF-8, bytes unchanged.

    :raises TypeError: for anything else (``bytes(5)`` would silently be five zero bytes).
    """
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"etcd keys and values are str or bytes, not {type(value).__name__}")


def prefix_range_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``.

    etcd expresses "all keys with this prefix" as ``[prefix, range_end)``; an empty or all-0xff
    prefix means "to the end of the keyspace", which etcd spells ``b"\\0"``.
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"
