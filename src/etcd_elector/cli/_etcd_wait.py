"""``--wait-for-etcd``: how long ``campaign`` and ``run`` keep retrying their first read of
etcd before giving up with exit code 5.

Once running, the elector rides out an unreachable etcd for as long as it takes; at start, an
unreachable etcd fails at once by default, because a typed command with a wrong endpoint should
say so now. In Kubernetes (``KUBERNETES_SERVICE_HOST`` is set in every pod) the default is
30 s instead: exiting there means CrashLoopBackOff, whose growing delays (10 s, 20 s, 40 s ...
up to 5 min) would keep the pod down long after etcd is back, so riding out an etcd restart or
a rolling update in-process is better; 30 s is still short enough that a real misconfiguration
turns into visible restarts within a minute, and shorter than a typical liveness probe's
patience, so the pod exits with its own error line rather than being killed silently.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from .. import _clock
from .._backoff import Backoff
from .._client import AsyncClient
from .._election._view import AsyncElectionView
from .._errors import AuthenticationFailed, PermissionDenied, TransportError
from .._stop_signals import StopSignals
from .._tasks import Stopped, unless
from ._connect import preflight
from ._durations import parse_duration
from ._options import Options
from ._parser import ParsedArgs

__all__ = ["KUBERNETES_WAIT", "reach_etcd", "resolve_wait"]

log = logging.getLogger(__name__)

WAIT_VARIABLE = "ETCD_ELECTOR_WAIT_FOR_ETCD"
KUBERNETES_WAIT = 30.0
_RETRY = (0.5, 5.0)
_REMIND_EVERY = 30.0


def resolve_wait(args: ParsedArgs, environ: Mapping[str, str] | None = None) -> float:
    """``--wait-for-etcd``, else ``ETCD_ELECTOR_WAIT_FOR_ETCD``, else 30 s in Kubernetes and
    0 elsewhere.

    :raises CliError: (exit code 4) for a malformed duration.
    """
    env = os.environ if environ is None else environ
    text = getattr(args, "wait_for_etcd", None)
    if text is not None:
        return parse_duration(text, "--wait-for-etcd", allow_zero=True)
    text = env.get(WAIT_VARIABLE) or None
    if text is not None:
        return parse_duration(text, WAIT_VARIABLE, allow_zero=True)
    return KUBERNETES_WAIT if env.get("KUBERNETES_SERVICE_HOST") else 0.0


async def reach_etcd(
    client: AsyncClient, name: str, options: Options, wait: float, signals: StopSignals
) -> AsyncElectionView | None:
    """:func:`preflight`, retried for up to ``wait`` seconds while etcd cannot be reached
    (saying so on stderr); ``None`` if a stop signal came first.

    :raises TransportError: the last failure, once ``wait`` is over.
    :raises AuthenticationFailed: or ``PermissionDenied`` at once: waiting does not cure them.
    """
    give_up = _clock.now() + wait
    backoff = Backoff(*_RETRY)
    reminded = float("-inf")
    while True:
        try:
            outcome = await unless(preflight(client, name, options), signals.wait())
        except (AuthenticationFailed, PermissionDenied):
            raise
        except TransportError as exc:
            left = give_up - _clock.now()
            if left <= 0:
                raise
            if _clock.now() - reminded >= _REMIND_EVERY:
                reminded = _clock.now()
                log.warning(
                    "etcd cannot be reached (%s); retrying for up to %.0fs more (--wait-for-etcd)",
                    exc,
                    left,
                )
            pause = await unless(asyncio.sleep(min(backoff.next(), left)), signals.wait())
            if isinstance(pause, Stopped) or signals.stopping:
                return None
            continue
        if isinstance(outcome, Stopped) or signals.stopping:
            return None
        return outcome
