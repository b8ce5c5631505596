"""docs/security.md's etcdctl commands, run as written against a fresh etcd, give exactly
the access the page promises: candidates campaign in their election only, observers read
only, and a candidate can revoke its own lease."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from etcd_elector import AsyncClient, AsyncElection, PermissionDenied
from etcd_elector._environ import without_etcd_settings
from etcd_elector.testing import EtcdMember

pytestmark = pytest.mark.timeout(60)

DOC = Path(__file__).parent.parent / "docs" / "security.md"
MARKER = "<!-- tested: tests/test_docs_security.py runs this block -->"
PASSWORDS = {
    "ROOT_PASSWORD": "root-Doc-51aa",
    "CANDIDATE_PASSWORD": "cand-Doc-0b7e",
    "OBSERVER_PASSWORD": "obs-Doc-93c2",
}


def documented_script() -> str:
    return DOC.read_text().split(MARKER, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]


def run_documented_commands(endpoint: str, etcd_binary: str) -> None:
    etcdctl = Path(etcd_binary).with_name("etcdctl")
    assert etcdctl.exists(), f"etcdctl is expected next to {etcd_binary}"
    env = without_etcd_settings(os.environ)
    env.update(PASSWORDS, PATH=f"{etcdctl.parent}{os.pathsep}{env.get('PATH', '')}")
    env["ETCDCTL_ENDPOINTS"] = endpoint
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", documented_script()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_documented_roles_give_exactly_the_documented_access(
    etcd_member: EtcdMember, etcd_binary: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="etcd_elector")
    endpoint = etcd_member.client_endpoint
    run_documented_commands(endpoint, etcd_binary)
    candidate: dict[str, Any] = {
        "username": "scheduler",
        "password": PASSWORDS["CANDIDATE_PASSWORD"],
    }
    observer: dict[str, Any] = {
        "username": "scheduler-observer",
        "password": PASSWORDS["OBSERVER_PASSWORD"],
    }

    async with AsyncClient(endpoint, **candidate) as client:
        async with client.session(ttl=5) as session:
            election = AsyncElection(session, "scheduler")
            term = await election.campaign("candidate-1")
            assert term.key.startswith("/etcd-elector/scheduler/")
            assert await election.verify()
            with pytest.raises(PermissionDenied):
                await AsyncElection(session, "another").campaign("candidate-1")
            async with AsyncClient(endpoint, **observer) as watcher:
                view = watcher.election_view("scheduler")
                leader = await view.leader()
                assert leader is not None and leader.value == b"candidate-1"
                async for seen in view.observe():
                    assert seen == leader
                    break
                async with watcher.session(ttl=5) as observer_session:
                    with pytest.raises(PermissionDenied):
                        await AsyncElection(observer_session, "scheduler").campaign("intruder")
        # Closing the session revoked its lease: the key is gone at once.
        assert (await client.election_view("scheduler").leader()) is None
    assert "could not revoke" not in caplog.text
