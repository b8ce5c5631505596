"""The README's example and the examples, run the way users run them: two replicas as real
processes, stopped with SIGTERM and SIGINT as a shell sends them, and paused with SIGSTOP past
their deadline.

- A stop signal makes a replica stop its work, resign and exit 0 with nothing on stderr; its key
  is gone when it has exited, and the other replica leads before the stopped one's lease could
  have expired (so the handover came from the resign, not from the TTL).
- A replica paused past its deadline and resumed takes the loss as a loss (its work's
  ``term.check()`` may see it first), campaigns again behind the replica that took over, and
  leads again once that one stops: fencing tokens grow across the three terms. The same after
  an etcd outage longer than the TTL.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.replica import WAIT, Replica, send_like_a_shell

from etcd_elector import Client, LeaderInfo
from etcd_elector.testing import EtcdMember

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).parent.parent
README_BLOCK = re.compile(r"## Use it\n.*?^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
TOKEN = re.compile(r"token (\d+)")


def readme_example() -> str:
    """The README's first example, exactly as written."""
    found = README_BLOCK.search((ROOT / "README.md").read_text())
    assert found, "README.md lost its example under '## Use it'"
    return found.group(1)


# Each program: the start of the line it prints when it leads, and its arguments.
# threaded_check_worker is the README's pattern on the blocking API (term.check() in the loop).
PROGRAMS = {
    "readme": ("leading, token ", []),
    "asyncio_worker": ("elected: token ", ["--every", "0.05"]),
    "threaded_worker": ("elected: token ", ["--every", "0.05"]),
    "threaded_check_worker": ("leading, token ", []),
}


@pytest.fixture
def namespace() -> str:
    return f"/test-replicas/{uuid.uuid4().hex}"


@pytest.fixture
def etcd_endpoint(etcd_member: EtcdMember) -> str:
    """An etcd of the test's own: the README's example campaigns in the default namespace."""
    return etcd_member.client_endpoint


@pytest.fixture
def start(
    etcd_endpoint: str, namespace: str, tmp_path: Path
) -> Iterator[Callable[[str, str, int], Replica]]:
    """``start(program, identity, ttl)``: a replica; all are killed at teardown."""
    started: list[Replica] = []

    def run(program: str, identity: str, ttl: int) -> Replica:
        _, args = PROGRAMS[program]
        if program == "readme":
            source = readme_example()
            if ttl != 10:  # the README asks for 10 s; a pause test wants a short one
                assert source.count("ttl=10") == 1
                source = source.replace("ttl=10", f"ttl={ttl}")
            script = tmp_path / f"readme_{identity}.py"
            script.write_text(source)
        elif program == "threaded_check_worker":
            script = Path(__file__).parent / "helpers" / f"{program}.py"
        else:
            script = ROOT / "examples" / f"{program}.py"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD", "EXAMPLE_"))}
        env.update(
            ETCD_ENDPOINTS=etcd_endpoint,
            ETCD_ELECTOR_NAMESPACE=namespace,  # the examples' option; the README uses default
            ETCD_ELECTOR_TTL=str(ttl),
            ETCD_ELECTOR_IDENTITY=identity,
        )
        replica = Replica(str(script), *args, env=env)
        started.append(replica)
        return replica

    yield run
    for replica in started:
        replica.close()


def candidates(endpoint: str, namespace: str, program: str) -> tuple[LeaderInfo, ...]:
    with Client(endpoint) as client:
        name_space = "/etcd-elector" if program == "readme" else namespace
        return client.election_view("scheduler", namespace=name_space).candidates()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def token_of(line: str) -> int:
    found = TOKEN.search(line)
    assert found, line
    return int(found.group(1))


def assert_clean_exit(replica: Replica) -> None:
    code = replica.wait()
    assert (code, replica.stderr) == (0, ""), replica.lines
    assert replica.lines[-1] == "stopped, resigned"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_a_stop_signal_resigns_and_hands_over_within_a_round_trip(
    program: str,
    signum: int,
    start: Callable[[str, str, int], Replica],
    etcd_endpoint: str,
    namespace: str,
) -> None:
    leading, _ = PROGRAMS[program]
    first = start(program, "replica-a", 10)
    first_token = token_of(first.expect(leading))
    second = start(program, "replica-b", 10)
    wait_for(lambda: len(candidates(etcd_endpoint, namespace, program)) == 2, "b queued")
    [lease] = [
        c.lease_id for c in candidates(etcd_endpoint, namespace, program) if c.token == first_token
    ]
    with Client(etcd_endpoint) as client:
        expires_in = client.lease_time_to_live(lease).ttl  # whole seconds, rounded down
    sent = time.monotonic()
    send_like_a_shell(first.pid, signum)

    assert_clean_exit(first)
    exited = time.monotonic() - sent
    # Its key went with it: only the second replica is left, and the first's lease is revoked.
    assert [c.value for c in candidates(etcd_endpoint, namespace, program)] == [b"replica-b"]
    with Client(etcd_endpoint) as client:
        assert client.lease_time_to_live(lease).ttl == -1
    second_token = token_of(second.expect(leading))
    elected = time.monotonic() - sent
    assert second_token > first_token
    # Both before the first's lease could have expired: the resign handed over, not the TTL.
    assert exited < expires_in and elected < expires_in, (exited, elected, expires_in)

    send_like_a_shell(second.pid, signum)  # the last one: nobody to hand over to
    assert_clean_exit(second)
    assert candidates(etcd_endpoint, namespace, program) == ()


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_a_replica_paused_past_its_deadline_campaigns_again(
    program: str,
    start: Callable[[str, str, int], Replica],
    etcd_endpoint: str,
    namespace: str,
) -> None:
    leading, _ = PROGRAMS[program]
    paused = start(program, "replica-a", 2)
    first_token = token_of(paused.expect(leading))
    other = start(program, "replica-b", 2)
    wait_for(lambda: len(candidates(etcd_endpoint, namespace, program)) == 2, "b queued")

    os.kill(paused.pid, signal.SIGSTOP)
    try:
        # The other replica leads only once etcd expired the paused one's lease, which is
        # after the paused one's local deadline: the pause outlasted that deadline.
        other_token = token_of(other.expect(leading))
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    assert other_token > first_token

    def queued_again() -> bool:
        values = [c.value for c in candidates(etcd_endpoint, namespace, program)]
        return values == [b"replica-b", b"replica-a"]

    wait_for(queued_again, "the paused replica to campaign again behind the other")
    assert paused.proc.poll() is None, paused.lines + paused.stderr_lines

    send_like_a_shell(other.pid, signal.SIGTERM)
    assert_clean_exit(other)
    again_token = token_of(paused.expect(leading))
    assert again_token > other_token > first_token

    send_like_a_shell(paused.pid, signal.SIGTERM)
    assert_clean_exit(paused)
    assert not [line for line in paused.lines if "before finishing" in line]
    assert candidates(etcd_endpoint, namespace, program) == ()


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_a_replica_rides_out_an_etcd_outage_longer_than_its_ttl(
    program: str, start: Callable[[str, str, int], Replica], etcd_member: EtcdMember
) -> None:
    leading, _ = PROGRAMS[program]
    replica = start(program, "replica-a", 2)
    first_token = token_of(replica.expect(leading))
    etcd_member.stop()  # SIGSTOP: connections stay open, nothing answers
    try:
        time.sleep(3)  # the outage itself: past the TTL, so the term is surely lost
    finally:
        etcd_member.cont()
    assert token_of(replica.expect(leading)) > first_token  # it campaigned again, and won
    send_like_a_shell(replica.pid, signal.SIGTERM)
    # Warnings about the outage (failed keepalives) may be on stderr; no traceback.
    assert (replica.wait(), replica.lines[-1]) == (0, "stopped, resigned"), replica.stderr
    assert "Traceback" not in replica.stderr, replica.stderr


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_told_again_while_stopping_a_replica_still_resigns(
    mode: str, etcd_endpoint: str, namespace: str
) -> None:
    """An impatient operator: SIGTERM, then Ctrl-C while the work is still stopping. The
    second signal changes nothing: the work finishes stopping, the key goes, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD", "EXAMPLE_"))}
    env.update(ETCD_ENDPOINTS=etcd_endpoint, ETCD_ELECTOR_NAMESPACE=namespace)
    script = Path(__file__).parent / "helpers" / "slow_stop_worker.py"
    replica = Replica(str(script), mode, env=env)
    try:
        replica.expect("leading, token ")
        send_like_a_shell(replica.pid, signal.SIGTERM)
        replica.expect("stopping")
        send_like_a_shell(replica.pid, signal.SIGINT)
        assert len(candidates(etcd_endpoint, namespace, mode)) == 1  # still stopping
        replica.tell("done")
        assert_clean_exit(replica)
        assert candidates(etcd_endpoint, namespace, mode) == ()
    finally:
        replica.close()
