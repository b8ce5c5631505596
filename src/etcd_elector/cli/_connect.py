"""Opening the client and checking, with one read, that etcd answers and lets us in.

The elector rides out an unreachable etcd forever, which is right once running but wrong
for a command that was just typed: a bad endpoint must fail at once with exit code 5.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from .._client import AsyncClient
from .._view import ElectionView
from ._options import Options

__all__ = ["open_client", "preflight"]


@contextlib.asynccontextmanager
async def open_client(options: Options) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(config=options.config) as client:
        yield client


async def preflight(client: AsyncClient, name: str, options: Options) -> ElectionView:
    """Read the election once (linearizable), so that an unreachable etcd, missing
    credentials or a missing permission fail before anything else happens.

    :raises TransportError: (ConnectionFailed, PermissionDenied, ...) as the read raised it.
    """
    view = client.election_view(name, namespace=options.namespace)
    await view.candidates()
    return view
