"""The commands that ask for planned moves: ``handoff``, ``pause``, ``resume``.

Each writes one moves key (anyone with access may) and, for ``handoff`` and ``pause``, waits
until the election shows the move done: a new leader, or no leader at all. A move that is not
carried out within ``--wait`` (a leader of a release before planned moves, or one still
draining) is said so with its own exit code; a handoff request is then withdrawn, a pause
stays in force until ``resume``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .._election._moves import MoveKeys
from .._election._requests import clear_pause, request_handoff, set_pause, withdraw_request
from .._election._view import AsyncElectionView, LeaderInfo
from .._errors import ConfigurationError
from .._identity import default_identity
from ._connect import open_client, preflight
from ._exit import CliError, ExitCode
from ._options import Options, parse_seconds, printable_value
from ._output import Printer, printable
from ._parser import ParsedArgs

__all__ = ["DEFAULT_WAIT", "handoff", "pause", "resume"]

log = logging.getLogger(__name__)

DEFAULT_WAIT = 60.0
MAX_WAIT = 86400.0
_REASON_LIMIT = 200


def _wait(args: ParsedArgs) -> float:
    if args.wait is None:
        return DEFAULT_WAIT
    return parse_seconds(args.wait, "--wait", bounds=(0.1, MAX_WAIT))


def _requester() -> str:
    return f"etcd-elector@{default_identity()}"


async def _leader_other_than(view: AsyncElectionView, token: int) -> LeaderInfo | None:
    """Wait until someone other than the term ``token`` leads; return them."""
    async for leader in view.observe():
        if leader is not None and leader.token != token:
            return leader
    return None


async def _nobody_leads(view: AsyncElectionView) -> None:
    async for leader in view.observe():
        if leader is None:
            return


async def handoff(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Ask the leader to hand off (to ``--to``), and wait for the new leader."""
    wait = _wait(args)
    to = None if args.to is None else printable_value(args.to, "--to")
    async with open_client(options) as client:
        view = await preflight(client, args.name, options)
        candidates = await view.candidates()
        if not candidates:
            raise CliError(
                f"election {args.name} has no leader to hand off (see 'etcd-elector status "
                f"{args.name}')",
                ExitCode.NO_LEADER,
            )
        leader = candidates[0]
        if to is not None and not any(c.value == to.encode() for c in candidates[1:]):
            raise CliError(
                f"--to {printable(to, limit=60)}: no candidate of election {args.name} other "
                f"than the leader has that value (see 'etcd-elector status {args.name}')",
                ExitCode.NO_SUCH_CANDIDATE,
            )
        keys = MoveKeys(options.namespace, args.name)
        revision = await request_handoff(client, keys, leader.token, to, _requester())
        printer.event("handoff-requested", args.name, leader, to=to)
        try:
            async with asyncio.timeout(wait):
                successor = await _leader_other_than(view, leader.token)
        except TimeoutError:
            successor = None
        if successor is None:
            withdrawn = await withdraw_request(client, keys, revision)
            raise CliError(
                f"the leader of {args.name} did not hand off within {wait:g}s (is it draining, "
                "or of a release before planned moves?); "
                + ("the request was withdrawn" if withdrawn else "the request was taken up"),
                ExitCode.MOVE_TIMED_OUT,
            )
        printer.event(
            "handed-off",
            args.name,
            successor,
            previous=leader.key,
            previous_token=leader.token,
            as_asked=None if to is None else successor.value == to.encode(),
        )
    return ExitCode.OK


def _reason(text: str | None) -> str | None:
    if text is None:
        return None
    reason = printable_value(text, "--reason")
    if len(reason) > _REASON_LIMIT:
        raise ConfigurationError(
            f"--reason is {len(reason)} characters long: the limit is {_REASON_LIMIT}"
        )
    return reason


async def pause(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Pause the election and wait until nobody leads."""
    wait = _wait(args)
    reason = _reason(args.reason)
    async with open_client(options) as client:
        view = await preflight(client, args.name, options)
        keys = MoveKeys(options.namespace, args.name)
        paused = await set_pause(client, keys, reason, _requester())
        try:
            async with asyncio.timeout(wait):
                await _nobody_leads(view)
        except TimeoutError:
            raise CliError(
                f"election {args.name} is paused, but a candidate still holds a key after "
                f"{wait:g}s (is the leader draining, or of a release before planned moves?); "
                f"the pause stays until 'etcd-elector resume {args.name}'",
                ExitCode.MOVE_TIMED_OUT,
            ) from None
        printer.event(
            "paused",
            args.name,
            by=paused.by,
            reason=paused.reason or None,
            paused_at=paused.at,
            text=f"paused {args.name}: no leader until 'etcd-elector resume {args.name}'",
        )
    return ExitCode.OK


async def resume(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Lift the pause."""
    async with open_client(options) as client:
        await preflight(client, args.name, options)
        was_paused = await clear_pause(client, MoveKeys(options.namespace, args.name))
    printer.event(
        "resumed",
        args.name,
        was_paused=was_paused,
        resumed_at=time.time(),
        text=f"resumed {args.name}" if was_paused else f"{args.name} was not paused",
    )
    return ExitCode.OK
