"""``leader_only``: run a function's body only while this process leads.

::

    with Client() as client, Leadership(client.elector("reports", ttl=10)) as leadership:

        @leader_only(leadership, pass_term=True)
        def send_report(term: Term) -> None:
            db.write(report, fencing_token=term.token)

        send_report()  # runs on the leader; elsewhere returns None at once

The check happens immediately before the body runs, from the term's local deadline (no I/O).
What a call does while this process does not lead is the ``otherwise`` policy:

* ``"skip"`` (default): return ``None`` without running the body;
* ``"wait"``: block (or await) until this process leads, then run; with ``timeout``, raise
  :class:`~etcd_elector.NotLeader` if that did not happen in time;
* ``"raise"``: raise :class:`~etcd_elector.NotLeader`.

An ``async def`` body (with :class:`AsyncLeadership`) is cancelled the moment the term ends,
and the call raises :class:`~etcd_elector.LeadershipLost`. A plain body (with
:class:`Leadership`) cannot be interrupted: it checks ``term.is_leader()`` between units of
work, or fences its writes with ``term.token``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from etcd_elector import ConfigurationError
from etcd_elector.integrations._leadership import (
    AsyncLeadership,
    Leadership,
    Otherwise,
    check_policy,
)

__all__ = ["AsyncLeadership", "Leadership", "Otherwise", "leader_only"]

log = logging.getLogger(__name__)


def leader_only(
    leadership: Leadership | AsyncLeadership,
    *,
    otherwise: Otherwise = "skip",
    pass_term: bool = False,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function so that its body runs only while this process leads.

    :param leadership: a started :class:`Leadership` (for plain functions) or
        :class:`AsyncLeadership` (for ``async def`` functions).
    :param otherwise: ``"skip"``, ``"wait"`` or ``"raise"``: see the module's docs.
    :param pass_term: call the function with the term as its first argument.
    :param timeout: with ``otherwise="wait"``, seconds to wait at most (default: forever).
    :raises ConfigurationError: for an unknown policy, or a function that does not match
        the kind of leadership (``async def`` needs :class:`AsyncLeadership`).
    """
    policy = check_policy(otherwise)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        is_async = inspect.iscoroutinefunction(function)
        if is_async and not isinstance(leadership, AsyncLeadership):
            raise ConfigurationError(
                f"{function.__qualname__} is async: guard it with an AsyncLeadership"
            )
        if not is_async and not isinstance(leadership, Leadership):
            raise ConfigurationError(
                f"{function.__qualname__} is not async: guard it with a Leadership"
            )

        if isinstance(leadership, AsyncLeadership):
            gate = leadership

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                term = await gate.admit(policy, timeout)
                if term is None:
                    log.debug("skipped %s: this process does not lead", function.__qualname__)
                    return None
                async with gate.guard(term):
                    if pass_term:
                        return await function(term, *args, **kwargs)
                    return await function(*args, **kwargs)

            return run_async

        sync_gate = leadership

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            term = sync_gate.admit(policy, timeout)
            if term is None:
                log.debug("skipped %s: this process does not lead", function.__qualname__)
                return None
            if pass_term:
                return function(term, *args, **kwargs)
            return function(*args, **kwargs)

        return run

    return decorate
