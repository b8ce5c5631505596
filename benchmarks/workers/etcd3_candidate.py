"""A candidate built on python-etcd3 0.12's ``Lock`` (runs in benchmarks/.venv-etcd3).

The recipe as its documentation shows it: ``client.lock(name, ttl=N)``, ``acquire()``, and
``refresh()`` from a thread every ttl/3 (the Lock does not refresh itself). Prints JSON lines
like ``etcd-elector campaign --json``: ``waiting``, ``elected``, ``lost`` (when a refresh
fails or answers TTL 0), ``resigned`` (on SIGTERM/SIGINT while holding, after release).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

import etcd3


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ttl", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--value", required=True)
    args = parser.parse_args()
    host, port = args.endpoint.rsplit(":", 1)
    client = etcd3.client(host=host, port=int(port))
    lock = client.lock(args.name, ttl=args.ttl)
    held = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if held.is_set():
            try:
                lock.release()
            finally:
                emit("resigned", value=args.value)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emit("waiting", value=args.value)
    lock.acquire(timeout=None)
    held.set()
    emit("elected", value=args.value, lease=f"{lock.lease.id:x}")
    while True:
        time.sleep(args.ttl / 3)
        try:
            answers = lock.refresh()
        except Exception as exc:
            held.clear()
            emit("lost", value=args.value, reason=f"{type(exc).__name__}: {exc}")
            return
        if not answers or answers[0].TTL <= 0:
            held.clear()
            emit("lost", value=args.value, reason="ttl 0")
            return


if __name__ == "__main__":
    main()
