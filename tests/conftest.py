"""Fixtures shared by several test modules (the etcd fixtures come from our pytest plugin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.cli_process import CliProcess

if TYPE_CHECKING:  # the redis client is a test extra; CI's lowest-versions run lacks it
    from helpers.redis_server import RedisServer


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
