"""Fixtures shared by several test modules (the etcd fixtures come from our pytest plugin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
from helpers.cli_process import CliProcess


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
