"""etcd's Prometheus metrics: the counters read before and after a measured window."""

from __future__ import annotations

import re
import time
import urllib.request

# urllib honours http_proxy; everything here is on loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

# Counters kept from etcd's /metrics, named "<metric>[:<grpc method>]".
COUNTERS = (
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "grpc_server_started_total",
    "etcd_debugging_mvcc_events_total",
    "etcd_server_proposals_committed_total",
    "etcd_mvcc_range_total",
    "etcd_mvcc_txn_total",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
)
GAUGES = (
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_keys_total",
)


def is_gauge(key: str) -> bool:
    """Whether ``key`` (as :func:`scrape` names it) is a gauge rather than a counter."""
    return key.split(":")[0] in GAUGES


def scrape(client_url: str) -> dict[str, float]:
    """etcd's counters: gRPC messages by method, watch events sent, proposals, gauges."""
    with _HTTP.open(f"{client_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        if name not in COUNTERS and name not in GAUGES:
            continue
        key = name
        if labels:
            parsed = dict(_LABEL.findall(labels))
            if "grpc_method" in parsed:
                key = f"{name}:{parsed['grpc_method']}"
        out[key] = out.get(key, 0.0) + float(value)
    out["_time"] = time.time()
    return out


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counter differences (gauges are reported as their final value), non-zero ones only."""
    delta: dict[str, float] = {}
    for key, value in after.items():
        if is_gauge(key):
            delta[key] = value
        elif key == "_time":
            delta["_seconds"] = value - before.get("_time", value)
        else:
            diff = value - before.get(key, 0.0)
            if diff:
                delta[key] = diff
    return delta


def requests_by_method(delta: dict[str, float]) -> dict[str, float]:
    """Client messages received by etcd, by gRPC method (unary calls and stream messages)."""
    prefix = "grpc_server_msg_received_total:"
    return {k[len(prefix) :]: v for k, v in delta.items() if k.startswith(prefix)}
