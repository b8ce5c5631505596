"""etcd authentication: the user name and password exchanged for a token, and a new token
when etcd stops accepting the old one.

etcd's tokens expire (``--auth-token-ttl``, 300 s by default for simple tokens, counted from
their last use) and are invalidated when users or roles change. Every call and stream carries
the current token as ``token`` metadata; a call that etcd refuses for its token alone gets a
new one (one ``Authenticate`` at a time, however many calls noticed) and is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .._errors import AuthenticationFailed
from .._proto import rpc_pb2
from ._status import AUTH_NOT_ENABLED, refused_user

if TYPE_CHECKING:
    from .._secret import Secret

__all__ = ["AuthManager", "Authenticate"]

#: Sends one ``Authenticate`` request (with no token) before a deadline: the transport's.
Authenticate = Callable[
    [rpc_pb2.AuthenticateRequest, float], Awaitable[rpc_pb2.AuthenticateResponse]
]

log = logging.getLogger(__name__)


class AuthManager:
    """Owns the client's token; re-authentication is serialized."""

    def __init__(self, authenticate: Authenticate, username: str, password: Secret) -> None:
        self._authenticate = authenticate
        self.username = username
        self._password = password
        self._token: str | None = None
        self._enabled = True  # False once etcd said authentication is not enabled
        self._lock = asyncio.Lock()
        self.authentications = 0  # how many tokens were obtained (for tests and metrics)

    def __repr__(self) -> str:
        state = "token" if self._token else "no token"
        return f"<AuthManager user={self.username!r} {state}>"

    @property
    def token(self) -> str | None:
        """The current token, if one was obtained (None also when etcd has auth disabled)."""
        return self._token

    async def ensure(self, deadline: float) -> str | None:
        """The current token, authenticating first if there is none yet."""
        if self._token is None and self._enabled:
            await self.refresh(None, deadline)
        return self._token

    async def refresh(self, stale: str | None, deadline: float) -> str | None:
        """Replace ``stale`` (the token a refused call carried) by a new token.

        Callers that saw the same stale token wait for one ``Authenticate``; a caller whose
        token was already replaced gets the new one at once.

        :raises AuthenticationFailed: for a wrong user name or password.
        """
        async with self._lock:
            if self._token != stale:
                return self._token
            request = rpc_pb2.AuthenticateRequest(
                name=self.username, password=self._password.reveal()
            )
            try:
                response = await self._authenticate(request, deadline)
            except AuthenticationFailed as exc:
                raise refused_user(self.username, exc.endpoint) from exc
            except Exception as exc:
                if AUTH_NOT_ENABLED in str(exc):
                    log.debug("etcd has authentication disabled: calls carry no token")
                    self._enabled = False
                    self._token = None
                    return None
                raise
            self._token = response.token
            self._enabled = True
            self.authentications += 1
            log.debug("authenticated to etcd as user=%s", self.username)
            return self._token
