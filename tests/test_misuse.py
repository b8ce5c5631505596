"""Library misuse gets a clear error at the call that is wrong, never silence or a puzzle
(issue #19): a closed elector, work of the wrong kind, the blocking API where it cannot run,
and two candidacies sharing one key."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.election_kit import WAIT_S, namespace_of, wait_until

from etcd_elector import AsyncClient, AsyncElection, Client, ConfigurationError, Term
from etcd_elector._environ import without_etcd_settings

pytestmark = pytest.mark.timeout(60)

TTL = 2


@pytest.fixture
def namespace(etcd_prefix: str) -> str:
    return namespace_of(etcd_prefix)


async def keys_left(client: AsyncClient, namespace: str, name: str) -> int:
    return len((await client.get_prefix(f"{namespace}/{name}/")).kvs)


# -- the elector -----------------------------------------------------------------------------


async def test_run_after_close_says_the_elector_is_closed(
    etcd_endpoint: str, namespace: str
) -> None:
    async def work(term: Term) -> None:
        await asyncio.Event().wait()

    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector("closed", namespace=namespace, ttl=TTL)
        async with elector:
            pass
        with pytest.raises(RuntimeError, match=r"elector for 'closed' is closed: make a new one"):
            await elector.run(work)
        assert await keys_left(client, namespace, "closed") == 0


def test_sync_run_after_close_says_the_elector_is_closed(
    etcd_endpoint: str, namespace: str
) -> None:
    with Client(etcd_endpoint) as client:
        with client.elector("closed", namespace=namespace, ttl=TTL) as elector:
            pass
        with pytest.raises(RuntimeError, match=r"elector for 'closed' is closed: make a new one"):
            elector.run(lambda term: None)


class BlockingWork:
    def __init__(self) -> None:
        self.ran: list[Term] = []

    def __call__(self, term: Term) -> None:
        self.ran.append(term)


def blocking_work(term: Term) -> None:  # the threaded pattern, given to the async elector
    raise AssertionError("must not run")


@pytest.mark.parametrize(
    ("work", "named"),
    [
        (blocking_work, "async def blocking_work(term)"),
        (functools.partial(blocking_work), "async def blocking_work(term)"),
        (BlockingWork(), "async def BlockingWork.__call__(term)"),
    ],
    ids=["function", "partial", "callable-object"],
)
async def test_a_plain_function_is_refused_before_it_runs(
    work: Any, named: str, etcd_endpoint: str, namespace: str
) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        async with client.elector("plain", namespace=namespace, ttl=TTL) as elector:
            with pytest.raises(TypeError) as refused:
                await elector.run(work)
        message = str(refused.value)
        assert named in message
        assert "blocking Elector" in message
        assert await keys_left(client, namespace, "plain") == 0  # it never campaigned


async def test_work_that_returns_no_awaitable_ends_its_term_with_a_clear_error(
    etcd_endpoint: str, namespace: str
) -> None:
    """A lambda can only be judged by what it returns: the term ends, we resign, and run()
    raises the same advice."""
    lost: list[str] = []
    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector(
            "lambda",
            namespace=namespace,
            ttl=TTL,
            on_lost=lambda term, reason: lost.append(reason),
        )
        async with elector:
            with pytest.raises(TypeError, match="work must be an async function"):
                await elector.run(lambda term: None)  # type: ignore[arg-type,return-value]
        assert lost == ["work_failed"]
        assert await keys_left(client, namespace, "lambda") == 0


def test_the_blocking_elector_refuses_an_async_function(etcd_endpoint: str, namespace: str) -> None:
    async def work(term: Term) -> None:
        await asyncio.sleep(0)

    with (
        Client(etcd_endpoint) as client,
        client.elector("async", namespace=namespace, ttl=TTL) as elector,
    ):
        with pytest.raises(TypeError, match=r"Use AsyncElector"):
            elector.run(work)
        assert client.get_prefix(f"{namespace}/async/").kvs == ()


async def test_an_on_elected_error_ends_the_term_and_is_raised_from_run(
    etcd_endpoint: str, namespace: str
) -> None:
    lost: list[str] = []
    started: list[Term] = []

    def on_elected(term: Term) -> None:
        raise ValueError("bug in on_elected")

    async def work(term: Term) -> None:
        started.append(term)

    async with AsyncClient(etcd_endpoint) as client:
        elector = client.elector(
            "elected",
            namespace=namespace,
            ttl=TTL,
            on_elected=on_elected,
            on_lost=lambda term, reason: lost.append(reason),
        )
        async with elector:
            with pytest.raises(ValueError, match="bug in on_elected"):
                await elector.run(work)
        assert (started, lost) == ([], ["work_failed"])
        assert await keys_left(client, namespace, "elected") == 0


def test_the_blocking_api_inside_on_elected_is_raised_from_run(
    etcd_endpoint: str, namespace: str
) -> None:
    """Callbacks run on the client's loop thread, where a blocking call would stop the loop
    for good: the refusal reaches the caller of run(), after the resign."""
    with Client(etcd_endpoint) as client:
        elector = client.elector(
            "callback",
            namespace=namespace,
            ttl=TTL,
            on_elected=lambda term: client.get("/anything"),
        )
        refused = pytest.raises(RuntimeError, match=r"event loop thread.*async API.*work\(term\)")
        with elector, refused:
            elector.run(lambda term: None)
        assert client.get_prefix(f"{namespace}/callback/").kvs == ()


def test_a_call_on_a_closed_client_leaves_no_unawaited_coroutine(etcd_endpoint: str) -> None:
    """The user's path: a script calls a closed client. One error, and no 'coroutine ... was
    never awaited' warning: the portal builds coroutines on its loop, only for calls that run."""
    script = (
        "import sys\n"
        "from etcd_elector import Client\n"
        "client = Client(sys.argv[1])\n"
        "client.close()\n"
        "try:\n"
        "    client.get('/key')\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script, etcd_endpoint],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=without_etcd_settings(os.environ),
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "the client is closed\n", "")


# -- one candidacy per election and session ------------------------------------------------------


@pytest.fixture
def twins(etcd_endpoint: str) -> Iterator[Client]:
    with Client(etcd_endpoint) as client:
        yield client


async def test_one_election_per_name_on_a_session(etcd_endpoint: str, namespace: str) -> None:
    """Its key is named after the session's lease: a second election object would share it."""
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=10) as session,
        client.session(ttl=10) as other_session,
    ):
        election = AsyncElection(session, "job", namespace=namespace)
        with pytest.raises(ConfigurationError, match=r"already has an election 'job'.*keep using"):
            AsyncElection(session, "job", namespace=namespace)
        # Another name, another namespace or another session: each has keys of its own.
        AsyncElection(session, "other-job", namespace=namespace)
        AsyncElection(session, "job", namespace=f"{namespace}/elsewhere")
        rival = AsyncElection(other_session, "job", namespace=namespace)

        term = await election.campaign("a")
        waiting = asyncio.create_task(rival.campaign("b"))
        await wait_until(lambda: rival.key is not None, "the rival's key is written")
        await election.resign()
        assert (await asyncio.wait_for(waiting, WAIT_S)).token > term.token
        await rival.resign()


def test_one_election_per_name_on_a_session_in_the_blocking_api(
    twins: Client, namespace: str
) -> None:
    with twins.session(ttl=10) as session:
        session.election("job", namespace=namespace)
        with pytest.raises(ConfigurationError, match="already has an election 'job'"):
            session.election("job", namespace=namespace)


async def test_one_campaign_at_a_time_on_an_election(etcd_endpoint: str, namespace: str) -> None:
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=10) as session,
        client.session(ttl=10) as holder_session,
    ):
        election = AsyncElection(session, "job", namespace=namespace)
        term = await election.campaign("v1")
        with pytest.raises(RuntimeError, match=r"already leads 'job'.*proclaim\(\).*resign\(\)"):
            await election.campaign("v2")
        leader = await election.leader()
        assert leader is not None and (leader.value, leader.token) == (b"v1", term.token)
        assert election.is_leader()  # the refused call changed nothing
        await election.proclaim("v2")  # the way to change the value
        leader = await election.leader()
        assert leader is not None and leader.value == b"v2"
        await election.resign()

        # While one campaign waits, a second one on the same election is refused.
        holder = AsyncElection(holder_session, "job", namespace=namespace)
        await holder.campaign("holder")
        waiting = asyncio.create_task(election.campaign("v3"))
        await wait_until(lambda: election.key is not None, "our key is written")
        with pytest.raises(RuntimeError, match="already running on this election"):
            await election.campaign("v4")
        await holder.resign()
        again = await asyncio.wait_for(waiting, WAIT_S)
        assert again.token > term.token and again.value == b"v3"
        assert len(await election.view.candidates()) == 1


def test_one_campaign_at_a_time_in_the_blocking_api(twins: Client, namespace: str) -> None:
    with twins.session(ttl=10) as session:
        election = session.election("job", namespace=namespace)
        term = election.campaign("v1")
        with pytest.raises(RuntimeError, match="already leads 'job'"):
            election.campaign("v2")
        election.resign()
        assert election.campaign("v2").token > term.token
        election.resign()
