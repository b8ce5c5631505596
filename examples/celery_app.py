"""Celery beat in every replica, sending only from the leader; workers refuse stale sends.

    # etcd and a broker (Redis here) on 127.0.0.1; then, in two or three terminals:
    ETCD_ENDPOINTS=127.0.0.1:2379 celery -A celery_app beat -S etcd_elector
    # and a worker:
    celery -A celery_app worker --loglevel=info

(run them from this directory, or put it on ``PYTHONPATH``). ``-S etcd_elector`` is the
short name of ``etcd_elector.integrations.celery:LeaderScheduler``. Every beat campaigns;
only the leader sends ``report`` every ``EXAMPLE_EVERY`` seconds (default 5). Stop the
leader (Ctrl-C resigns at once; ``kill -9`` leaves its lease to expire after the TTL) and
another beat goes on with the next run: the schedule's progress is in etcd.

``report`` runs under :class:`FencedTask`: a worker refuses a message whose fencing token is
lower than one it has already seen. The task prints its run and token.
"""

from __future__ import annotations

import os

from celery import Celery

from etcd_elector.integrations.celery import ELECTION_HEADER, RUN_HEADER, TOKEN_HEADER, FencedTask

app = Celery("celery_app", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    beat_schedule={
        "report": {
            "task": "celery_app.report",
            "schedule": float(os.environ.get("EXAMPLE_EVERY", "5")),
        },
    },
    etcd_elector_election="celery-beat",
    etcd_elector_namespace=os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector"),
    etcd_elector_ttl=int(os.environ.get("ETCD_ELECTOR_TTL", "10")),
    broker_connection_retry_on_startup=True,
)


@app.task(base=FencedTask, bind=True)
def report(self: FencedTask) -> str:
    run = getattr(self.request, RUN_HEADER, None)
    token = getattr(self.request, TOKEN_HEADER, None)
    election = getattr(self.request, ELECTION_HEADER, None)
    line = f"report run {run} token {token} election {election}"
    print(line, flush=True)
    return line
