"""Client settings: endpoints, deadlines, connection tuning. Validated when built.

Reading the environment happens here and only here (``ClientConfig.from_env``), so every
entry point (library, CLI, test kit) agrees on what ``ETCD_ENDPOINTS`` means.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._errors import ConfigurationError

__all__ = ["DEFAULT_ENDPOINT", "ClientConfig", "Endpoint", "parse_endpoints", "validate_timeout"]

DEFAULT_ENDPOINT = "127.0.0.1:2379"

# Underscores are not valid in DNS host names but common in container networks (compose).
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class Endpoint:
    """One etcd member's client address."""

    host: str
    port: int
    secure: bool = False

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 hosts bracketed), as gRPC wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return ("https://" if self.secure else "") + self.address


def _parse_one(text: str) -> Endpoint:
    raw = text.strip()
    secure = False
    for scheme, is_secure in (("https://", True), ("http://", False)):
        if raw.lower().startswith(scheme):
            raw, secure = raw[len(scheme) :], is_secure
            break
    raw = raw.rstrip("/")
    if "://" in raw or "/" in raw:
        raise ConfigurationError(
            f"endpoint {text!r} is malformed: use host:port, http://host:port or https://host:port"
        )
    if raw.startswith("["):
        host, sep, port_text = raw[1:].partition("]:")
        if not sep:
            raise ConfigurationError(f"endpoint {text!r} is malformed: use [ipv6]:port")
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep:
            raise ConfigurationError(
                f"endpoint {text!r} has no port: write it as host:port, e.g. 127.0.0.1:2379"
            )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"endpoint {text!r} has an invalid port: use 1-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host or not all(_HOST_LABEL.match(label) for label in host.split(".")):
            raise ConfigurationError(
                f"endpoint {text!r} has an invalid host name {host!r}"
            ) from None
    return Endpoint(host=host, port=int(port_text), secure=secure)


def parse_endpoints(endpoints: str | Sequence[str]) -> tuple[Endpoint, ...]:
    """Parse ``"a:2379,b:2379"`` or a list of such strings into endpoints, in order, no repeats.

    :raises ConfigurationError: for an empty list or a malformed entry.
    """
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    parsed: list[Endpoint] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"endpoint {item!r} is not a string")
        if not item.strip():
            continue
        endpoint = _parse_one(item)
        if endpoint not in parsed:
            parsed.append(endpoint)
    if not parsed:
        raise ConfigurationError("no etcd endpoint given: pass host:port, e.g. 127.0.0.1:2379")
    return tuple(parsed)


def validate_timeout(value: float, what: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a usable number of seconds, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if (
        math.isnan(seconds)
        or math.isinf(seconds)
        or seconds < 0
        or (seconds == 0 and not allow_zero)
    ):
        raise ConfigurationError(f"{what} must be a positive number of seconds, got {value!r}")
    return seconds


@dataclass(frozen=True)
class ClientConfig:
    """How to reach etcd.

    ``timeout`` bounds every unary call (including failover attempts); ``connect_timeout``
    bounds waiting for one endpoint's connection; ``stream_timeout`` is how long a watch or
    keepalive stream may stay silent after we asked it something before we call it dead.
    """

    endpoints: tuple[Endpoint, ...] = field(
        default_factory=lambda: parse_endpoints(DEFAULT_ENDPOINT)
    )
    timeout: float = 5.0
    connect_timeout: float = 2.0
    stream_timeout: float = 2.0
    # gRPC HTTP/2 pings: etcd rejects pings more often than every 5 s by default.
    grpc_keepalive_time: float = 10.0
    grpc_keepalive_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConfigurationError("no etcd endpoint given")
        validate_timeout(self.timeout, "timeout")
        validate_timeout(self.connect_timeout, "connect_timeout")
        validate_timeout(self.stream_timeout, "stream_timeout")
        validate_timeout(self.grpc_keepalive_time, "grpc_keepalive_time")
        validate_timeout(self.grpc_keepalive_timeout, "grpc_keepalive_timeout")

    @classmethod
    def build(
        cls,
        endpoints: str | Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        stream_timeout: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        """Settings from arguments, falling back to the environment, then to defaults.

        ``ETCD_ENDPOINTS`` (then ``ETCDCTL_ENDPOINTS``) supply endpoints when none are passed.
        """
        env = os.environ if environ is None else environ
        if endpoints is None:
            endpoints = (
                env.get("ETCD_ENDPOINTS") or env.get("ETCDCTL_ENDPOINTS") or DEFAULT_ENDPOINT
            )
        options: dict[str, float] = {}
        if timeout is not None:
            options["timeout"] = validate_timeout(timeout, "timeout")
        if connect_timeout is not None:
            options["connect_timeout"] = validate_timeout(connect_timeout, "connect_timeout")
        if stream_timeout is not None:
            options["stream_timeout"] = validate_timeout(stream_timeout, "stream_timeout")
        return cls(endpoints=parse_endpoints(endpoints), **options)
