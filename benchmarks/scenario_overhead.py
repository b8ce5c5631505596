"""Scenario 5, client overhead: our transport against bare ``grpc.aio`` stubs.

Operations per second, one etcd member on loopback, in this one process (one event loop):

- ``put``: ``client.put(key, value)`` vs ``unary_unary('/etcdserverpb.KV/Put')``;
- ``txn``: ``client.txn([Compare.value(k) == v], [Op.put(k, v)], [Op.get(k)])`` vs the same
  ``TxnRequest`` built by hand;
- ``keepalive``: ``KeepAliveStream.ping()`` vs ``write()`` + ``read()`` on a bare
  ``LeaseKeepAlive`` stream (one stream per lease in both).

``sequential``: one request at a time (per-request latency recorded too); ``concurrency 16``:
16 tasks (16 leases and streams for keepalive). A third peer, ``bare_dm``, is the bare stub
given what our transport adds to every request by design (a 5 s deadline, etcd's
``hasleader`` metadata; a deadline around each keepalive exchange), to separate gRPC's cost of
those from our Python code. Batches alternate between the peers. The bare stubs send etcd's
messages as ``scenario_overhead_protos.py`` declares them, not through the library.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from harness.runner import Context, interleaved, log, scenario_main
from harness.stats import ratio, summarize

OPS = ("put", "txn", "keepalive")
MODES = (("sequential", 1), ("concurrency16", 16))
VALUE = b"v" * 16
METADATA = (("hasleader", "true"),)
PEERS = ["ours", "bare", "bare_dm"]


async def run(ctx: Context) -> dict[str, Any]:
    import grpc
    import scenario_overhead_protos as etcd_pb

    from etcd_elector import AsyncClient, Compare, Op
    from etcd_elector.testing import EtcdCluster

    ops_per_batch = 200 if ctx.quick else 2000
    trials = 2 if ctx.quick else 6
    results: dict[str, Any] = {}
    with EtcdCluster.start(1) as cluster:
        endpoint = cluster.endpoints[0]
        async with AsyncClient(endpoint) as ours:
            channel = grpc.aio.insecure_channel(endpoint)
            try:
                bare_put = channel.unary_unary(
                    etcd_pb.PUT,
                    request_serializer=etcd_pb.PutRequest.SerializeToString,
                    response_deserializer=etcd_pb.PutResponse.FromString,
                )
                bare_txn = channel.unary_unary(
                    etcd_pb.TXN,
                    request_serializer=etcd_pb.TxnRequest.SerializeToString,
                    response_deserializer=etcd_pb.TxnResponse.FromString,
                )
                bare_keepalive = channel.stream_stream(
                    etcd_pb.LEASE_KEEPALIVE,
                    request_serializer=etcd_pb.LeaseKeepAliveRequest.SerializeToString,
                    response_deserializer=etcd_pb.LeaseKeepAliveResponse.FromString,
                )
                leases = [(await ours.lease_grant(600)).id for _ in range(16)]
                for i in range(16):
                    await ours.put(f"bench/txn/{i}", VALUE)
                our_streams = [ours.lease_keepalive(lease) for lease in leases]
                bare_streams = [bare_keepalive() for _ in leases]
                dm_streams = [bare_keepalive(metadata=METADATA) for _ in leases]

                def ours_op(op: str, worker: int) -> Callable[[int], Awaitable[Any]]:
                    if op == "put":
                        return lambda i: ours.put(f"bench/put/{worker}/{i % 64}", VALUE)
                    if op == "txn":
                        key = f"bench/txn/{worker}"
                        return lambda i: ours.txn(
                            [Compare.value(key) == VALUE], [Op.put(key, VALUE)], [Op.get(key)]
                        )
                    stream = our_streams[worker]
                    return lambda i: stream.ping()

                def bare_op(
                    op: str, worker: int, dm: bool = False
                ) -> Callable[[int], Awaitable[Any]]:
                    # dm: with a per-call deadline and etcd's require-leader metadata, as
                    # our transport sends every request.
                    extra: dict[str, Any] = {"timeout": 5.0, "metadata": METADATA} if dm else {}
                    if op == "put":

                        def put(i: int) -> Awaitable[Any]:
                            request = etcd_pb.PutRequest(
                                key=f"bench/put/{worker}/{i % 64}".encode(), value=VALUE
                            )
                            return bare_put(request, **extra)  # type: ignore[no-any-return]

                        return put
                    if op == "txn":
                        key = f"bench/txn/{worker}".encode()

                        def txn(i: int) -> Awaitable[Any]:
                            request = etcd_pb.TxnRequest(
                                compare=[
                                    etcd_pb.Compare(
                                        result=etcd_pb.Compare.EQUAL,
                                        target=etcd_pb.Compare.VALUE,
                                        key=key,
                                        value=VALUE,
                                    )
                                ],
                                success=[
                                    etcd_pb.RequestOp(
                                        request_put=etcd_pb.PutRequest(key=key, value=VALUE)
                                    )
                                ],
                                failure=[
                                    etcd_pb.RequestOp(request_range=etcd_pb.RangeRequest(key=key))
                                ],
                            )
                            return bare_txn(request, **extra)  # type: ignore[no-any-return]

                        return txn
                    call = (dm_streams if dm else bare_streams)[worker]
                    request = etcd_pb.LeaseKeepAliveRequest(ID=leases[worker])

                    async def ping(i: int) -> Any:
                        await call.write(request)
                        return await call.read()

                    async def ping_with_deadline(i: int) -> Any:
                        async with asyncio.timeout(2.0):
                            await call.write(request)
                            return await call.read()

                    if dm:
                        return ping_with_deadline

                    return ping

                def bare_dm_op(op: str, worker: int) -> Callable[[int], Awaitable[Any]]:
                    return bare_op(op, worker, dm=True)

                async def batch(peer: str, op: str, concurrency: int, count: int) -> dict[str, Any]:
                    make = {"ours": ours_op, "bare": bare_op, "bare_dm": bare_dm_op}[peer]
                    latencies: list[float] = []
                    per_task = count // concurrency

                    async def worker(w: int) -> None:
                        fn = make(op, w)
                        clock = time.perf_counter
                        record = concurrency == 1
                        for i in range(per_task):
                            t = clock()
                            await fn(i)
                            if record:
                                latencies.append(clock() - t)

                    started = time.perf_counter()
                    await asyncio.gather(*(worker(w) for w in range(concurrency)))
                    elapsed = time.perf_counter() - started
                    return {
                        "ops": per_task * concurrency,
                        "seconds": elapsed,
                        "ops_per_second": per_task * concurrency / elapsed,
                        "latencies": latencies,
                    }

                # Warm-up: connections, code paths.
                for op in OPS:
                    for peer in PEERS:
                        await batch(peer, op, 16, 160)
                log(f"overhead: {trials} trials x {ops_per_batch} ops, alternating peers")
                for op in OPS:
                    for mode, concurrency in MODES:
                        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PEERS}
                        for trial, peer in interleaved(PEERS, trials):
                            del trial
                            runs[peer].append(await batch(peer, op, concurrency, ops_per_batch))
                        entry: dict[str, Any] = {}
                        for peer, batches in runs.items():
                            rates = [b["ops_per_second"] for b in batches]
                            lat = [x for b in batches for x in b["latencies"]]
                            entry[peer] = {
                                "ops_per_second": summarize(rates),
                                "rates": rates,
                                "latency": summarize(lat) if lat else None,
                                "latency_sample": lat[:: max(1, len(lat) // 2000)],
                            }
                        ours_rate = entry["ours"]["ops_per_second"]["p50"]
                        bare_rate = entry["bare"]["ops_per_second"]["p50"]
                        entry["overhead_factor"] = ratio(bare_rate, ours_rate)
                        entry["overhead_vs_bare_dm"] = ratio(
                            entry["bare_dm"]["ops_per_second"]["p50"], ours_rate
                        )
                        results[f"{op}/{mode}"] = entry
                        log(
                            f"overhead {op}/{mode}: ours {ours_rate:.0f}/s, "
                            f"bare {bare_rate:.0f}/s, x{entry['overhead_factor']:.2f} "
                            f"(x{entry['overhead_vs_bare_dm']:.2f} against bare+deadline+metadata)"
                        )
                for call in [*bare_streams, *dm_streams]:
                    call.cancel()
                for stream in our_streams:
                    await stream.close()
            finally:
                await channel.close()
    return {
        "ops_per_batch": ops_per_batch,
        "trials_per_peer": trials,
        "results": results,
        "note": "overhead_factor = bare median ops/s / ours median ops/s (1.0 = no overhead); "
        "overhead_vs_bare_dm: the same against bare stubs given a deadline and the "
        "require-leader metadata",
    }


if __name__ == "__main__":
    scenario_main("overhead", run)
