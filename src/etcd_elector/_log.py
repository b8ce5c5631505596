"""Structured log lines, each field stated once.

A line reads on its own (``elected election=scheduler key=/e/s/1f lease=1f token=81``) and
carries the same values as attributes of its ``LogRecord`` (``extra=``), for structured
handlers and :class:`~etcd_elector.JsonLogFormatter`. :func:`log_event` writes both from one
set of fields, so the text and the attributes can never disagree.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping

from ._bounded import bounded

__all__ = ["DETAIL_LIMIT", "log_event", "rendered"]

#: Characters of a free-text detail (an error's message) kept in a line.
DETAIL_LIMIT = 500


def _value(value: object) -> object:
    """A field as the record carries it: text bounded and printable, numbers as they are."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str | bytes):
        return bounded(value)
    return value


def _text(value: object) -> str:
    """A field as the line shows it. A float is a duration: seconds, three decimals."""
    if isinstance(value, float):
        return f"{value:.3f}s"
    return str(value)


def rendered(message: str, fields: Mapping[str, object], detail: object = None) -> str:
    """``message key=value ...`` (fields that are ``None`` left out), then ``: detail``."""
    parts = [message, *(f"{name}={_text(value)}" for name, value in fields.items())]
    line = " ".join(parts)
    if detail is not None:
        line += ": " + bounded(str(detail), DETAIL_LIMIT)
    return line


def log_event(
    logger: logging.Logger,
    level: int,
    message: str,
    /,
    *,
    detail: object = None,
    exc_info: bool = False,
    **fields: object,
) -> None:
    """Log ``message`` with ``fields`` in its text and as record attributes.

    Values that are ``None`` are left out of both; ``str`` and ``bytes`` values are bounded
    (:func:`etcd_elector._bounded.bounded`), enums give their value. ``detail`` (an error, say)
    ends the text after a colon and is not an attribute.
    """
    if not logger.isEnabledFor(level):
        return
    carried = {name: _value(value) for name, value in fields.items() if value is not None}
    # '%' would be read as a format by logging: the line is passed as an argument instead.
    logger.log(level, "%s", rendered(message, carried, detail), exc_info=exc_info, extra=carried)
