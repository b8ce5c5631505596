"""The examples in examples/ run as documented against a real etcd and stop by themselves;
the Kubernetes manifest and the systemd unit parse and say what the docs promise. (Stopped by
signals and paused past their deadline, as replicas: tests/test_replicas.py.)"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from etcd_elector import Client
from etcd_elector.testing import free_port

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def namespace() -> str:
    return f"/test-examples/{uuid.uuid4().hex}"


def example_env(endpoint: str, namespace: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD", "EXAMPLE_"))}
    env.update(ETCD_ENDPOINTS=endpoint, ETCD_ELECTOR_NAMESPACE=namespace, ETCD_ELECTOR_TTL="2")
    env.update(more)
    return env


def progress(endpoint: str, namespace: str) -> str | None:
    with Client(endpoint) as client:
        found = client.get(f"{namespace}/scheduler.progress").kv
        return None if found is None else found.value.decode()


@pytest.mark.parametrize("script", ["asyncio_worker.py", "threaded_worker.py"])
def test_worker_runs_its_iterations_fenced_then_resigns(
    script: str, etcd_endpoint: str, namespace: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--every", "0.05"],
        env=example_env(etcd_endpoint, namespace, EXAMPLE_ITERATIONS="3"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("elected: token ")
    token = int(lines[0].split()[2].rstrip(","))
    assert [line.split(" committed")[0] for line in lines[1:4]] == ["unit 1", "unit 2", "unit 3"]
    assert lines[-1] == "done: 3 units, resigned"
    assert progress(etcd_endpoint, namespace) == f"token={token} unit=3"
    with Client(etcd_endpoint) as client:  # resigned: no candidate key is left behind
        assert client.get_prefix(f"{namespace}/scheduler/").kvs == ()


def load_fastapi_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app", EXAMPLES / "fastapi_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an HTTP client that calls it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            yield http


async def test_fastapi_app_runs_the_job_on_the_leader_only(
    etcd_endpoint: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd_endpoint)
    module = load_fastapi_example()
    settings: dict[str, Any] = {"namespace": namespace, "ttl": 2, "every": 0.05}

    async def leads(http: httpx.AsyncClient) -> bool:
        return (await http.get("/leader")).status_code == 200

    async with serving(module.create_app(**settings)) as first:
        assert await eventually(lambda: leads(first))
        async with serving(module.create_app(**settings)) as second:

            async def healthy() -> bool:
                return (await second.get("/healthz")).status_code == 200

            assert await eventually(healthy)
            answer = await second.get("/leader")
            assert (answer.status_code, answer.json()["leader"]) == (503, False)
            leading = (await first.get("/leader")).json()
            assert leading["leader"] is True

            async def worked() -> bool:
                return bool((await first.get("/leader")).json()["units"] >= 2)

            assert await eventually(worked)
            assert (await second.get("/status")).json()["token"] == leading["token"]
        # the first replica keeps leading after the second one shut down
        assert await leads(first)
    # the first one resigned at shutdown: nobody is left
    assert await asyncio.to_thread(progress, etcd_endpoint, namespace) == (
        f"token={leading['token']}"
    )
    with Client(etcd_endpoint) as client:
        assert client.get_prefix(f"{namespace}/scheduler/").kvs == ()


def test_fastapi_app_serves_under_uvicorn_and_stops_by_itself(
    etcd_endpoint: str, namespace: str
) -> None:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fastapi_app.py"), "--port", str(port), "--seconds", "4"],
        env=example_env(etcd_endpoint, namespace, EXAMPLE_JOB_EVERY="0.05"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def leader_status() -> int:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/leader", timeout=1).status_code
            except httpx.TransportError:
                return 0

        assert wait_for(lambda: leader_status() == 200)
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 0, out + err
    assert out.strip().endswith("stopped, resigned")


# -- deployment files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> Iterator[list[dict[str, Any]]]:
    with open(EXAMPLES / "kubernetes" / "deployment.yaml") as file:
        yield [doc for doc in yaml.safe_load_all(file) if doc]


def containers(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deployments = [doc for doc in manifests if doc["kind"] == "Deployment"]
    assert deployments
    return [c for d in deployments for c in d["spec"]["template"]["spec"]["containers"]]


def test_kubernetes_pod_name_is_the_identity(manifests: list[dict[str, Any]]) -> None:
    for container in containers(manifests):
        env = {item["name"]: item for item in container["env"]}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert "ETCD_ENDPOINTS" in env


def test_kubernetes_probes_use_the_health_endpoint(manifests: list[dict[str, Any]]) -> None:
    for container in containers(manifests):
        command = container.get("command", []) + container.get("args", [])
        assert command[:2] == ["etcd-elector", "run"]
        assert "--health-addr" in command and "0.0.0.0:8080" in command
        assert "--" in command
        port = container["ports"][0]["containerPort"]
        assert port == 8080
        assert container["readinessProbe"]["httpGet"] == {"path": "/leader", "port": port}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        # Long enough to stop the command (grace) and resign before SIGKILL.
    pod_specs = [d["spec"]["template"]["spec"] for d in manifests if d["kind"] == "Deployment"]
    assert all(spec["terminationGracePeriodSeconds"] >= 10 for spec in pod_specs)


def test_systemd_unit_runs_the_command_under_the_supervisor() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(EXAMPLES / "systemd" / "etcd-elector-scheduler.service")
    service = unit["Service"]
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/etcd-elector")
    assert "run" in exec_start and "--" in exec_start
    assert exec_start.index("run") < exec_start.index("--")
    assert service["Restart"] == "on-failure"
    assert "143" in service["SuccessExitStatus"].split()
    assert service.get("KillMode", "control-group") in ("mixed", "control-group")
    assert "network-online.target" in unit["Unit"]["After"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
