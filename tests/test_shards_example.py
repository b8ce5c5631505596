"""examples/shard_consumer.py, run as its docstring says: two copies share the partitions,
every message is committed once, and SIGTERM hands the partitions over and exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_elector import Client

pytestmark = pytest.mark.timeout(90)

EXAMPLE = Path(__file__).parent.parent / "examples" / "shard_consumer.py"
PARTITIONS = 4


class Consumer:
    """One copy of the example; its stdout lines are collected by a thread."""

    def __init__(self, endpoint: str, namespace: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        env.update(ETCD_ENDPOINTS=endpoint, ETCD_ELECTOR_NAMESPACE=namespace, ETCD_ELECTOR_TTL="2")
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--partitions", str(PARTITIONS), "--every", "0.05",
             *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def owned(self) -> set[str]:
        owned: set[str] = set()
        for line in list(self.lines):
            partition, _, what = line.partition(": ")
            if what.startswith("owned"):
                owned.add(partition.split()[-1])
            elif what == "released":
                owned.discard(partition.split()[-1])
        return owned

    def committed(self) -> list[str]:
        return [
            line.removesuffix(" committed") for line in self.lines if line.endswith("committed")
        ]

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a service manager stops it; its exit code and stderr."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self._reader.join(10)  # stdout is this reader's alone: every line is in self.lines
        assert self.process.stdout is not None and self.process.stderr is not None
        self.process.stdout.close()
        with self.process.stderr as stderr:
            return code, stderr.read()


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    """Every copy started by the test; any left running at teardown is killed."""
    started: list[Consumer] = []
    yield started
    for consumer in started:
        if consumer.process.poll() is None:
            consumer.process.kill()
            consumer.process.wait(10)


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def offsets(client: Client, namespace: str) -> list[int]:
    found = {kv.key.decode().rsplit("/", 1)[1]: int(kv.value)
             for kv in client.get_prefix(f"{namespace}/offsets/").kvs}  # fmt: skip
    return [found.get(str(p), 0) for p in range(PARTITIONS)]


def test_two_copies_share_the_partitions_and_commit_each_message_once(
    etcd_endpoint: str, consumers: list[Consumer]
) -> None:
    namespace = f"/test-examples/{uuid.uuid4().hex}"
    with Client(etcd_endpoint) as client:
        first = Consumer(etcd_endpoint, namespace, "--produce", "5")
        consumers.append(first)
        wait_for(lambda: offsets(client, namespace) == [5] * PARTITIONS, "the first batch")
        assert first.owned() == {str(p) for p in range(PARTITIONS)}
        second = Consumer(etcd_endpoint, namespace)
        consumers.append(second)
        wait_for(lambda: len(first.owned()) == len(second.owned()) == 2, "an even split")
        assert first.owned().isdisjoint(second.owned())
        for partition in range(PARTITIONS):  # a second batch, consumed by both copies
            for sequence in range(6, 11):
                client.put(f"{namespace}/queue/{partition}/{sequence:08d}", f"m{sequence}")
        wait_for(lambda: offsets(client, namespace) == [10] * PARTITIONS, "the second batch")
        code, err = first.stop()
        assert code == 0, err
        assert first.lines[-1] == "stopped"
        wait_for(lambda: len(second.owned()) == PARTITIONS, "the survivor owning all")
        code, err = second.stop()
        assert code == 0, err
    committed = first.committed() + second.committed()
    expected = [f"partition {p}: m{s}" for p in range(PARTITIONS) for s in range(1, 11)]
    assert sorted(committed) == sorted(expected)  # each message once, none lost
    assert {line.split(":")[0] for line in second.committed()} == {
        f"partition {p}" for p in second_partitions(second)
    }


def second_partitions(consumer: Consumer) -> set[str]:
    """The partitions the second copy owned before the first one stopped (its first two)."""
    owned = [line.split(":")[0].split()[-1] for line in consumer.lines if ": owned" in line]
    return set(owned[:2])
