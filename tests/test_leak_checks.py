"""The leak checks every test runs under (tests/conftest.py) fail a test that leaves a task, a
thread of ours or a child process behind: tests that do each, run by pytest as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

TESTS = Path(__file__).parent

PROBES = """
import asyncio, subprocess, sys
from etcd_elector._portal import Portal

async def test_leaves_a_task() -> None:
    asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="left-here")

def test_leaves_a_thread() -> None:
    Portal(name="etcd-elector-left-here")

def test_leaves_a_process() -> None:
    subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)

async def test_leaves_nothing() -> None:
    portal = Portal()
    portal.close()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await task
"""


def test_a_test_that_leaves_something_behind_fails(tmp_path: Path) -> None:
    # The very conftest.py every test runs under, with tests/ on the path for its imports.
    ours = (TESTS / "conftest.py").read_text()
    future = "from __future__ import annotations\n"
    assert future in ours
    path = f"import sys\n\nsys.path.insert(0, {str(TESTS)!r})\n"
    (tmp_path / "conftest.py").write_text(ours.replace(future, future + path, 1))
    (tmp_path / "test_probes.py").write_text(PROBES)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    out = done.stdout
    assert "4 passed, 3 errors" in out, out  # each leak fails its own test, at teardown
    assert "tasks left behind: ['left-here" in out
    assert "threads left behind: ['etcd-elector-left-here']" in out
    assert "child processes left behind: {" in out and "sys.stdin.read()" in out
