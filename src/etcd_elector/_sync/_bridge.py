"""How a blocking twin carries its async object's calls into the client's loop, written once.

:func:`blocking` makes a twin's method from an async method: the same parameters (type checkers
see them: a twin's signature can never drift from its async original), the same documentation,
no ``await``. :class:`Twin` bridges ``with`` to the async object's ``async with``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar

from .._portal import Portal

__all__ = ["Carrier", "LoopOwner", "Twin", "blocking"]

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A")
A_co = TypeVar("A_co", covariant=True)


class Carrier(Protocol[A_co]):
    """A twin, as :func:`blocking` sees it: its async object and the portal to its loop."""

    @property
    def aio(self) -> A_co: ...

    @property
    def portal(self) -> Portal: ...


def blocking(
    method: Callable[Concatenate[A, P], Awaitable[T]],
) -> Callable[Concatenate[Carrier[A], P], T]:
    """The blocking twin of ``method``, an async method of the twin's async object."""

    @functools.wraps(method)
    def carried(self: Carrier[A], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.portal.call(functools.partial(method, self.aio, *args, **kwargs))

    return carried


class LoopOwner(Protocol):
    """The blocking client, as its twins see it: where its loop is, and whether it is closed."""

    @property
    def portal(self) -> Portal: ...

    @property
    def closed(self) -> bool: ...


class _AsyncContext(Protocol):
    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: Any) -> Any: ...


C = TypeVar("C", bound=_AsyncContext)


class Twin(Generic[C]):
    """The base of the twin of ``aio``, an async context manager living on ``owner``'s loop:
    ``with twin:`` is ``async with aio:`` carried into that loop. Leaving does nothing once
    the client is closed (closing it closed everything)."""

    def __init__(self, owner: LoopOwner, aio: C) -> None:
        self._owner = owner
        self.aio = aio

    @property
    def portal(self) -> Portal:
        """The client's loop (started, and the client opened, at its first use)."""
        return self._owner.portal

    def __enter__(self) -> Self:
        self.portal.call(self.aio.__aenter__)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._owner.closed:
            self.portal.call(self.aio.__aexit__, *exc_info)
