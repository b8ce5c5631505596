"""The web integrations as users run them: the FastAPI example under real uvicorn (two
replicas, a shell-style ``kill`` of the leader hands over at once because the lifespan
resigns), the Django example under real gunicorn with ``--preload`` (one candidate per process
group, taken over by another worker when the holder is SIGKILLed), and a leadership started
before a fork refused in the child."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from etcd_elector import AsyncClient, Client, Term, TransportError
from etcd_elector.integrations.starlette import LeaderLifespan
from etcd_elector.testing import free_port

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).parent.parent / "examples"
WAIT_S = 30.0


@pytest.fixture
def namespace(etcd_prefix: str) -> str:
    return etcd_prefix.rstrip("/")


def clean_env(endpoint: str, namespace: str, **more: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETCD", "EXAMPLE_", "DJANGO_"))
        and k not in ("POD_NAME", "KUBERNETES_SERVICE_HOST")
    }
    env.update(ETCD_ENDPOINTS=endpoint, ETCD_ELECTOR_NAMESPACE=namespace, ETCD_ELECTOR_TTL="2")
    env.update(more)
    return env


def get(url: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body), or (0, {}) while nothing listens."""
    try:
        answer = httpx.get(url, timeout=2, headers={"Connection": "close"})
    except httpx.TransportError:
        return 0, {}
    return answer.status_code, answer.json()


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 10):
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def candidate_keys(endpoint: str, prefix: str) -> list[str]:
    with Client(endpoint) as client:
        return [kv.key.decode() for kv in client.get_prefix(prefix).kvs]


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)


# -- Starlette / FastAPI -------------------------------------------------------------------


def uvicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "fastapi_lifespan:app", "--port", str(port)]


def test_fastapi_lifespan_under_uvicorn_hands_over_at_once_on_kill(
    etcd_endpoint: str, namespace: str
) -> None:
    env = clean_env(etcd_endpoint, namespace, EXAMPLE_JOB_EVERY="0.05")
    first_port, second_port = free_port(), free_port()
    first_url = f"http://127.0.0.1:{first_port}/leader"
    second_url = f"http://127.0.0.1:{second_port}/leader"
    with server(uvicorn(first_port), env, EXAMPLES) as first:
        leading = eventually(lambda: get(first_url)[0] == 200 and get(first_url)[1], "leads")
        with server(uvicorn(second_port), env, EXAMPLES) as second:
            assert eventually(lambda: get(second_url)[0] == 503, "the second one serves")
            assert len(candidate_keys(etcd_endpoint, f"{namespace}/reports/")) == 2
            with Client(etcd_endpoint) as client:
                progress = client.get(f"{namespace}/reports.progress").kv
                assert progress is not None
                assert progress.value.decode().startswith(f"token={leading['token']} run=")

            os.kill(first.pid, signal.SIGTERM)  # what a shell's `kill` sends
            out, _ = first.communicate(timeout=WAIT_S)
            # uvicorn ends by the signal it got (recent versions), after the lifespan's end.
            assert first.returncode in (0, -signal.SIGTERM), out
            assert "Application shutdown complete." in out
            # The lifespan resigned: the key went with the process, not a TTL later.
            keys = candidate_keys(etcd_endpoint, f"{namespace}/reports/")
            assert len(keys) == 1
            taken = eventually(lambda: get(second_url)[0] == 200 and get(second_url)[1], "takes")
            assert taken["token"] > leading["token"]
            assert taken["pid"] == second.pid
            os.kill(second.pid, signal.SIGTERM)
            out, _ = second.communicate(timeout=WAIT_S)
            assert "Application shutdown complete." in out
    assert candidate_keys(etcd_endpoint, f"{namespace}/reports/") == []


async def test_lifespan_work_is_cancelled_on_loss_and_a_failure_resigns(
    etcd_endpoint: str, namespace: str
) -> None:
    """In-process: a term's work is cancelled when the term's key is deleted (a loss), and
    work that fails is logged, resigns, and the process campaigns again."""
    started: list[int] = []
    cancelled: list[int] = []

    async def work(term: Term) -> None:
        started.append(term.token)
        if len(started) == 2:
            raise ValueError("the job broke")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(term.token)
            raise

    class App:
        class state:  # what Starlette's app.state looks like
            leadership: LeaderLifespan | None = None

    lifespan = LeaderLifespan(
        "lifespan", work=work, client=lambda: AsyncClient(etcd_endpoint), namespace=namespace, ttl=2
    )
    assert lifespan.term is None and not lifespan.is_leader()
    async with lifespan(App()):
        assert App.state.leadership is lifespan
        await wait_async(lambda: lifespan.is_leader() and len(started) == 1, "leads")
        first = lifespan.term
        assert first is not None
        async with AsyncClient(etcd_endpoint) as other:
            await other.delete(first.key)  # the term is lost
        # Lost: work cancelled; campaigns again, and the next work fails: resign, again.
        await wait_async(lambda: len(started) >= 3, "a third term after the failure")
        assert cancelled[0] == first.token
        assert sorted(set(started)) == started  # tokens grow, one work per term
        assert lifespan.is_leader()
    assert lifespan.term is None
    assert candidate_keys(etcd_endpoint, f"{namespace}/lifespan/") == []
    with pytest.raises(RuntimeError, match="not running"):
        lifespan.elector  # noqa: B018


async def wait_async(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.02)


# -- Django under gunicorn --preload --------------------------------------------------------


def gunicorn(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--preload",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "django_leader.wsgi",
    ]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def test_django_under_gunicorn_preload_has_one_candidate_per_group(
    etcd_endpoint: str, namespace: str, tmp_path: Path
) -> None:
    """Two workers forked from a --preload master: both serve and ask, one campaigns (the
    group lock holder, never the master); SIGKILL it and the other worker takes over."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/leader"
    prefix = f"{namespace}/django-reports/"
    env = clean_env(etcd_endpoint, namespace, EXAMPLE_GROUP_LOCK=str(tmp_path / "group.lock"))
    with server(gunicorn(port, workers=2), env, EXAMPLES) as master:
        answers: dict[int, tuple[int, dict[str, Any]]] = {}

        def both_workers_answered() -> bool:
            status, body = get(url)
            if status:
                answers[body["pid"]] = (status, body)
            leaders = [pid for pid, (s, _) in answers.items() if s == 200]
            return len(answers) == 2 and len(leaders) == 1

        eventually(both_workers_answered, "both workers served, one of them leads", 60)
        assert master.pid not in answers  # the master never serves, never campaigns
        holder = next(pid for pid, (status, _) in answers.items() if status == 200)
        # Both workers started their leadership; only the lock holder campaigns.
        assert len(candidate_keys(etcd_endpoint, prefix)) == 1

        os.kill(holder, signal.SIGKILL)
        eventually(lambda: not alive(holder), "the holder is gone")
        taken = eventually(
            lambda: (answer := get(url))[0] == 200 and answer[1]["pid"] != holder and answer[1],
            "another worker leads",
        )
        # The waiting worker, or gunicorn's replacement for the killed one if it served a
        # request and took the free lock first (flock is not a queue): never the master.
        assert taken["pid"] != master.pid
        assert taken["token"] > answers[holder][1]["token"]
        # The old lease is gone by now (the new term exists): one candidate again.
        assert len(candidate_keys(etcd_endpoint, prefix)) == 1

        os.kill(master.pid, signal.SIGTERM)
        out, _ = master.communicate(timeout=WAIT_S)
        assert master.returncode == 0, out


FORKS = 5  # a child that dies with gRPC (see below) proves nothing: fork a few


def test_a_leadership_started_before_a_fork_is_refused_in_the_child(
    etcd_endpoint: str, namespace: str
) -> None:
    script = textwrap.dedent(
        f"""
        import os
        from etcd_elector import Client, ConfigurationError
        from etcd_elector.integrations.django import ProcessLeadership

        leadership = ProcessLeadership(
            "forked", client=lambda: Client({etcd_endpoint!r}), namespace={namespace!r}, ttl=2
        )
        leadership.start()  # the trap: started, then forked
        assert leadership.wait(20) is not None
        for _ in range({FORKS}):
            child = os.fork()
            if child == 0:
                try:
                    leadership.is_leader()
                except ConfigurationError as exc:
                    # One write: a child that gRPC crashes meanwhile cannot leave half a line.
                    os.write(1, ("child refused: " + str(exc) + "\\n").encode())
                    os._exit(0)
                os._exit(1)
            _, status = os.waitpid(child, 0)
            print("child exit", os.waitstatus_to_exitcode(status), flush=True)
        print("parent leads", leadership.is_leader(), flush=True)
        leadership.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(etcd_endpoint, namespace),
    )
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    lines = done.stdout.splitlines()
    assert "parent leads True" in lines, shown
    codes = [int(line.split()[-1]) for line in lines if line.startswith("child exit ")]
    assert len(codes) == FORKS, shown
    # 1: is_leader() answered in a child. A negative code: forked while gRPC's threads were
    # busy, gRPC skipped its fork handlers and the child died by a signal before it could ask
    # (about one fork in six here): it never acted as leader either. Most children ask.
    assert 1 not in codes and 0 in codes, shown
    refused = [line for line in lines if line.startswith("child refused:")]
    # Every child that exited 0 was refused (one that was refused may still die by the signal).
    assert codes.count(0) <= len(refused) <= len(codes), shown
    assert all("was forked from it" in r and "start_on_request()" in r for r in refused)


async def test_a_starlette_apps_own_lifespan_enters_it_and_errors_are_never_silent(
    etcd_endpoint: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A real Starlette app with a lifespan of its own that enters ``leader(app)`` inside it;
    then an elector told to stop on transport errors, with nobody at the endpoint: the error
    reaches ``term`` and ``is_leader()`` instead of a leadership that never comes."""
    from starlette.applications import Starlette

    leader = LeaderLifespan(
        "own", client=lambda: AsyncClient(etcd_endpoint), namespace=namespace, ttl=2
    )
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("app starts")
        async with leader(app):
            yield
        events.append("app stopped")

    app = Starlette(lifespan=lifespan)
    async with app.router.lifespan_context(app):
        await wait_async(leader.is_leader, "leads")
        assert app.state.leadership is leader
    assert events == ["app starts", "app stopped"]
    assert candidate_keys(etcd_endpoint, f"{namespace}/own/") == []

    nobody = f"127.0.0.1:{free_port()}"
    failing = LeaderLifespan(
        "own",
        client=lambda: AsyncClient(nobody, timeout=0.5, connect_timeout=0.5),
        namespace=namespace,
        ttl=2,
        stop_on=(TransportError,),
    )
    async with failing(object()):

        def raises() -> bool:
            try:
                failing.is_leader()
            except TransportError:
                return True
            return False

        await wait_async(raises, "the error reaches is_leader()")
        with pytest.raises(TransportError):
            failing.term  # noqa: B018
    assert "leadership of election=own stopped" in caplog.text


def test_django_workers_campaign_before_any_request_with_the_gunicorn_hook(
    etcd_endpoint: str, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    prefix = f"{namespace}/django-reports/"
    env = clean_env(etcd_endpoint, namespace, EXAMPLE_GROUP_LOCK=str(tmp_path / "group.lock"))
    env["ETCD_ELECTOR_TTL"] = "60"  # a key gone at exit was withdrawn, not expired
    args = [*gunicorn(port, workers=2), "--config", "django_leader/gunicorn_conf.py"]
    with server(args, env, EXAMPLES) as master:
        # No request sent: the post_worker_init hook started a candidate (one per group).
        eventually(lambda: len(candidate_keys(etcd_endpoint, prefix)) == 1, "a candidate")
        status, body = eventually(
            lambda: (answer := get(f"http://127.0.0.1:{port}/leader"))[0] and answer, "serves"
        )
        assert status in (200, 503) and body["pid"] != master.pid
        assert len(candidate_keys(etcd_endpoint, prefix)) == 1
        os.kill(master.pid, signal.SIGTERM)
        out, _ = master.communicate(timeout=WAIT_S)
        assert master.returncode == 0, out
    assert candidate_keys(etcd_endpoint, prefix) == []  # the worker resigned as it exited


def test_django_runserver_autoreloader_campaigns_only_in_the_serving_child(
    etcd_endpoint: str, namespace: str, tmp_path: Path
) -> None:
    """``ready()`` runs in both processes of the autoreloader; only the child serves, so only
    the child campaigns."""
    port = free_port()
    prefix = f"{namespace}/django-reports/"
    env = clean_env(etcd_endpoint, namespace, EXAMPLE_GROUP_LOCK=str(tmp_path / "group.lock"))
    env["DJANGO_SETTINGS_MODULE"] = "django_leader.settings"
    args = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}"]
    with server(args, env, EXAMPLES) as reloader:
        body = eventually(
            lambda: (answer := get(f"http://127.0.0.1:{port}/leader"))[0] == 200 and answer[1],
            "the server leads",
        )
        assert body["pid"] != reloader.pid  # the child serves; the parent only reloads
        assert len(candidate_keys(etcd_endpoint, prefix)) == 1
