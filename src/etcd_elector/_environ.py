"""The environment a child process gets when our etcd settings must not reach it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["ETCD_PREFIXES", "without_etcd_settings"]

#: etcd reads ``ETCD_*`` variables as its flags; etcdctl, our clients and our command line
#: read both kinds as connection settings.
ETCD_PREFIXES = ("ETCD_", "ETCDCTL_")


def without_etcd_settings(
    environ: Mapping[str, str], *, keep: Iterable[str] = ()
) -> dict[str, str]:
    """``environ`` without ``ETCD_*`` and ``ETCDCTL_*`` variables (those named in ``keep``
    stay): for a test etcd server, a demo candidate or a script that must not pick up the
    caller's endpoints, certificates or credentials."""
    kept = frozenset(keep)
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith(ETCD_PREFIXES) or name in kept
    }
