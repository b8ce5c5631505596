"""The default value a candidate publishes: who it is, for operators reading ``status``."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["default_identity"]


def default_identity(environ: Mapping[str, str] | None = None) -> str:
    """``ETCD_ELECTOR_IDENTITY`` if set; in Kubernetes the pod name; else ``hostname:pid``.

    In a pod, ``POD_NAME`` (set from the downward API) wins, then ``HOSTNAME``, which
    Kubernetes sets to the pod name.
    """
    env = os.environ if environ is None else environ
    if env.get("ETCD_ELECTOR_IDENTITY"):
        return env["ETCD_ELECTOR_IDENTITY"]
    if env.get("POD_NAME"):
        return env["POD_NAME"]
    if env.get("KUBERNETES_SERVICE_HOST") and env.get("HOSTNAME"):
        return env["HOSTNAME"]
    return f"{socket.gethostname()}:{os.getpid()}"
