"""JSON log lines: one object per record, with every structured field the library attaches.

The library never configures logging; this formatter is for the CLI (``--log-format json``)
and for applications that want the same lines::

    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.getLogger("etcd_elector").addHandler(handler)
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

__all__ = ["JsonLogFormatter"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Keys of our own; an ``extra`` field with one of these names is kept under ``extra_<name>``.
_OWN = ("time", "level", "logger", "message", "exception", "stack")


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one line of JSON: ``time`` (RFC 3339, UTC), ``level``, ``logger``,
    ``message``, then every field passed with ``extra=`` (``election``, ``key``, ``lease``,
    ``identity``, ``token``, ``reason``...), and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        line: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name in _STANDARD or name.startswith("_"):
                continue
            line[f"extra_{name}" if name in _OWN else name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False, separators=(",", ":"))
