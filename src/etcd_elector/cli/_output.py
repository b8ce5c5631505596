"""What the CLI prints on stdout: one line per event, for people or (``--json``) for programs.

Every JSON line is an object with ``event``, ``time`` (Unix seconds, float), ``election``,
``key``, ``lease`` (hex), ``token`` and ``value`` (``null`` where they do not apply), plus
fields of its own (``reason``, ``pid``, ``code``...). Lines are flushed one by one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from typing import Any, TextIO

from .. import _clock
from .._election import Term
from .._view import LeaderInfo

__all__ = ["Printer", "unix_time"]

log = logging.getLogger(__name__)


def unix_time(clock_time: float) -> float:
    """A stamp on :func:`etcd_elector._clock.now` converted to Unix time."""
    return time.time() - (_clock.now() - clock_time)


def _about(subject: Term | LeaderInfo | None) -> dict[str, Any]:
    if subject is None:
        return {"key": None, "lease": None, "token": None, "value": None}
    if isinstance(subject, Term):
        return {
            "key": subject.key,
            "lease": subject.lease_hex,
            "token": subject.token,
            "value": subject.value.decode(errors="replace"),
        }
    return {
        "key": subject.key,
        "lease": subject.lease_hex,
        "token": subject.token,
        "value": subject.value_text,
    }


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
        leaving out the ``*_at`` Unix times, which are for programs)."""
        if self.json_lines:
            record: dict[str, Any] = {"event": event, "time": time.time(), "election": election}
            record.update(_about(subject))
            record.update(fields)
            self._write(json.dumps(record, separators=(",", ":")))
            return
        if text is None:
            parts = [event] + ([election] if election else [])
            about = {k: v for k, v in _about(subject).items() if v is not None}
            extra = {k: v for k, v in fields.items() if v is not None and not k.endswith("_at")}
            parts += [f"{k}={v}" for k, v in {**about, **extra}.items()]
            text = " ".join(str(part) for part in parts)
        self._write(text)

    def text(self, line: str) -> None:
        """A line for people only (skipped with --json)."""
        if not self.json_lines:
            self._write(line)

    def _write(self, line: str) -> None:
        if self.broken:
            return
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except BrokenPipeError:
            self.broken = True
            log.debug("stdout was closed; printing nothing more")
            # Point the descriptor at /dev/null so the flush at exit does not fail again.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
