"""``etcd-elector leader NAME`` is called from health checks and scripts, so its start-up is
most of its cost: it reads through etcd's JSON gateway with the standard library, and loads
neither gRPC, asyncio nor protobuf (whose imports alone took longer than the whole command
may), nor anything of the elector, the supervisor or the health server (http.server). For a
plaintext endpoint it does not load ssl either. Run as a user runs it, a real process against a
real etcd; Python's ``-X importtime`` lists what the process imported.
"""

from __future__ import annotations

import subprocess
import sys

from helpers.election_kit import namespace_of

from etcd_elector import AsyncClient
from etcd_elector._election._names import candidate_key

NOT_FOR_LEADER = (
    "etcd_elector._election._elector",
    "etcd_elector._election._session",
    "etcd_elector._election._campaign",
    "etcd_elector._sync._client",
    "etcd_elector._health",
    "etcd_elector.cli._leadership",
    "etcd_elector.cli._supervisor",
    "http.server",
    # The gRPC transport and what it needs: `leader` reads over the JSON gateway.
    "etcd_elector.etcd._client",
    "etcd_elector.etcd._transport",
    "etcd_elector._proto",
    "grpc",
    "asyncio",
    "google.protobuf",
    # http.client would load these whatever the endpoint speaks; plaintext needs neither.
    "ssl",
    "email",
)


def _imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "etcd_elector.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done, modules


async def test_leader_imports_only_what_reading_the_leader_needs(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    namespace = namespace_of(etcd_prefix)
    async with AsyncClient(etcd_endpoint) as client:
        lease = await client.lease_grant(30)
        await client.put(candidate_key(namespace, "job", lease.id), "the-leader", lease=lease.id)
        done, modules = _imported(
            "--endpoints", etcd_endpoint, "--namespace", namespace, "leader", "job"
        )
        await client.lease_revoke(lease.id)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the-leader" in done.stdout
    assert "etcd_elector.etcd._gateway" in modules  # the list is real: the gateway was loaded
    assert sorted(m for m in NOT_FOR_LEADER if m in modules) == []
