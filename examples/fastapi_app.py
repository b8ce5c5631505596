"""A web service whose replicas all answer requests while one of them, the leader, also runs
a background job. Needs ``pip install fastapi uvicorn``.

    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/fastapi_app.py --port 8000
    ETCD_ENDPOINTS=127.0.0.1:2379 python examples/fastapi_app.py --port 8001 --seconds 30

or with uvicorn's own command line: ``uvicorn fastapi_app:app --app-dir examples``.

* ``GET /leader``: 200 on the leader, 503 on the others; a readiness probe on it sends
  traffic to the leader only (for a service where only the leader should be reached).
  Computed locally, with no etcd request, like ``is_leader()``.
* ``GET /healthz``: 200 while this replica's session is alive (leader or not).
* ``GET /status``: who leads now, read from etcd.

The lifespan starts the elector and stops it at shutdown (SIGTERM, Ctrl-C), which resigns,
so another replica takes over at once. ``--seconds N`` serves for N seconds, then shuts down.
Settings come from the environment: ``ETCD_ENDPOINTS``, ``ETCD_ELECTOR_NAMESPACE``,
``ETCD_ELECTOR_TTL``, ``EXAMPLE_ELECTION`` (default ``scheduler``) and ``EXAMPLE_JOB_EVERY``
(seconds between units of the job, default 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Response

from etcd_elector import AsyncClient, AsyncElector, Op, Term

log = logging.getLogger("fastapi_app")


def create_app(
    name: str | None = None,
    *,
    namespace: str | None = None,
    ttl: int | None = None,
    every: float | None = None,
) -> FastAPI:
    """The app; unset arguments come from the environment."""
    name = name or os.environ.get("EXAMPLE_ELECTION", "scheduler")
    namespace = namespace or os.environ.get("ETCD_ELECTOR_NAMESPACE", "/etcd-elector")
    ttl = ttl or int(os.environ.get("ETCD_ELECTOR_TTL", "10"))
    every = every or float(os.environ.get("EXAMPLE_JOB_EVERY", "1"))
    progress_key = f"{namespace}/{name}.progress"  # outside the election's prefix
    units = 0
    elector: AsyncElector = None  # type: ignore[assignment]  # set by the lifespan

    async def job(term: Term) -> None:
        """The leader's background work; cancelled the moment leadership is lost."""
        nonlocal units
        election = elector.election
        assert election is not None
        log.warning("elected: token %d", term.token)
        while True:
            term.check()
            # Fenced: commits only while this term holds.
            await election.txn(success=[Op.put(progress_key, f"token={term.token}")])
            units += 1
            await asyncio.sleep(every)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal elector
        async with AsyncClient() as client:
            elector = client.elector(name, namespace=namespace, ttl=ttl)
            async with elector:
                runner = asyncio.create_task(elector.run(job))
                yield
                runner.cancel()  # stops the job and resigns
                with contextlib.suppress(asyncio.CancelledError):
                    await runner

    app = FastAPI(lifespan=lifespan)

    @app.get("/leader")
    async def leader(response: Response) -> dict[str, Any]:
        term = elector.term
        if term is not None and elector.is_leader():
            return {"leader": True, "token": term.token, "key": term.key, "units": units}
        response.status_code = 503
        return {"leader": False, "state": elector.state.value}

    @app.get("/healthz")
    async def healthz(response: Response) -> dict[str, Any]:
        session = elector.session
        alive = session is not None and session.alive
        if not alive:
            response.status_code = 503
        return {"alive": alive, "state": elector.state.value}

    @app.get("/status")
    async def status() -> dict[str, Any]:
        current = await elector.leader()  # a linearizable read
        if current is None:
            return {"leader": None}
        return {"leader": current.value_text, "token": current.token, "key": current.key}

    return app


app = create_app()


async def serve(host: str, port: int, seconds: float) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    if seconds > 0:
        asyncio.get_running_loop().call_later(seconds, setattr, server, "should_exit", True)
    await server.serve()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A FastAPI app with a leader-only job.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=0, help="serve this long (0: forever)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port, args.seconds))
    print("stopped, resigned", flush=True)
