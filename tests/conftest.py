"""Fixtures shared by several test modules (the etcd fixtures come from our pytest plugin),
and the leak checks every test runs under (see tests/leaks.py)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import leaks
import pytest
from helpers.cli_process import CliProcess

if TYPE_CHECKING:  # the redis client is a test extra; CI's lowest-versions run lacks it
    from helpers.redis_server import RedisServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every coroutine test also checks its own loop for tasks left behind; first of its
    fixtures, so torn down last, when every other fixture has closed what it opened."""
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            names = getattr(item, "fixturenames", None)
            if names is not None and "no_leaked_tasks" not in names:
                names.insert(0, "no_leaked_tasks")


@pytest.fixture(autouse=True)
def no_leaked_threads_or_processes() -> Iterator[None]:
    """A test leaves no thread of ours and no child process behind."""
    threads, children = leaks.threads(), leaks.children()
    yield
    left = leaks.settle(lambda: leaks.threads() - threads)
    assert not left, f"threads left behind: {sorted(t.name for t in left)}"
    stray = leaks.settle(lambda: {p: c for p, c in leaks.children().items() if p not in children})
    assert not stray, f"child processes left behind: {stray}"


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """A coroutine test leaves no task running on its loop."""
    before = set(asyncio.all_tasks())
    yield
    left = await leaks.leaked_tasks(before)
    for task in left:
        task.cancel()
    assert not left, (
        f"tasks left behind: {[task.get_name() + ' ' + repr(task.get_coro()) for task in left]}"
    )


@pytest.fixture
def cli() -> Iterator[Callable[..., CliProcess]]:
    """Start ``etcd-elector`` subprocesses; every one is closed at teardown, pass or fail."""
    started: list[CliProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, wrapper: Sequence[str] = ()
    ) -> CliProcess:
        process = CliProcess(*args, env=env, wrapper=wrapper)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh Redis on 127.0.0.1 for this test (the Celery broker); fails, never skips,
    when ``redis-server`` is not installed, saying how to install it."""
    from helpers.redis_server import RedisServer, RedisServerMissing, find_redis_server

    try:
        binary = find_redis_server()
    except RedisServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    directory: Path = tmp_path_factory.mktemp("redis")
    with RedisServer(binary, directory) as server:
        yield server
