"""The public names, pinned: what ``etcd_elector`` and ``etcd_elector.etcd`` export, exactly;
and the blocking twins keep the types of their async originals, so a type checker refuses a
wrong argument to a twin as it does to the async call."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

import etcd_elector
import etcd_elector.etcd
import etcd_elector.shards

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).parent.parent

TOP_LEVEL = [
    "AmbiguousResult",
    "AsyncClient",
    "AsyncElection",
    "AsyncElectionView",
    "AsyncElector",
    "AsyncSession",
    "AsyncShardGroup",
    "AsyncShardView",
    "AsyncWatch",
    "AuthenticationFailed",
    "CampaignFailed",
    "Client",
    "ClientClosed",
    "ClientConfig",
    "Compare",
    "ConfigurationError",
    "ConnectionFailed",
    "DatabaseSpaceExceeded",
    "Election",
    "ElectionView",
    "Elector",
    "ElectorEvent",
    "ElectorState",
    "EndReason",
    "EtcdElectorError",
    "EtcdReachable",
    "EtcdServerError",
    "EtcdUnreachable",
    "FencedResult",
    "GroupSnapshot",
    "HealthServer",
    "HistoryLoss",
    "JsonLogFormatter",
    "KeyValue",
    "LeaderInfo",
    "LeaderObserved",
    "LeadershipError",
    "LeadershipLost",
    "LeaseNotFound",
    "MetricsSink",
    "Move",
    "MoveKind",
    "NoLeader",
    "NoopMetrics",
    "NotLeader",
    "Op",
    "OwnedShard",
    "Pause",
    "PermissionDenied",
    "PrometheusMetrics",
    "RequestRejected",
    "RequestTimeout",
    "RequestTooLarge",
    "Secret",
    "Session",
    "SessionLost",
    "SessionState",
    "ShardEvent",
    "ShardEventKind",
    "ShardGroup",
    "ShardOwner",
    "ShardView",
    "SystemdNotifier",
    "TLSHandshakeFailed",
    "Term",
    "TimingReport",
    "TokenRegressed",
    "TransportError",
    "TxnResult",
    "Watch",
    "WatchCanceled",
    "WatchCompacted",
    "WatchError",
    "__version__",
    "check_timing",
    "get_metrics",
    "set_metrics",
]

ETCD = [
    "AsyncEtcdClient",
    "AsyncWatch",
    "Compare",
    "DeleteResult",
    "Endpoint",
    "Event",
    "EventType",
    "GetResult",
    "HistoryGuard",
    "HistoryLoss",
    "KeepAliveAnswer",
    "KeepAliveStream",
    "KeyValue",
    "Lease",
    "LeaseInfo",
    "Member",
    "Op",
    "PutResult",
    "RangeResult",
    "Status",
    "TxnResult",
    "WatchBatch",
]

# What a shard group's tools use besides the top level: the plan and the key layout.
SHARDS = [
    "AsyncShardGroup",
    "AsyncShardView",
    "GroupKeys",
    "GroupSnapshot",
    "MemberInfo",
    "OwnedShard",
    "ShardEvent",
    "ShardEventKind",
    "ShardGroup",
    "ShardOwner",
    "ShardView",
    "ShardWork",
    "plan",
    "quotas",
    "shard_names",
]

TWINS = [
    "Client",
    "Session",
    "Election",
    "ElectionView",
    "Elector",
    "Watch",
    "ShardGroup",
    "ShardView",
]


def test_the_top_level_exports_exactly_these_names() -> None:
    assert etcd_elector.__all__ == TOP_LEVEL
    for name in TOP_LEVEL:
        assert hasattr(etcd_elector, name), name


def test_the_etcd_module_exports_exactly_these_names() -> None:
    assert etcd_elector.etcd.__all__ == ETCD
    for name in ETCD:
        obj = getattr(etcd_elector.etcd, name)
        assert inspect.getdoc(obj), name
        if name in TOP_LEVEL:
            assert getattr(etcd_elector, name) is obj  # one object, two places to import it


def test_the_shards_module_exports_exactly_these_names() -> None:
    assert etcd_elector.shards.__all__ == SHARDS
    for name in SHARDS:
        obj = getattr(etcd_elector.shards, name)
        if name in TOP_LEVEL:
            assert getattr(etcd_elector, name) is obj  # one object, two places to import it


def test_the_api_page_lists_every_name_of_the_etcd_module() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## The etcd client: `etcd_elector.etcd`", 1)[1].split("\n::: ", 1)[0]
    assert [name for name in ETCD if f"`{name}`" not in section] == []


def test_async_classes_are_async_x_and_their_twins_plain_x() -> None:
    for twin in TWINS:
        original = getattr(etcd_elector, f"Async{twin}")
        assert inspect.isclass(original) and inspect.isclass(getattr(etcd_elector, twin))
    assert etcd_elector.Client("127.0.0.1:1").aio.__class__ is etcd_elector.AsyncClient


def _resolved(annotation: object) -> object:
    """An annotation as a type, resolved in the namespace of every module of the package (a
    twin's signature may be its original's, written in another module)."""
    if not isinstance(annotation, str):
        return annotation
    namespace: dict[str, object] = {}
    for name, module in sorted(sys.modules.items()):
        if name == "etcd_elector" or name.startswith("etcd_elector."):
            namespace.update(vars(module))
    namespace.update(vars(typing))
    return eval(annotation, namespace)  # our own source's annotations


def _mentions_any(annotation: object) -> bool:
    annotation = _resolved(annotation)
    if annotation is typing.Any:
        return True
    return any(_mentions_any(argument) for argument in typing.get_args(annotation))


def test_no_any_in_the_public_signatures_of_the_blocking_twins() -> None:
    """A twin's method is its async original's (carried to the loop): the signature a reader
    and a type checker see is the original's, and none takes ``**options: Any``."""
    loose = []
    for twin in TWINS:
        cls = getattr(etcd_elector, twin)
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") and name != "__init__":
                continue
            function = member.fget if isinstance(member, property) else member
            if not callable(function):
                continue
            try:
                signature = inspect.signature(function, eval_str=True)
            except (TypeError, ValueError, NameError):
                continue  # builtins inherited from object
            annotations = [p.annotation for p in signature.parameters.values()]
            annotations.append(signature.return_annotation)
            if any(_mentions_any(annotation) for annotation in annotations):
                loose.append(f"{twin}.{name}{signature}")
    assert loose == []


SNIPPET = """
from etcd_elector import AsyncClient, Client, Op, ShardGroup

async def uses_the_async_api(client: AsyncClient) -> None:
    client.elector("x", ttl="10")  # error: ttl
    await client.get("k", revision="1")  # error: revision

def uses_the_blocking_api(client: Client) -> None:
    client.elector("x", ttl="10")  # error: ttl
    client.get("k", revision="1")  # error: revision
    client.put("k", 5)  # error: value
    client.session(ttl=10, margin="1")  # error: margin
    client.watch("k", prefix="yes")  # error: prefix
    with client.session(ttl=10) as session:
        session.election("x", namespace=3)  # error: namespace
        session.election("x").txn(success=[Op.put("k", "v")], timeout="1")  # error: timeout
    client.elector("x", ttl=10, margin=1.5, on_lost=lambda term, reason: None)
    client.get("k", revision=1, timeout=2.0)
    group = ShardGroup(client, "orders", shards=4, weight="2")  # error: weight
    group.txn("0", success=[Op.put("k", "v")], failure=Op.get("k"))  # error: failure
    group.txn(group.owned()["0"], success=[Op.put("k", "v")])
"""


def test_a_type_checker_refuses_wrong_arguments_to_the_twins(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(SNIPPET))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(snippet),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    lines = SNIPPET.splitlines()
    expected = {number for number, line in enumerate(lines, 1) if "# error" in line}
    flagged = {
        int(line.split(":")[1])
        for line in done.stdout.splitlines()
        if line.startswith(snippet.name) and ": error:" in line
    }
    assert flagged == expected, done.stdout + done.stderr
