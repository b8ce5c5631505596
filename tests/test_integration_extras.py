"""Each integration's framework comes with its own extra, never with the core install: the
core imports none of them, and an integration whose framework is missing says which extra to
install."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

FRAMEWORKS = {"apscheduler": "apscheduler", "celery": "celery"}


def requirements() -> list[str]:
    return importlib.metadata.requires("etcd-elector") or []


def test_frameworks_are_extras_not_core_dependencies() -> None:
    core = [r for r in requirements() if "extra ==" not in r]
    for extra, package in FRAMEWORKS.items():
        assert not [r for r in core if r.lower().startswith(package)], core
        in_extra = [r for r in requirements() if re.search(rf"extra == ['\"]{extra}['\"]", r)]
        assert any(r.lower().startswith(package) for r in in_extra), (extra, in_extra)


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_core_and_leader_only_import_no_framework() -> None:
    done = run(
        "import sys, etcd_elector, etcd_elector.integrations.leader_only\n"
        "print(sorted(m for m in ('celery', 'apscheduler', 'kombu') if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("extra", sorted(FRAMEWORKS))
def test_a_missing_framework_names_the_extra(extra: str) -> None:
    done = run(
        f"import sys; sys.modules[{FRAMEWORKS[extra]!r}] = None\n"
        f"import etcd_elector.integrations.{extra}"
    )
    assert done.returncode == 1
    assert f"pip install 'etcd-elector[{extra}]'" in done.stderr.splitlines()[-1]


def test_integrations_use_the_public_api_only() -> None:
    """They import ``etcd_elector`` and each other, never the core's private modules."""
    package = Path(__file__).parent.parent / "src" / "etcd_elector" / "integrations"
    private = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
            elif isinstance(node, ast.Import):
                module = node.names[0].name
            else:
                continue
            ours = module == "etcd_elector" or module.startswith("etcd_elector.integrations")
            if module.startswith("etcd_elector") and not ours:
                private.append(f"{path.name}: {module}")
    assert not private
