"""Opening the client and checking, with one read, that etcd answers and lets us in.

The elector rides out an unreachable etcd forever, which is right once running but wrong
for a command that was just typed: a bad endpoint must fail at once with exit code 5.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from .._election._view import AsyncElectionView
from .._errors import ConfigurationError, PermissionDenied
from ..etcd._client import AsyncEtcdClient
from ._leader import access_denied
from ._options import Options

if TYPE_CHECKING:
    from .._client import AsyncClient

__all__ = ["open_client", "preflight"]

C = TypeVar("C", bound=AsyncEtcdClient)


@contextlib.asynccontextmanager
async def open_client(
    options: Options, *, keep_token_file: bool = True
) -> AsyncIterator[AsyncClient]:
    """A client; with ``--token-file``, one that keeps it (commands that lead) or only reads
    it (``keep_token_file=False``: observers).

    :raises ConfigurationError: for a token file that cannot be used.
    """
    from .._client import AsyncClient  # the election layer: only for commands that lead

    async with _opened(AsyncClient, options, keep_token_file=keep_token_file) as client:
        yield client


@contextlib.asynccontextmanager
async def _opened(kind: type[C], options: Options, *, keep_token_file: bool) -> AsyncIterator[C]:
    token_file = options.token_file if keep_token_file else None
    async with kind(config=options.config, token_file=token_file) as client:
        if options.token_file is not None and not keep_token_file:
            client.history.load(options.token_file)
        if options.accept_history_reset:
            try:
                client.history.accept_reset()
            except OSError as exc:
                raise ConfigurationError(
                    f"--accept-history-reset: cannot write token file {options.token_file}: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from None
        yield client


async def preflight(client: AsyncEtcdClient, name: str, options: Options) -> AsyncElectionView:
    """Read the election once (linearizable), so that an unreachable etcd, missing
    credentials or a missing permission fail before anything else happens.

    :raises TransportError: (ConnectionFailed, PermissionDenied, ...) as the read raised it.
    """
    view = AsyncElectionView(client, name, namespace=options.namespace)
    try:
        await view.candidates()
    except PermissionDenied as exc:
        raise access_denied(exc, client.config.username, view.prefix) from exc
    return view
