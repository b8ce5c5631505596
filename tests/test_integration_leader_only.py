"""``leader_only`` and ``Leadership``: the body runs only while this process leads, each
policy does what the docs say, an async body is cancelled when the term ends, and three
replica processes under kill, pause and partition never run one slot twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.election_kit import WAIT_S, wait_until
from helpers.replicas import FAULT_KINDS, ReplicaSet, read_records

from etcd_elector import (
    AsyncClient,
    Client,
    ConfigurationError,
    LeadershipLost,
    NotLeader,
    Term,
    TransportError,
)
from etcd_elector.integrations.leader_only import AsyncLeadership, Leadership, leader_only
from etcd_elector.testing import FaultProxy, free_port

pytestmark = pytest.mark.timeout(120)

TTL = 2
HELPERS = Path(__file__).parent / "helpers"


@pytest.fixture
def namespace(etcd_prefix: str) -> str:
    return etcd_prefix.rstrip("/")


@pytest.fixture
def two_replicas(etcd_endpoint: str, namespace: str) -> Iterator[tuple[Leadership, Leadership]]:
    """Two leaderships of one election: the first leads, the second waits behind it."""
    with Client(etcd_endpoint) as first_client, Client(etcd_endpoint) as second_client:
        first = Leadership(first_client.elector("job", namespace=namespace, ttl=TTL)).start()
        try:
            assert first.wait(WAIT_S) is not None
            second = Leadership(second_client.elector("job", namespace=namespace, ttl=TTL))
            with second:
                yield first, second
        finally:
            first.close()


def test_the_body_runs_on_the_leader_only_and_skips_elsewhere(
    two_replicas: tuple[Leadership, Leadership],
) -> None:
    first, second = two_replicas
    calls: list[tuple[str, int]] = []

    def job(who: str) -> Callable[..., object]:
        @leader_only(first if who == "first" else second, pass_term=True)
        def run(term: Term, value: int) -> int:
            calls.append((who, term.token))
            return value * 2

        return run

    term = first.current()
    assert term is not None
    assert job("first")(21) == 42
    assert job("second")(21) is None  # skipped: the body never ran
    assert calls == [("first", term.token)]


def test_raise_and_wait_policies(two_replicas: tuple[Leadership, Leadership]) -> None:
    first, second = two_replicas

    @leader_only(second, otherwise="raise")
    def must_lead() -> str:
        return "ran"

    with pytest.raises(NotLeader, match="does not lead election 'job'"):
        must_lead()

    @leader_only(second, otherwise="wait", timeout=0.2)
    def impatient() -> str:
        return "ran"

    with pytest.raises(NotLeader):
        impatient()
    with pytest.raises(NotLeader), second.leading(otherwise="raise"):
        pass

    @leader_only(second, otherwise="wait", pass_term=True)
    def patient(term: Term) -> int:
        return term.token

    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(patient()))
    waiter.start()
    old = first.current()
    assert old is not None
    first.close()  # resigns: the waiting call runs on the new leader at once
    waiter.join(WAIT_S)
    assert not waiter.is_alive()
    assert result and result[0] > old.token
    with second.leading() as term:
        assert term.token == result[0]


def test_bad_policies_and_mismatched_functions_are_refused(
    two_replicas: tuple[Leadership, Leadership],
) -> None:
    first, _ = two_replicas
    with pytest.raises(ConfigurationError, match="not a policy"):
        leader_only(first, otherwise="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot be skipped"), first.leading("skip"):
        pass

    async def asynchronous() -> None:
        return None

    with pytest.raises(ConfigurationError, match="AsyncLeadership"):
        leader_only(first)(asynchronous)


async def test_an_async_body_is_cancelled_when_the_term_ends(
    etcd_endpoint: str, namespace: str
) -> None:
    async with (
        AsyncClient(etcd_endpoint) as client,
        AsyncLeadership(client.elector("job", namespace=namespace, ttl=TTL)) as leadership,
    ):
        term = await leadership.wait(WAIT_S)
        assert term is not None
        started = asyncio.Event()
        finished: list[bool] = []

        @leader_only(leadership, pass_term=True)
        async def long_job(term: Term) -> None:
            started.set()
            await asyncio.sleep(60)
            finished.append(True)

        call = asyncio.ensure_future(long_job())
        await asyncio.wait_for(started.wait(), WAIT_S)
        await client.delete(term.key)  # someone deletes our key: the term is over
        with pytest.raises(LeadershipLost):
            await asyncio.wait_for(call, WAIT_S)
        assert not finished
        assert leadership.current() is None or leadership.current() is not term
        # The caller's own task was not left cancelled: it can go on awaiting.
        await asyncio.sleep(0)

        @leader_only(leadership, otherwise="wait", timeout=WAIT_S)
        async def next_job() -> str:
            return "ran"

        # The elector campaigns again; the waiting call runs under the next term.
        assert await next_job() == "ran"


async def test_async_skip_and_raise(etcd_endpoint: str, namespace: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        first = AsyncLeadership(client.elector("job", namespace=namespace, ttl=TTL))
        second = AsyncLeadership(client.elector("job", namespace=namespace, ttl=TTL))
        async with first:
            assert await first.wait(WAIT_S) is not None  # leads before the second campaigns
            await second.start()

            @leader_only(second)
            async def skipped() -> str:
                return "ran"

            @leader_only(first)
            async def runs() -> str:
                return "ran"

            assert await skipped() is None
            assert await runs() == "ran"
            with pytest.raises(NotLeader):
                async with second.leading(otherwise="raise"):
                    pass
            await wait_until(lambda: first.current() is not None, "first leads")
            await second.close()


def test_an_elector_that_stopped_for_good_is_never_silent(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the endpoint and the elector is told to stop on transport errors:
    the error reaches every later call instead of a leadership that never comes."""
    nobody = f"127.0.0.1:{free_port()}"
    with Client(nobody, timeout=0.5, connect_timeout=0.5) as client:
        elector = client.elector("job", namespace=namespace, ttl=TTL, stop_on=(TransportError,))
        with Leadership(elector) as leadership:

            @leader_only(leadership)
            def job() -> str:
                return "ran"

            with pytest.raises(TransportError):
                leadership.wait(WAIT_S)
            with pytest.raises(TransportError):
                leadership.current()
            with pytest.raises(TransportError):
                job()
            with pytest.raises(TransportError), leadership.leading():
                pass
    assert "leadership of election=job stopped" in caplog.text


# -- three processes, faults, no slot run twice ----------------------------------------------


@pytest.mark.slow
def test_three_replicas_never_run_a_slot_twice_under_faults(
    etcd_endpoint: str,
    namespace: str,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> None:
    record = tmp_path / "ticks.txt"
    every = 0.1
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ETCD")},
        "PYTHONPATH": os.pathsep.join([str(HELPERS.parent), os.environ.get("PYTHONPATH", "")]),
    }
    replicas = ReplicaSet(
        argv=lambda name: [
            sys.executable,
            str(HELPERS / "leader_only_child.py"),
            "--record",
            str(record),
            "--name",
            "job",
            "--namespace",
            namespace,
            "--ttl",
            str(TTL),
            "--every",
            str(every),
        ],
        env=env,
        etcd_endpoint=etcd_endpoint,
        start_proxy=fault_proxy,
        election="job",
        namespace=namespace,
        directory=tmp_path,
    )

    def ticked_under(token: int) -> bool:
        return any(int(fields[2]) >= token for fields in read_records(record))

    try:
        replicas.start()
        first = replicas.wait_leader()
        replicas.wait_until(lambda: ticked_under(first.token), "the first leader ticking")
        faults = replicas.run_faults(FAULT_KINDS, ticked_under)
        last = replicas.wait_leader()
        count_before = len(read_records(record))
        replicas.wait_until(
            lambda: len(read_records(record)) >= count_before + 3, "ticks after the faults"
        )
    finally:
        replicas.close()
    ticks = read_records(record)
    slots = Counter(int(fields[1]) for fields in ticks)
    duplicates = {slot: n for slot, n in slots.items() if n > 1}
    assert not duplicates, f"slots run more than once: {duplicates}\n{replicas.logs()}"
    tokens = {int(fields[2]) for fields in ticks}
    for fault in faults:  # every fault was followed by ticks under a newer term
        assert any(token > fault.token for token in tokens), fault
    assert last.token in tokens


# -- the example, as its docs say ------------------------------------------------------------

EXAMPLES = Path(__file__).parent.parent / "examples"


def example_env(endpoint: str, namespace: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD", "EXAMPLE_"))}
    env.update(ETCD_ENDPOINTS=endpoint, ETCD_ELECTOR_NAMESPACE=namespace, ETCD_ELECTOR_TTL="2")
    env.update(more)
    return env


def test_example_reports_fenced_then_resigns(etcd_endpoint: str, namespace: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "leader_only_job.py"), "--every", "0.05"],
        env=example_env(etcd_endpoint, namespace, EXAMPLE_ITERATIONS="3"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    token = int(lines[0].rsplit(" ", 1)[1])
    assert lines == [
        f"report 1 by token {token}",
        f"report 2 by token {token}",
        f"report 3 by token {token}",
        "stopped after 3 reports, resigned",
    ]
    with Client(etcd_endpoint) as client:
        assert client.get(f"{namespace}/reports.progress").kv.value == (  # type: ignore[union-attr]
            f"token={token} run=3".encode()
        )
        assert client.get_prefix(f"{namespace}/reports/").kvs == ()  # resigned


def test_example_copies_hand_over_when_the_leader_is_killed(
    etcd_endpoint: str, namespace: str, tmp_path: Path
) -> None:
    env = example_env(etcd_endpoint, namespace)
    argv = [sys.executable, str(EXAMPLES / "leader_only_job.py"), "--every", "0.05"]
    outputs = [tmp_path / "first.out", tmp_path / "second.out"]
    with open(outputs[0], "w") as first_out, open(outputs[1], "w") as second_out:
        first = subprocess.Popen(argv, env=env, stdout=first_out, stderr=subprocess.STDOUT)
        second = subprocess.Popen(argv, env=env, stdout=second_out, stderr=subprocess.STDOUT)
        try:

            def reports(index: int) -> list[str]:
                return [
                    line
                    for line in outputs[index].read_text().splitlines()
                    if line.startswith("report ")
                ]

            asyncio.run(wait_until(lambda: bool(reports(0) or reports(1)), "a first report"))
            leader, other = (first, second) if reports(0) else (second, first)
            follower_index = 1 if leader is first else 0
            assert not reports(follower_index)  # the other copy's calls were skipped
            subprocess.run(["kill", str(leader.pid)], check=True)  # resigns at once
            assert leader.wait(WAIT_S) == 0
            asyncio.run(wait_until(lambda: len(reports(follower_index)) >= 2, "the takeover"))
            subprocess.run(["kill", str(other.pid)], check=True)
            assert other.wait(WAIT_S) == 0
        finally:
            for process in (first, second):
                process.kill()
                process.wait()
    leader_text = outputs[1 - follower_index].read_text()
    follower_text = outputs[follower_index].read_text()
    old = int(leader_text.splitlines()[0].rsplit(" ", 1)[1])
    new = int(reports_of(follower_text)[0].rsplit(" ", 1)[1])
    assert new > old
    assert leader_text.splitlines()[-1].endswith("reports, resigned")
    assert follower_text.splitlines()[-1].endswith("reports, resigned")


def reports_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("report ")]
