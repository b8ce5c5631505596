"""The run ledger: how far each scheduled entry has run, kept in etcd, advanced only fenced.

A scheduler replica that becomes leader must continue the schedule where the last leader left
it, and must never run again what that leader already ran. Before each run the leader
*claims* it: one transaction that commits only if the term still holds (the leader key's
create revision is the term's token) and the entry's record is the one we last read (its mod
revision). A run is claimed at most once; a claim that commits but whose run is then never
sent (the term ended in between, the process died) is a run skipped, never a run doubled.

Records live at ``<namespace>/<election>#runs/<entry>``: ``#`` cannot appear in an election
name, so no election's candidates share the prefix. They hold a small JSON object and no
lease: they outlive terms on purpose. Their content comes from etcd and is checked.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from etcd_elector import AmbiguousResult, Client, Compare, Op, Term, TransportError
from etcd_elector.integrations._leadership import shown

__all__ = ["Claim", "Record", "RunLedger"]

log = logging.getLogger(__name__)

#: Records larger than this are not ours: they are reported and treated as empty.
MAX_RECORD_BYTES = 4096


@dataclass(frozen=True)
class Record:
    """What the ledger holds for one entry, and the revision it was written at (0: none)."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    revision: int = 0

    @property
    def token(self) -> int:
        """The token of the term that wrote it (0 if unknown)."""
        token = self.fields.get("token", 0)
        return token if isinstance(token, int) else 0


class Claim(enum.Enum):
    """How a claim ended."""

    CLAIMED = "claimed"  # ours: run it
    FENCED = "fenced"  # our term is over at etcd: do not run
    CONFLICT = "conflict"  # the record changed since we read it: reload, then decide
    UNKNOWN = "unknown"  # the outcome is ambiguous or etcd is unreachable: do not run


class RunLedger:
    """Fenced per-entry records under ``<namespace>/<election>#runs/``."""

    def __init__(self, client: Client, namespace: str, election: str) -> None:
        self.client = client
        self.election = election
        self.prefix = f"{namespace.rstrip('/')}/{election}#runs/"
        self._records: dict[str, Record] = {}

    def key(self, entry: str) -> str:
        return self.prefix + entry

    def record(self, entry: str) -> Record:
        """The record last read or written for ``entry`` (empty if none)."""
        return self._records.get(entry, Record())

    def load(self, timeout: float | None = None) -> dict[str, Record]:
        """Read every record (one linearizable range read) and remember them.

        :raises TransportError: if etcd cannot be read.
        """
        found = self.client.get_prefix(self.prefix, timeout=timeout)
        records: dict[str, Record] = {}
        for kv in found.kvs:
            entry = kv.key[len(self.prefix.encode()) :].decode("utf-8", "replace")
            records[entry] = Record(self._parse(entry, kv.value), kv.mod_revision)
        self._records = records
        return dict(records)

    def claim(
        self, term: Term, entry: str, fields: Mapping[str, Any], timeout: float | None = None
    ) -> Claim:
        """Write ``fields`` (plus the token) for ``entry`` if the term holds and nobody wrote
        since we read. Never raises for etcd trouble: that is ``Claim.UNKNOWN``."""
        known = self.record(entry)
        if known.token > term.token:
            # Tokens of one election only grow: a larger one means etcd went back in time
            # (restored from an old snapshot?). Running would trust a broken fence.
            log.error(
                "not running entry=%s election=%s: its record was written by token %d, later "
                "than our token %d; was etcd restored from a backup?",
                shown(entry),
                self.election,
                known.token,
                term.token,
            )
            return Claim.FENCED
        value = json.dumps({**fields, "token": term.token}, sort_keys=True)
        key = self.key(entry)
        compares = [
            Compare.create_revision(term.key) == term.token,
            Compare.mod_revision(key) == known.revision,
        ]
        try:
            result = self.client.txn(compares, [Op.put(key, value)], [Op.get(key)], timeout=timeout)
        except AmbiguousResult as exc:
            self._records.pop(entry, None)  # re-read before the next claim
            log.warning(
                "claim of entry=%s election=%s may or may not have committed (%s): not "
                "running it; the record is read again before the next run",
                shown(entry),
                self.election,
                exc,
            )
            return Claim.UNKNOWN
        except TransportError as exc:
            log.warning(
                "cannot claim entry=%s election=%s (%s): not running it",
                shown(entry),
                self.election,
                exc,
            )
            return Claim.UNKNOWN
        if result.succeeded:
            self._records[entry] = Record(json.loads(value), result.revision)
            return Claim.CLAIMED
        current = result.responses[0].kvs if result.responses else ()
        if current and current[0].mod_revision != known.revision:
            kv = current[0]
            self._records[entry] = Record(self._parse(entry, kv.value), kv.mod_revision)
            return Claim.CONFLICT
        if not current and known.revision != 0:
            self._records.pop(entry, None)
            return Claim.CONFLICT
        return Claim.FENCED

    def _parse(self, entry: str, raw: bytes) -> dict[str, Any]:
        problem = ""
        if len(raw) > MAX_RECORD_BYTES:
            problem = f"{len(raw)} bytes, more than {MAX_RECORD_BYTES}"
        else:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                problem = f"not JSON ({exc})"
            else:
                if isinstance(parsed, dict):
                    return parsed
                problem = "not a JSON object"
        log.warning(
            "ignoring the run record of entry=%s election=%s: %s",
            shown(entry),
            self.election,
            problem,
        )
        return {}
