"""Values, keys and identities made fit for a log line or a one-line error message.

They come from users and from etcd: a 1.6 MB value must not become a 1.6 MB log line (on every
retry), and a control byte must not reach a terminal. One helper, used wherever such a value is
written into a line.
"""

from __future__ import annotations

__all__ = ["LIMIT", "bounded"]

#: Characters of a value kept in a line: enough for a host name, a pod name or a key.
LIMIT = 120

_ELLIPSIS = "…"


def bounded(value: str | bytes, limit: int = LIMIT) -> str:
    """``value`` as at most ``limit`` printable characters, plus a size note when cut.

    Non-printable characters are escaped (``\\n``, ``\\x1b``, ``\\u2028``); bytes that are not
    UTF-8 show as ``\\xff``. A longer value is cut and its full size noted:
    ``aaaa…[1600000 bytes]`` (characters for a ``str``).
    """
    if isinstance(value, bytes):
        # Each character of the line takes at least one byte: no need to decode more.
        text = value[: 4 * limit].decode("utf-8", "backslashreplace")
        size = f"{len(value)} bytes"
    else:
        text = value[:limit]
        size = f"{len(value)} characters"
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        if used + len(piece) > limit:
            return "".join(pieces) + f"{_ELLIPSIS}[{size}]"
        pieces.append(piece)
        used += len(piece)
    shown = "".join(pieces)
    complete = len(text) == len(value) if isinstance(value, str) else len(value) <= 4 * limit
    return shown if complete else f"{shown}{_ELLIPSIS}[{size}]"
