"""What the CLI prints on stdout: one line per event, for people or (``--json``) for programs.

Every JSON line is an object with ``event``, ``time`` (Unix seconds, float), ``election``,
``key``, ``lease`` (hex), ``token``, ``value`` and ``value_base64`` (``null`` where they do not
apply), plus fields of its own (``reason``, ``pid``, ``code``...). Lines are flushed one by one.

Values are bytes from etcd, written by anyone: a JSON ``value`` is the text only when the bytes
are valid UTF-8 (else ``null``), and ``value_base64`` always carries the exact bytes. Text lines
go through :func:`printable`, so no control character from a value, a key or an error ever
reaches the operator's terminal.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from .. import _clock
from .._election._leader import LeaderInfo

if TYPE_CHECKING:
    from .._election._term import Term

__all__ = ["Printer", "bytes_fields", "printable", "unix_time"]

log = logging.getLogger(__name__)

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str | bytes, *, limit: int | None = None) -> str:
    """``text`` made safe for a terminal: every character that is not printable (control
    characters, DEL, line and paragraph separators, bidirectional overrides, lone surrogates)
    is shown as a Python-style escape (``\\n``, ``\\x1b``, ``\\u202e``); bytes that are not
    UTF-8 are shown as ``\\xNN``. Printable text comes back unchanged, so applying it twice
    changes nothing. With ``limit``, longer results are cut and say how much was left out.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    if not text.isprintable():
        text = "".join(char if char.isprintable() else _escape(char) for char in text)
    if limit is not None and len(text) > limit:
        return f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


def bytes_fields(name: str, data: bytes | None) -> dict[str, str | None]:
    """A bytes field for JSON: ``name`` as text when ``data`` is valid UTF-8 (else ``None``)
    and ``name_base64``, which always gives the exact bytes back."""
    if data is None:
        return {name: None, f"{name}_base64": None}
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {name: text, f"{name}_base64": base64.b64encode(data).decode("ascii")}


def unix_time(clock_time: float) -> float:
    """A stamp on :func:`etcd_elector._clock.now` converted to Unix time."""
    return time.time() - (_clock.now() - clock_time)


def _about(subject: Term | LeaderInfo | None) -> dict[str, Any]:
    if subject is None:
        return {"key": None, "lease": None, "token": None, "value": None}
    return {
        "key": subject.key,
        "lease": subject.lease_hex,
        "token": subject.token,
        "value": subject.value,
    }


def _shown(value: object) -> str:
    return printable(value) if isinstance(value, bytes) else str(value)


class Printer:
    """Writes events to ``stream`` (stdout), as text or JSON lines."""

    def __init__(self, *, json_lines: bool, stream: TextIO | None = None) -> None:
        self.json_lines = json_lines
        self._stream = stream if stream is not None else sys.stdout
        self.broken = False  # the reader went away (EPIPE): nothing more is printed

    def event(
        self,
        event: str,
        election: str | None = None,
        subject: Term | LeaderInfo | None = None,
        *,
        text: str | None = None,
        **fields: Any,
    ) -> None:
        """Print one event. ``text`` is the human line (default: event, election, fields,
        leaving out the ``*_at`` Unix times, which are for programs). Bytes fields (such as
        ``value``) become text plus ``<name>_base64`` in JSON."""
        about = _about(subject)
        if self.json_lines:
            record: dict[str, Any] = {"event": event, "time": time.time(), "election": election}
            for name, value in {**about, **fields}.items():
                if isinstance(value, bytes) or (name == "value" and value is None):
                    record.update(bytes_fields(name, value))
                else:
                    record[name] = value
            self._write(json.dumps(record, separators=(",", ":")))
            return
        if text is None:
            parts = [event] + ([election] if election else [])
            shown = {k: v for k, v in about.items() if v is not None}
            shown.update(
                {k: v for k, v in fields.items() if v is not None and not k.endswith("_at")}
            )
            parts += [f"{k}={_shown(v)}" for k, v in shown.items()]
            text = " ".join(str(part) for part in parts)
        self._write(text)

    def text(self, line: str) -> None:
        """A line for people only (skipped with --json)."""
        if not self.json_lines:
            self._write(line)

    def raw(self, data: bytes) -> None:
        """``data`` and a newline, byte for byte, for scripts reading a pipe or a file; on a
        terminal, escaped like every other text line."""
        stream = self._stream
        binary: BinaryIO | None = getattr(stream, "buffer", None)
        if binary is None or stream.isatty():
            self._write(printable(data))
            return
        self._guarded(lambda: (stream.flush(), binary.write(data + b"\n"), binary.flush()))

    def _write(self, line: str) -> None:
        if not self.json_lines:
            line = printable(line)  # one line on the terminal, whatever a value holds
        stream = self._stream
        self._guarded(lambda: (stream.write(line + "\n"), stream.flush()))

    def _guarded(self, write: Callable[[], object]) -> None:
        if self.broken:
            return
        try:
            write()
        except BrokenPipeError:
            self.broken = True
            log.debug("stdout was closed; printing nothing more")
            # Point the descriptor at /dev/null so the flush at exit does not fail again.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
