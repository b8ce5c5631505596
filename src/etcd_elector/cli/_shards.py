"""``etcd-elector shards``: inspect a shard group, follow it, or run a command per owned shard.

``shards run GROUP --shards 64 -- COMMAND`` starts COMMAND once for every shard this replica
owns, each in its own process group with ``ETCD_ELECTOR_SHARD`` and ``ETCD_ELECTOR_TOKEN`` set.
One process per shard (rather than one process told the owned set) is what lets a rebalance
stop exactly the shards that move: the others' commands are never restarted. Each command runs
under the same supervisor as ``etcd-elector run``: SIGTERM, grace, SIGKILL when its shard moves
away, and killed before the session's local deadline when renewals stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Sequence

from .._election._session import AsyncSession
from .._election._term import Term
from .._reasons import EndReason
from .._stop_signals import COMMAND_LINE_SIGNALS, StopSignals
from .._tasks import cancel_and_wait, first_result, wait_first
from ..shards import AsyncShardGroup, AsyncShardView, GroupSnapshot, OwnedShard, shard_names
from ._connect import open_client
from ._executable import check_command
from ._exit import ExitCode, signal_code
from ._options import Options, parse_seconds
from ._output import Printer
from ._parser import ParsedArgs
from ._supervisor import DEFAULT_GRACE, Supervisor, check_grace

__all__ = ["shards"]

log = logging.getLogger(__name__)


async def shards(args: ParsedArgs, options: Options, printer: Printer) -> int:
    action = {"status": _status, "observe": _observe, "run": _run}[args.shards_command]
    return await action(args, options, printer)


def _clean(text: str, limit: int = 80) -> str:
    """Untrusted text from etcd, safe for a terminal: no control bytes, bounded."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def _who(snapshot: GroupSnapshot, lease: int | None) -> str:
    if lease is None:
        return "-"
    member = snapshot.members.get(lease)
    return _clean(member.identity) if member is not None else f"(gone) {lease:x}"


async def _status(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Members, owners and pending moves, from one linearizable read."""
    async with open_client(options) as client:
        view = AsyncShardView(client, args.group, namespace=options.namespace)
        snapshot = await view.snapshot()
        ttls = await asyncio.gather(
            *(client.lease_time_to_live(lease) for lease in snapshot.members)
        )
    shard_list = snapshot.shards() or tuple(sorted(snapshot.owners, key=_natural))
    target = snapshot.target(shard_list)
    pending = snapshot.pending(shard_list)
    owns = {lease: len(snapshot.owned_by(lease)) for lease in snapshot.members}
    if printer.json_lines:
        for (lease, member), info in zip(snapshot.members.items(), ttls, strict=True):
            printer.event(
                "member", args.group, identity=member.identity, lease=f"{lease:x}",
                weight=member.weight, owns=owns[lease], ttl=info.ttl,
            )  # fmt: skip
        for shard in shard_list:
            owner = snapshot.owners.get(shard)
            printer.event(
                "shard",
                args.group,
                shard=shard,
                identity=owner.identity if owner else None,
                lease=owner.lease_hex if owner else None,
                token=owner.token if owner else None,
                target=f"{target[shard]:x}" if target.get(shard) is not None else None,
                pending=shard in pending,
            )
        printer.event(
            "status", args.group, members=len(snapshot.members), shards=len(shard_list),
            owned=len(snapshot.owners), pending=len(pending), revision=snapshot.revision,
        )  # fmt: skip
        return ExitCode.OK
    printer.text(
        f"shard group {_clean(args.group)} (namespace {options.namespace}): "
        f"{len(snapshot.members)} member(s), {len(shard_list)} shard(s), "
        f"{len(snapshot.owners)} owned, {len(pending)} pending move(s)"
    )
    if snapshot.members:
        rows = [("MEMBER", "LEASE", "WEIGHT", "OWNS", "TTL")]
        for (lease, member), info in zip(snapshot.members.items(), ttls, strict=True):
            ttl = f"{info.ttl}s" if info.ttl >= 0 else "gone"
            rows.append(
                (_clean(member.identity), f"{lease:x}", str(member.weight), str(owns[lease]), ttl)
            )
        _table(printer, rows)
    if shard_list:
        rows = [("SHARD", "OWNER", "LEASE", "TOKEN", "MOVING TO")]
        for shard in shard_list:
            owner = snapshot.owners.get(shard)
            moving = _who(snapshot, pending[shard]) if shard in pending else ""
            rows.append(
                (
                    _clean(shard),
                    _who(snapshot, owner.lease) if owner else "-",
                    owner.lease_hex if owner else "-",
                    str(owner.token) if owner else "-",
                    moving,
                )
            )
        _table(printer, rows)
    return ExitCode.OK


def _natural(shard: str) -> tuple[int, str]:
    return (int(shard), "") if shard.isdigit() else (1 << 62, shard)


def _table(printer: Printer, rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        printer.text("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


async def _observe(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """The group now, then every change of membership, ownership and pending moves."""
    async with (
        StopSignals(signals=COMMAND_LINE_SIGNALS) as signals,
        open_client(options, keep_token_file=False) as client,
    ):
        view = AsyncShardView(client, args.group, namespace=options.namespace)
        await view.snapshot()  # fail fast: unreachable etcd, credentials, permissions

        async def follow() -> None:
            before = GroupSnapshot(0)
            pending_before = -1
            async for snapshot in view.follow():
                _print_changes(printer, args.group, before, snapshot)
                pending = len(snapshot.pending())
                if pending != pending_before:
                    printer.event(
                        "pending", args.group, moves=pending, revision=snapshot.revision,
                        text=f"pending {args.group} moves={pending} revision={snapshot.revision}",
                    )  # fmt: skip
                    pending_before = pending
                before = snapshot
                if printer.broken:
                    return

        return await _until_signal(follow(), signals)


def _print_changes(printer: Printer, group: str, old: GroupSnapshot, new: GroupSnapshot) -> None:
    for lease in new.members.keys() - old.members.keys():
        member = new.members[lease]
        printer.event(
            "member_joined", group, identity=member.identity, lease=f"{lease:x}",
            weight=member.weight, text=f"member_joined {group} identity={_clean(member.identity)} "
            f"lease={lease:x} weight={member.weight}",
        )  # fmt: skip
    for lease in old.members.keys() - new.members.keys():
        printer.event("member_left", group, lease=f"{lease:x}")
    for shard, owner in new.owners.items():
        if old.owners.get(shard) != owner:
            printer.event(
                "owned", group, shard=shard, identity=owner.identity, lease=owner.lease_hex,
                token=owner.token, text=f"owned {group} shard={_clean(shard)} "
                f"identity={_clean(owner.identity)} lease={owner.lease_hex} token={owner.token}",
            )  # fmt: skip
    for shard in old.owners.keys() - new.owners.keys():
        printer.event("free", group, shard=shard, text=f"free {group} shard={_clean(shard)}")


async def _until_signal(work: Awaitable[None], signals: StopSignals) -> int:
    """Run ``work`` until it ends or a stop signal comes; re-raise what it raised."""
    await first_result(work, signals.wait())
    return signal_code(signals.received) if signals.received is not None else ExitCode.OK


class _ShardHolder:
    """What :class:`Supervisor` asks of a term's holder, for one shard's ownership: its name,
    the session whose deadline the command must not outlive, and whether to stop."""

    once = False

    def __init__(self, name: str, session: AsyncSession) -> None:
        self.name = name
        self.term_session = session
        self.exit_code: int | None = None
        self._done = asyncio.Event()

    @property
    def exiting(self) -> bool:
        return self._done.is_set()

    def request_exit(self, code: int) -> None:
        """The command exited and will not be restarted: the shard stays owned, idle."""
        self.exit_code = code
        self._done.set()


class _ShardSupervisor(Supervisor):
    """``etcd-elector run``'s supervisor for one shard: the same watchdog and stop, plus the
    group and the shard in the command's environment."""

    def __init__(self, group: str, shard: str, holder: _ShardHolder, run: _RunSettings) -> None:
        super().__init__(
            holder,
            run.printer,
            run.argv,
            grace=run.grace,
            grace_given=run.grace_given,
            restart=run.restart,
            max_failures=0,  # never give a shard up: it stays owned until it moves
            failure_window=0.0,
            signals=run.signals,
        )
        self.group = group
        self.shard = shard

    def _environment(self, term: Term) -> dict[str, str]:
        env = super()._environment(term)
        env.update(ETCD_ELECTOR_GROUP=self.group, ETCD_ELECTOR_SHARD=self.shard)
        return env


class _RunSettings:
    """What every shard's supervisor of one ``shards run`` shares."""

    def __init__(
        self,
        printer: Printer,
        argv: Sequence[str],
        grace: float,
        grace_given: bool,
        restart: str,
        signals: StopSignals,
    ) -> None:
        self.printer = printer
        self.argv = list(argv)
        self.grace = grace
        self.grace_given = grace_given
        self.restart = restart
        self.signals = signals


class _ShardRunner:
    """``shards run``: a supervisor, under its watchdog, for each shard this replica owns."""

    def __init__(self, group: AsyncShardGroup, run: _RunSettings) -> None:
        self.group = group
        self.run = run
        self.printer = run.printer
        self.supervisors: dict[str, _ShardSupervisor] = {}

    async def work(self, owned: OwnedShard) -> None:
        """One shard's ownership: its command runs until the shard moves or is lost."""
        group = self.group
        session = group.session
        assert session is not None
        name = f"{group.group}/{owned.shard}"
        term = Term(
            name, owned.key, group.identity.encode(), owned.lease_id, owned.token, owned.acquired_at
        )
        supervisor = _ShardSupervisor(
            group.group, owned.shard, _ShardHolder(name, session), self.run
        )
        self.run.grace_given = False  # a capped --grace is said once, not once per shard
        self.supervisors[owned.shard] = supervisor
        self.printer.event(
            "acquired", group.group, term, shard=owned.shard,
            text=f"acquired {group.group} shard={owned.shard} token={owned.token}",
        )  # fmt: skip
        try:
            await supervisor.work(term)
        finally:
            self.supervisors.pop(owned.shard, None)

    def kill_now(self, signum: int) -> None:
        """A further stop signal: SIGKILL every command's tree at once; the shards are still
        released and the lease revoked (only SIGKILL of this process skips that)."""
        for supervisor in list(self.supervisors.values()):
            supervisor.kill_now(signum)
        log.warning(
            "%s again: commands killed; still releasing the shards of group %s in etcd",
            signal.Signals(signum).name,
            self.group.group,
        )


async def _run(args: ParsedArgs, options: Options, printer: Printer) -> int:
    """Join GROUP and run COMMAND for every shard this replica owns."""
    grace_given = args.grace is not None
    grace = DEFAULT_GRACE
    if grace_given:
        grace = parse_seconds(args.grace, "--grace", allow_zero=True)
    check_grace(grace, options.ttl)
    check_command(args.argv)
    names = _parse_shards(args.shards)

    def released(owned: OwnedShard, reason: EndReason) -> None:
        group = owned.group
        printer.event(
            "released", group, shard=owned.shard, token=owned.token,
            lease=owned.lease_hex, reason=reason,
            text=f"released {group} shard={owned.shard} token={owned.token} reason={reason}",
        )  # fmt: skip

    async with StopSignals(signals=COMMAND_LINE_SIGNALS) as signals, open_client(options) as client:
        group = AsyncShardGroup(
            client,
            args.group,
            shards=names,
            weight=args.weight,
            identity=args.value,
            namespace=options.namespace,
            ttl=options.ttl,
            drain=0,  # the supervisor drains: SIGTERM, grace, SIGKILL, never past the deadline
            on_released=released,
        )
        await group.view.snapshot()  # fail fast: unreachable etcd, credentials, permissions
        runner = _ShardRunner(
            group, _RunSettings(printer, args.argv, grace, grace_given, args.restart, signals)
        )
        signals.on_repeat(runner.kill_now)
        async with group:
            running = asyncio.ensure_future(group.run(runner.work))
            stop = asyncio.ensure_future(signals.wait())
            try:
                await wait_first(running, stop)
            finally:
                await cancel_and_wait(stop)
                await group.close()  # every command stopped, every shard released, lease revoked
                await wait_first(running)
        if not running.cancelled() and running.exception() is not None:
            error = running.exception()
            assert error is not None
            raise error
        return signal_code(signals.received) if signals.received is not None else ExitCode.OK


def _parse_shards(text: str) -> tuple[str, ...]:
    """``--shards 64`` or ``--shards eu,us,apac``.

    :raises ConfigurationError: for a bad count or name.
    """
    stripped = text.strip()
    if stripped.isdigit():
        return shard_names(int(stripped))
    return shard_names([part.strip() for part in stripped.split(",")])
