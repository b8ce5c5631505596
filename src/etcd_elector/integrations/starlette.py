"""A lifespan for Starlette and FastAPI: the app campaigns while it serves.

::

    leader = LeaderLifespan("reports", ttl=10, work=send_reports)
    app = FastAPI(lifespan=leader)          # or Starlette(lifespan=leader)

    @app.get("/report")
    async def report() -> dict[str, object]:
        term = leader.term                  # the term if this process leads now, else None
        ...

At startup the lifespan opens an :class:`~etcd_elector.AsyncClient` (endpoints from
``ETCD_ENDPOINTS`` unless ``client=`` makes one) and runs an
:class:`~etcd_elector.AsyncElector` in a background task; at shutdown (SIGTERM, Ctrl-C) it
cancels the work, resigns, so another replica takes over at once, and closes the client.
``work(term)``, if given, runs on each term won and is cancelled the moment the term ends;
when it returns or fails (logged), this process resigns and campaigns again behind the
others. The lifespan needs nothing from Starlette: any framework that takes a lifespan function
(``lifespan(app)`` returning an async context manager) can use it.

Each process that runs the lifespan is one candidate: under ``uvicorn --workers N`` or
gunicorn with uvicorn workers, each worker campaigns (the election still has one leader).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from etcd_elector import AsyncClient, AsyncElector, Term

__all__ = ["LeaderLifespan"]

log = logging.getLogger(__name__)

Work = Callable[[Term], Awaitable[object]]


class LeaderLifespan:
    """Campaign for ``name`` from the app's startup to its shutdown.

    :param name: the election's name.
    :param work: ``async def work(term)``, run on each term won, cancelled when it ends.
    :param client: makes the client at startup (default: ``AsyncClient()``, endpoints from
        ``ETCD_ENDPOINTS``).
    :param elector_options: passed to ``client.elector(name, ...)``: ``ttl``, ``namespace``,
        ``value``, ``on_elected``, ``on_lost``...

    While the app runs, ``app.state.leadership`` is this object too (where the app has a
    ``state``), for handlers that reach it through ``request.app``.
    """

    def __init__(
        self,
        name: str,
        *,
        work: Work | None = None,
        client: Callable[[], AsyncClient] = AsyncClient,
        **elector_options: Any,
    ) -> None:
        self.name = name
        self.work = work
        self._make_client = client
        self._elector_options = elector_options
        self._elector: AsyncElector | None = None
        self._runner: asyncio.Task[None] | None = None

    def __call__(self, app: object) -> contextlib.AbstractAsyncContextManager[None]:
        """The lifespan of ``app``: what ``FastAPI(lifespan=...)`` calls."""
        return self._running(app)

    @contextlib.asynccontextmanager
    async def _running(self, app: object) -> AsyncIterator[None]:
        if self._elector is not None:
            raise RuntimeError(f"the leader lifespan of {self.name!r} is already running")
        state = getattr(app, "state", None)
        async with (
            self._make_client() as client,
            client.elector(self.name, **self._elector_options) as elector,
        ):
            self._elector = elector
            self._runner = asyncio.get_running_loop().create_task(
                self._run(elector), name=f"etcd-elector-lifespan-{self.name}"
            )
            if state is not None:
                state.leadership = self
            try:
                yield
            finally:
                runner, self._runner = self._runner, None
                await elector.close()  # stops the work and resigns
                await asyncio.wait([runner])
                self._elector = None

    async def _run(self, elector: AsyncElector) -> None:
        try:
            await elector.run(self._lead)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("leadership of election=%s stopped: %s", self.name, exc, exc_info=exc)
            raise

    async def _lead(self, term: Term) -> None:
        if self.work is None:
            await asyncio.Event().wait()  # hold the term until it ends or the app stops
            return
        try:
            await self.work(term)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Resign and campaign again behind the others: one of them may do better.
            log.exception("work of election=%s failed (token %d)", self.name, term.token)

    @property
    def elector(self) -> AsyncElector:
        """The running elector (``state``, ``states()``, ``leader()``...).

        :raises RuntimeError: outside the app's lifespan.
        """
        if self._elector is None:
            raise RuntimeError(f"the leader lifespan of {self.name!r} is not running")
        return self._elector

    @property
    def term(self) -> Term | None:
        """The term if this process leads at this very moment, else ``None`` (also outside
        the lifespan). Local, no I/O.

        :raises Exception: the error that stopped the background elector (bad credentials,
            say), so that it is never silent.
        """
        runner, elector = self._runner, self._elector
        if runner is not None and runner.done() and not runner.cancelled():
            error = runner.exception()
            if error is not None:
                raise error
        term = None if elector is None else elector.term
        return term if term is not None and term.is_leader() else None

    def is_leader(self) -> bool:
        """Whether this process leads at this very moment. Local, no I/O.

        :raises Exception: as :attr:`term` does.
        """
        return self.term is not None
