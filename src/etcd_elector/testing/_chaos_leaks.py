"""What a chaos run may not leave in etcd once every candidate exited: the keys and leases of
candidates that exited cleanly. A killed candidate cannot clean up; its key must lapse with
its lease, so it is given the time a lease takes to lapse (etcd restarts leases when its raft
leader changes, so a late member fault can add a TTL and an election) and judged after."""

from __future__ import annotations

import asyncio
import time

from etcd_elector import AsyncClient
from etcd_elector.etcd import KeyValue

from ._checker import Violation
from ._history import Record, RecordKind

__all__ = ["find_leaks"]

LAPSE_S = 30.0  # a bound on how long a killed candidate's key may outlive it
POLL_S = 0.2


async def find_leaks(
    endpoints: str, prefix: str, records: list[Record], lapse: float = LAPSE_S
) -> list[Violation]:
    """Leaked keys under ``prefix`` and leases, judged against the candidates' records (an
    ``exited`` record lists the leases that candidate campaigned with)."""
    owners = {
        lease: record.candidate
        for record in records
        if record.kind == RecordKind.EXITED
        for lease in record.leases
    }
    violations = []
    async with AsyncClient(endpoints) as client:
        keys = (await client.get_prefix(prefix, keys_only=True)).kvs
        for kv in keys:
            if kv.lease in owners:
                violations.append(
                    Violation(
                        "leak",
                        f"{owners[kv.lease]} exited cleanly but its key {_name(kv)} is left",
                    )
                )
        orphans = [kv for kv in keys if kv.lease not in owners]
        deadline = time.monotonic() + lapse
        while orphans and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            left = {kv.key for kv in (await client.get_prefix(prefix, keys_only=True)).kvs}
            orphans = [kv for kv in orphans if kv.key in left]
        if orphans:
            names = ", ".join(_name(kv) for kv in orphans)
            violations.append(
                Violation("leak", f"keys outlived their leases by {lapse:.0f} s: {names}")
            )
        live = set(await client.lease_list())
        by_owner: dict[str, list[int]] = {}
        for lease in live.intersection(owners):
            by_owner.setdefault(owners[lease], []).append(lease)
        for candidate, leases in sorted(by_owner.items()):
            shown = ", ".join(f"{lease:x}" for lease in sorted(leases))
            violations.append(
                Violation("leak", f"{candidate} exited cleanly but lease {shown} lives")
            )
    return violations


def _name(kv: KeyValue) -> str:
    return kv.key.decode(errors="replace")[:200]
