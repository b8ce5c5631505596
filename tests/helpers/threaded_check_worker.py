"""The README's pattern on the blocking API: work in the main thread that calls
``term.check()`` in its loop (raising ``LeadershipLost`` out of the work once the term is over)
and stops on SIGTERM/SIGINT. Settings from ``ETCD_ENDPOINTS``, ``ETCD_ELECTOR_NAMESPACE`` and
``ETCD_ELECTOR_TTL``.

    python threaded_check_worker.py
"""

from __future__ import annotations

import os

from etcd_elector import Client, Term


def work(term: Term) -> None:
    print(f"leading, token {term.token}", flush=True)
    while True:
        term.check()  # raises LeadershipLost once the term is over
        term.lost.wait(0.05)


def main() -> None:
    namespace = os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector")
    ttl = int(os.environ.get("ETCD_ELECTOR_TTL", "10"))
    with (
        Client() as client,
        client.elector("scheduler", namespace=namespace, ttl=ttl) as elector,
    ):
        elector.stop_on_signals()
        elector.run(work)
    print("stopped, resigned", flush=True)


if __name__ == "__main__":
    main()
