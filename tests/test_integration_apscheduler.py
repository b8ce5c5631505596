"""APScheduler 3 under ``LeaderScheduler``: three replica processes under kill, pause and
partition never run one run time twice and never let a replaced leader run after its
successor; runs missed during a failover are caught up once, or skipped, as configured;
misuse is refused with a clear error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.executors.pool import ProcessPoolExecutor, ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from helpers.election_kit import WAIT_S
from helpers.replicas import FAULT_KINDS, ReplicaSet, read_records

from etcd_elector import Client, ConfigurationError, LeadershipLost, NotLeader
from etcd_elector.integrations._ledger import RunLedger
from etcd_elector.integrations.apscheduler import (
    LeaderScheduler,
    _Chosen,
    _GuardedJob,
    current_run,
)
from etcd_elector.testing import FaultProxy

pytestmark = pytest.mark.timeout(150)

TTL = 2
EVERY = 0.2
HELPERS = Path(__file__).parent / "helpers"
RUNS_PER_TERM = 3  # before the next fault


@dataclass(frozen=True)
class Run:
    run_time: float
    token: int
    identity: str
    term_began: float
    caught_up: bool


def runs_in(record: Path) -> list[Run]:
    return [
        Run(float(f[1]), int(f[2]), f[3], float(f[4]), f[5] == "1") for f in read_records(record)
    ]


def replica_set(
    record: Path,
    namespace: str,
    etcd_endpoint: str,
    fault_proxy: Callable[[str], FaultProxy],
    directory: Path,
    *,
    missed: str,
    count: int,
) -> ReplicaSet:
    anchor = time.time()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ETCD")},
        "PYTHONPATH": os.pathsep.join([str(HELPERS.parent), os.environ.get("PYTHONPATH", "")]),
    }
    return ReplicaSet(
        argv=lambda name: [
            *(sys.executable, str(HELPERS / "apscheduler_child.py"), "--record", str(record)),
            *("--name", "jobs", "--namespace", namespace, "--ttl", str(TTL)),
            *("--every", str(EVERY), "--anchor", str(anchor), "--missed", missed),
        ],
        env=env,
        etcd_endpoint=etcd_endpoint,
        start_proxy=fault_proxy,
        election="jobs",
        namespace=namespace,
        directory=directory,
        count=count,
    )


def check_runs(runs: list[Run], replicas: ReplicaSet) -> None:
    """No run time twice; ordered by run time, tokens never go back; every token was won."""
    logs = replicas.logs()
    twice = [t for t, n in Counter(run.run_time for run in runs).items() if n > 1]
    assert not twice, f"run times run twice: {twice}\n{logs}"
    tokens = [run.token for run in sorted(runs, key=lambda run: run.run_time)]
    assert tokens == sorted(tokens), f"a replaced leader ran after its successor\n{logs}"
    won = {int(t) for t in re.findall(r"leading election=jobs token=(\d+)", replicas.logs(0))}
    assert {run.token for run in runs} <= won


@pytest.mark.slow
def test_three_replicas_run_each_run_time_once_under_faults_and_catch_up_once(
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> None:
    record = tmp_path / "runs.txt"
    replicas = replica_set(
        record, etcd_prefix.rstrip("/"), etcd_endpoint, fault_proxy, tmp_path,
        missed="catch_up", count=3,
    )  # fmt: skip

    def ran_under(token: int) -> bool:
        return sum(run.token >= token for run in runs_in(record)) >= RUNS_PER_TERM

    try:
        replicas.start()
        first = replicas.wait_leader()
        replicas.wait_until(lambda: ran_under(first.token), "the first leader's runs")
        faults = replicas.run_faults(FAULT_KINDS, ran_under)
    finally:
        replicas.close()
    runs = runs_in(record)
    check_runs(runs, replicas)
    for fault in faults:
        # The term that followed the fault ran the runs missed meanwhile exactly once.
        successor = min(run.token for run in runs if run.token > fault.token)
        term_runs = [run for run in runs if run.token == successor]
        caught_up = [run for run in term_runs if run.caught_up]
        assert len(caught_up) == 1, (fault, caught_up)
        # ...as its first run: the missed run itself, or the run it was coalesced into.
        assert term_runs[0] == caught_up[0]
        assert all(run.run_time >= run.term_began for run in term_runs[1:])


@pytest.mark.slow
def test_missed_runs_are_skipped_when_asked(
    etcd_endpoint: str,
    etcd_prefix: str,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> None:
    record = tmp_path / "runs.txt"
    replicas = replica_set(
        record, etcd_prefix.rstrip("/"), etcd_endpoint, fault_proxy, tmp_path,
        missed="skip", count=2,
    )  # fmt: skip

    def ran_under(token: int) -> bool:
        return sum(run.token >= token for run in runs_in(record)) >= RUNS_PER_TERM

    try:
        replicas.start()
        first = replicas.wait_leader()
        replicas.wait_until(lambda: ran_under(first.token), "the first leader's runs")
        (fault,) = replicas.run_faults(["kill"], ran_under)
    finally:
        replicas.close()
    runs = runs_in(record)
    check_runs(runs, replicas)
    later = [run for run in runs if run.token > fault.token]
    assert later
    assert not [run for run in later if run.caught_up or run.run_time < run.term_began]
    # The failover left a gap of missed run times that nobody ran.
    last_before = max(run.run_time for run in runs if run.token <= fault.token)
    assert min(run.run_time for run in later) - last_before > 2 * EVERY


# -- in one process -------------------------------------------------------------------------


def test_current_run_outside_a_job_is_an_error() -> None:
    with pytest.raises(NotLeader, match="only available inside a job"):
        current_run()


def test_misuse_is_refused(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = etcd_prefix.rstrip("/")
    with Client(etcd_endpoint) as client:
        elector = client.elector("jobs", namespace=namespace, ttl=TTL)
        with pytest.raises(ConfigurationError, match="BackgroundScheduler, not a AsyncIOScheduler"):
            LeaderScheduler(AsyncIOScheduler(), elector)
        with pytest.raises(ConfigurationError, match="not a policy"):
            LeaderScheduler(BackgroundScheduler(), elector, missed="later")  # type: ignore[arg-type]
        running = BackgroundScheduler()
        running.start(paused=True)
        try:
            with pytest.raises(ConfigurationError, match="already running"):
                LeaderScheduler(running, elector)
        finally:
            running.shutdown(wait=False)
        pooled = BackgroundScheduler(executors={"default": ProcessPoolExecutor(1)})
        leader = LeaderScheduler(pooled, elector)
        with pytest.raises(ConfigurationError, match="other processes"):
            leader.start()
        assert not pooled.running


# -- the example, as its docs say ------------------------------------------------------------

EXAMPLES = Path(__file__).parent.parent / "examples"


def example_env(endpoint: str, namespace: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD", "EXAMPLE_"))}
    env.update(ETCD_ENDPOINTS=endpoint, ETCD_ELECTOR_NAMESPACE=namespace, ETCD_ELECTOR_TTL="2")
    env.update(more)
    return env


def test_example_runs_its_jobs_fenced_then_resigns(etcd_endpoint: str, etcd_prefix: str) -> None:
    namespace = etcd_prefix.rstrip("/")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "apscheduler_jobs.py"), "--every", "0.1"],
        env=example_env(etcd_endpoint, namespace, EXAMPLE_RUNS="3"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" at ")[0] for line in lines[:3]] == ["run 1", "run 2", "run 3"]
    assert lines[-1] == "stopped after 3 runs, resigned"
    token = int(lines[0].split(" token ")[1].split()[0])
    with Client(etcd_endpoint) as client:
        progress = client.get(f"{namespace}/jobs.progress").kv
        assert progress is not None and progress.value.startswith(f"token={token} ".encode())
        assert client.get_prefix(f"{namespace}/jobs/").kvs == ()  # resigned


def test_example_stops_and_resigns_under_timeout(etcd_endpoint: str, etcd_prefix: str) -> None:
    """``timeout`` sends SIGTERM, the way a script bounds a run."""
    namespace = etcd_prefix.rstrip("/")
    done = subprocess.run(
        [
            "timeout",
            "-s",
            "TERM",
            "4",
            sys.executable,
            str(EXAMPLES / "apscheduler_jobs.py"),
            "--every",
            "0.1",
        ],
        env=example_env(etcd_endpoint, namespace),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 124, done.stdout + done.stderr  # timeout's "it timed out"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("run 1 at ")
    assert re.fullmatch(r"stopped after \d+ runs, resigned", lines[-1])
    with Client(etcd_endpoint) as client:
        assert client.get_prefix(f"{namespace}/jobs/").kvs == ()


def test_executors_added_later_are_guarded_or_refused(
    etcd_endpoint: str, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = etcd_prefix.rstrip("/")
    ran: list[tuple[str, int]] = []
    done = threading.Event()

    def on_thread_pool() -> None:
        ran.append(("extra", current_run().term.token))  # guarded: the run is known
        done.set()

    def on_process_pool() -> None:
        ran.append(("procs", 0))

    async def coroutine_job() -> None:
        ran.append(("async", 0))

    scheduler = BackgroundScheduler()
    with Client(etcd_endpoint) as client:
        elector = client.elector("jobs", namespace=namespace, ttl=TTL)
        with LeaderScheduler(scheduler, elector) as leader:
            assert leader.leadership.wait(WAIT_S) is not None
            scheduler.add_executor(ThreadPoolExecutor(2), "extra")
            scheduler.add_executor(ProcessPoolExecutor(1), "procs")
            scheduler.add_job(on_process_pool, executor="procs", id="procs")
            scheduler.add_job(coroutine_job, id="async")
            scheduler.add_job(on_thread_pool, executor="extra", id="extra")
            assert done.wait(WAIT_S)
    assert ran[0][0] == "extra" and ran[0][1] > 0
    assert [name for name, _ in ran] == ["extra"]
    assert "executor procs is not guarded and will run nothing" in caplog.text
    assert "not running job procs: executor 'procs' runs jobs in other processes" in caplog.text
    assert "job async is a coroutine function" in caplog.text


def test_a_run_whose_term_ended_is_not_started(etcd_endpoint: str, etcd_prefix: str) -> None:
    """The last check, right before the call: a claimed run of a term that is over raises
    ``LeadershipLost`` in the job's place (APScheduler logs it as a job error)."""
    namespace = etcd_prefix.rstrip("/")
    called: list[bool] = []
    scheduler = BackgroundScheduler()
    job = scheduler.add_job(lambda: called.append(True), id="late")
    with Client(etcd_endpoint) as client, client.session(ttl=TTL) as session:
        term = session.election("jobs", namespace=namespace).campaign("me")
        now = datetime.now(UTC)
        guarded = _GuardedJob(job, _Chosen(term, now, [now], caught_up=False))
        session.close()  # the term ends after the run was claimed
        with pytest.raises(LeadershipLost, match="not started"):
            guarded.func()
    assert not called


def test_a_record_that_is_not_ours_is_reported_and_ignored(
    etcd_endpoint: str, etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = etcd_prefix.rstrip("/")
    with Client(etcd_endpoint) as client:
        ledger = RunLedger(client, namespace, "jobs")
        client.put(ledger.key("report"), b"\x1b[31m not json")
        client.put(ledger.key("big"), b"[" * 5000)
        records = ledger.load()
    assert records["report"].fields == {} and records["report"].revision > 0
    assert records["big"].fields == {}
    assert "ignoring the run record of entry=report election=jobs: not JSON" in caplog.text
    assert "5000 bytes, more than 4096" in caplog.text
    assert "\x1b" not in caplog.text
