"""A FastAPI app whose replicas all serve, while the leader also runs a job, with
``LeaderLifespan``. Needs ``pip install 'etcd-elector[fastapi]' uvicorn``.

    cd examples && ETCD_ENDPOINTS=127.0.0.1:2379 uvicorn fastapi_lifespan:app --port 8000
    cd examples && ETCD_ENDPOINTS=127.0.0.1:2379 uvicorn fastapi_lifespan:app --port 8001

Every copy answers ``GET /leader``: 200 with the term's token on the leader, 503 elsewhere.
The leader's job writes its progress fenced by the term, every ``EXAMPLE_JOB_EVERY`` seconds
(default 1). Stop the leader (Ctrl-C, or ``kill`` its uvicorn): the lifespan resigns, and the
other copy takes over at once. Settings: ``ETCD_ENDPOINTS``, ``ETCD_ELECTOR_NAMESPACE``,
``ETCD_ELECTOR_TTL``.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI, Response

from etcd_elector import Op, Term
from etcd_elector.integrations.starlette import LeaderLifespan

NAMESPACE = os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector")
PROGRESS_KEY = f"{NAMESPACE}/reports.progress"  # outside the election's prefix
EVERY = float(os.environ.get("EXAMPLE_JOB_EVERY", "1"))


async def send_reports(term: Term) -> None:
    """The leader's job: cancelled the moment the term ends."""
    election = leader.elector.election
    assert election is not None
    runs = 0
    while True:
        runs += 1
        # Fenced: commits only while this term holds.
        await election.txn(success=[Op.put(PROGRESS_KEY, f"token={term.token} run={runs}")])
        await asyncio.sleep(EVERY)


leader = LeaderLifespan(
    "reports",
    work=send_reports,
    namespace=NAMESPACE,
    ttl=int(os.environ.get("ETCD_ELECTOR_TTL", "10")),
)
app = FastAPI(lifespan=leader)


@app.get("/leader")
async def leader_status(response: Response) -> dict[str, object]:
    term = leader.term  # local: computed from the lease deadline, no etcd request
    if term is None:
        response.status_code = 503
        return {"leader": False, "pid": os.getpid()}
    return {"leader": True, "token": term.token, "pid": os.getpid()}
