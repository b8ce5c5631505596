"""Test kit: real etcd processes and a fault-injecting TCP proxy, all on 127.0.0.1.

Usable from any test suite; the pytest fixtures live in
:mod:`etcd_elector.testing.pytest_plugin`, registered automatically as a pytest plugin::

    from etcd_elector.testing import EtcdCluster, FaultProxy

    with EtcdCluster.start(3) as cluster, FaultProxy.start(cluster.endpoints[0]) as proxy:
        cluster.leader().kill()
        proxy.blackhole()

    with EtcdCluster.start(3, partitionable=True) as cluster:
        cluster.network.isolate("m1")  # m1 loses its peers, clients still reach it

Helper processes a harness starts (candidates, workers) should not outlive it: start them
with ``dies_with_parent(argv)`` and they are SIGKILLed when the harness dies, even by SIGKILL
(Linux; elsewhere the command runs unwrapped), and give them
``without_etcd_settings(os.environ)`` so the caller's ``ETCD_*`` settings do not reach them.
"""

from __future__ import annotations

from etcd_elector._environ import without_etcd_settings
from etcd_elector._orphans import dies_with_parent
from etcd_elector.testing._binary import ETCD_BINARY_ENV, etcd_version, find_etcd_binary
from etcd_elector.testing._chaos import FAULTS, ChaosResult, ChaosSettings, run_chaos
from etcd_elector.testing._checker import (
    CheckReport,
    Interval,
    RecoveryBound,
    Violation,
    check_history,
    leadership_intervals,
    recovery_bound,
)
from etcd_elector.testing._cluster import (
    EtcdCluster,
    EtcdMember,
    EtcdStartError,
    EtcdTLS,
    LeaderUnknown,
)
from etcd_elector.testing._history import Record, RecordKind, dump_records, load_records
from etcd_elector.testing._peers import PeerNetwork, socket_owner
from etcd_elector.testing._ports import LOOPBACK, free_port, reserve_port
from etcd_elector.testing._proxy import FaultProxy, ProxyMode

__all__ = [
    "ETCD_BINARY_ENV",
    "FAULTS",
    "LOOPBACK",
    "ChaosResult",
    "ChaosSettings",
    "CheckReport",
    "EtcdCluster",
    "EtcdMember",
    "EtcdStartError",
    "EtcdTLS",
    "FaultProxy",
    "Interval",
    "LeaderUnknown",
    "PeerNetwork",
    "ProxyMode",
    "Record",
    "RecordKind",
    "RecoveryBound",
    "Violation",
    "check_history",
    "dies_with_parent",
    "dump_records",
    "etcd_version",
    "find_etcd_binary",
    "free_port",
    "leadership_intervals",
    "load_records",
    "recovery_bound",
    "reserve_port",
    "run_chaos",
    "socket_owner",
    "without_etcd_settings",
]
