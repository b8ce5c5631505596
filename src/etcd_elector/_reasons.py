"""``EndReason``: why a session, a term or an elector's term ended, as one typed value.

It travels everywhere an end is reported: loss callbacks, ``on_lost``, ``SessionLost`` and
``LeadershipLost``, metrics labels, log lines and the command line's output. It is a
``StrEnum``, so it compares equal to, formats as and serializes to its stable string value.
"""

from __future__ import annotations

import enum

__all__ = ["EndReason"]


class EndReason(enum.StrEnum):
    """Why a session or a term ended. The values are stable strings for logs and metrics.

    The session's own: ``DEADLINE``, ``EXPIRED``, ``CLOSED``, ``ORPHANED``, ``HISTORY_LOST``
    (a term ends with its session's reason). The term's: ``RESIGNED``, ``HANDED_OFF``,
    ``PAUSED``, ``KEY_DELETED``, ``NOT_LEADER``. The elector's, as ``on_lost`` gets them:
    ``WORK_DONE``, ``WORK_FAILED`` and ``CLOSED``. A shard's ownership ends with ``MOVED``,
    ``CLOSED`` (the replica left), ``KEY_DELETED`` or its session's reason.
    """

    #: No renewal before the local deadline.
    DEADLINE = "deadline"
    #: etcd says the lease is gone (TTL 0 or not found).
    EXPIRED = "expired"
    #: Closed by us: the session revoked its lease; the elector was closed or ``run()``
    #: cancelled, and resigned.
    CLOSED = "closed"
    #: Refreshing stopped by us, the lease left to expire.
    ORPHANED = "orphaned"
    #: etcd's revision went back or its cluster id changed (data wiped or restored): the
    #: lease belongs to a history that is gone, or came back from a snapshot.
    HISTORY_LOST = "etcd_history_lost"
    #: We resigned.
    RESIGNED = "resigned"
    #: Someone else deleted our key.
    KEY_DELETED = "key_deleted"
    #: We handed leadership to a chosen successor (``hand_off``), or a handoff fell back to
    #: a resign.
    HANDED_OFF = "handed_off"
    #: The election was paused (``etcd-elector pause``): we drained and stepped down.
    PAUSED = "paused"
    #: A linearizable check found another leader.
    NOT_LEADER = "not_leader"
    #: The work returned; the elector resigned.
    WORK_DONE = "work_done"
    #: The work raised; the elector resigned and re-raises.
    WORK_FAILED = "work_failed"
    #: A shard group's plan gave the shard to another replica: drained, then released.
    MOVED = "moved"
    #: The session was never started (``SessionLost`` from ``check()``).
    NOT_STARTED = "not_started"
