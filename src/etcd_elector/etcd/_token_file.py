"""The token file: the highest fencing token a process knows of, kept across restarts.

A restarted process has forgotten every revision it saw. If etcd meanwhile lost its history
(a wiped data dir, a restore from an older snapshot), etcd hands out tokens that outside
systems have already seen, and nothing in memory could tell. This file remembers.

It is written atomically (a temporary file in the same directory, fsync, rename, fsync of the
directory), so a crash leaves either the old content or the new, never half of either. Its
content comes from disk and is checked like any untrusted input.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .._errors import ConfigurationError

__all__ = ["TokenFile", "TokenRecord"]

FORMAT = 1
_MAX_BYTES = 4096  # the file holds two numbers; anything larger is not ours
_MAX_TOKEN = 2**63 - 1  # etcd revisions are int64


@dataclass(frozen=True)
class TokenRecord:
    """What a token file holds: no token at or below ``highest_token`` may be trusted as new;
    ``cluster_id`` is the etcd cluster it was seen in (``None`` when unknown)."""

    highest_token: int
    cluster_id: int | None


class TokenFile:
    """One token file. ``read()`` checks the content; ``raise_to()`` only ever raises it,
    except through ``reset()`` (the operator's explicit override)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<TokenFile {self.path}>"

    def check_path(self) -> None:
        """:raises ConfigurationError: if the path cannot name a token file (a typo?)."""
        directory = self.path.parent
        if not directory.is_dir():
            raise ConfigurationError(
                f"token file {self.path}: directory {directory} does not exist: create it first"
            )
        if self.path.is_dir():
            raise ConfigurationError(f"token file {self.path} is a directory: name a file")

    def check_writable(self) -> None:
        """:raises ConfigurationError: if the file could not be written later."""
        self.check_path()
        directory = self.path.parent
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigurationError(
                f"token file {self.path}: directory {directory} is not writable by this user"
            )

    def read(self) -> TokenRecord | None:
        """The recorded token, or ``None`` when the file does not exist yet.

        :raises ConfigurationError: when the file cannot be read or is not a token file.
        """
        try:
            with self.path.open("rb") as file:
                raw = file.read(_MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigurationError(
                f"token file {self.path} cannot be read: {exc.strerror or type(exc).__name__}"
            ) from None
        return self._parse(raw)

    def _parse(self, raw: bytes) -> TokenRecord:
        def bad(why: str) -> ConfigurationError:
            return ConfigurationError(
                f"token file {self.path} is not a token file written by etcd-elector ({why}): "
                "fix it, or delete it to forget the highest token it kept"
            )

        if len(raw) > _MAX_BYTES:
            raise bad(f"larger than {_MAX_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad("not JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"no format {FORMAT}")
        token = data.get("highest_token")
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token <= _MAX_TOKEN:
            raise bad("highest_token is not a revision")
        cluster = data.get("cluster_id")
        if cluster is None:
            return TokenRecord(token, None)
        if not isinstance(cluster, str) or not 0 < len(cluster) <= 16:
            raise bad("cluster_id is not a hex id")
        try:
            return TokenRecord(token, int(cluster, 16))
        except ValueError:
            raise bad("cluster_id is not a hex id") from None

    def raise_to(self, token: int, cluster_id: int | None) -> TokenRecord:
        """Record ``token`` unless the file already holds a higher one; return what it holds.

        Re-reads first, so that two writers never lower each other's token.

        :raises OSError: when the file cannot be written.
        :raises ConfigurationError: when the file on disk is not a token file.
        """
        with self._lock:
            current = self.read()
            record = TokenRecord(token, cluster_id)
            if current is not None:
                record = TokenRecord(
                    max(token, current.highest_token),
                    current.cluster_id if cluster_id is None else cluster_id,
                )
                if record == current:
                    return current
            self._write(record)
            return record

    def reset(self, record: TokenRecord) -> None:
        """Overwrite the file with ``record``, even if lower (the operator's override).

        :raises OSError: when the file cannot be written.
        """
        with self._lock:
            self._write(record)

    def _write(self, record: TokenRecord) -> None:
        body = {
            "format": FORMAT,
            "highest_token": record.highest_token,
            "cluster_id": None if record.cluster_id is None else f"{record.cluster_id:x}",
        }
        data = (json.dumps(body) + "\n").encode()
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        # The rename itself must survive a crash of the machine, not only of the process.
        with contextlib.suppress(OSError):
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
