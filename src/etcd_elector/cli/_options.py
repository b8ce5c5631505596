"""Global settings: command line first, then the environment, then defaults, all validated
before any I/O so that a bad value is one clear error line (exit code 4)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._config import DEFAULT_ENDPOINT, ClientConfig, parse_endpoints
from .._errors import ConfigurationError
from .._health import parse_address
from .._names import DEFAULT_NAMESPACE, validate_name, validate_namespace
from .._session import validate_ttl
from ._parser import LOG_FORMATS, ParsedArgs

__all__ = ["DEFAULT_TTL", "Options", "parse_seconds", "resolve_log_format", "resolve_options"]

DEFAULT_TTL = 10
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Options:
    """Validated global settings."""

    config: ClientConfig
    namespace: str
    ttl: int
    timeout: float
    json: bool
    log_level: str
    log_format: str = "text"
    health_addr: tuple[str, int] | None = None  # campaign and run: serve /healthz etc.

    @property
    def endpoints(self) -> str:
        return ",".join(str(endpoint) for endpoint in self.config.endpoints)


def parse_seconds(text: str, what: str, *, allow_zero: bool = False) -> float:
    """``text`` as a finite, positive (or zero) number of seconds, else a ConfigurationError."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{what} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "zero or more" if allow_zero else "more than zero"
        raise ConfigurationError(f"{what} must be {kind} seconds, got {text!r}")
    return value


def _ttl(text: str, source: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(
            f"{source} must be a whole number of seconds (e.g. 10), got {text!r}"
        ) from None
    try:
        return validate_ttl(value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None


def resolve_log_format(args: ParsedArgs, environ: Mapping[str, str] | None = None) -> str:
    """``--log-format``, else ``ETCD_ELECTOR_LOG_FORMAT``, else ``text``.

    :raises ConfigurationError: for an unknown format in the environment.
    """
    env = os.environ if environ is None else environ
    chosen: str | None = getattr(args, "log_format", None)
    if chosen is None:
        chosen = env.get("ETCD_ELECTOR_LOG_FORMAT") or "text"
        if chosen not in LOG_FORMATS:
            raise ConfigurationError(
                f"ETCD_ELECTOR_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {chosen!r}"
            )
    return chosen


def _health_addr(args: ParsedArgs, env: Mapping[str, str]) -> tuple[str, int] | None:
    if not hasattr(args, "health_addr"):
        return None  # a command without a health endpoint
    text, source = args.health_addr, "--health-addr"
    if text is None:
        text, source = env.get("ETCD_ELECTOR_HEALTH_ADDR") or None, "ETCD_ELECTOR_HEALTH_ADDR"
    if text is None:
        return None
    try:
        return parse_address(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None


def resolve_options(args: ParsedArgs, environ: Mapping[str, str] | None = None) -> Options:
    """Merge the command line with the environment and validate everything.

    :raises ConfigurationError: naming the option (or variable) that is wrong.
    """
    env = os.environ if environ is None else environ
    timeout = DEFAULT_TIMEOUT
    if args.timeout is not None:
        timeout = parse_seconds(args.timeout, "--timeout")
    endpoints = args.endpoints
    if endpoints is None:
        endpoints = env.get("ETCD_ENDPOINTS") or env.get("ETCDCTL_ENDPOINTS") or DEFAULT_ENDPOINT
    try:
        parse_endpoints(endpoints)
    except ConfigurationError as exc:
        source = "--endpoints" if args.endpoints is not None else "ETCD_ENDPOINTS"
        raise ConfigurationError(f"{source}: {exc}") from None
    # TLS files and credentials: their errors name the option and the file themselves.
    config = ClientConfig.build(
        endpoints,
        timeout=timeout,
        connect_timeout=min(2.0, timeout),
        ca_file=getattr(args, "cacert", None),
        cert_file=getattr(args, "cert", None),
        key_file=getattr(args, "key", None),
        username=getattr(args, "user", None),
        password_file=getattr(args, "password_file", None),
        environ=env,
    )
    namespace_text = args.namespace
    namespace_source = "--namespace"
    if namespace_text is None:
        namespace_text = env.get("ETCD_ELECTOR_NAMESPACE") or DEFAULT_NAMESPACE
        namespace_source = "ETCD_ELECTOR_NAMESPACE"
    try:
        namespace = validate_namespace(namespace_text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{namespace_source}: {exc}") from None
    if args.ttl is not None:
        ttl = _ttl(args.ttl, "--ttl")
    elif env.get("ETCD_ELECTOR_TTL"):
        ttl = _ttl(env["ETCD_ELECTOR_TTL"], "ETCD_ELECTOR_TTL")
    else:
        ttl = DEFAULT_TTL
    name = getattr(args, "name", None)
    if name is not None:
        validate_name(name)
    return Options(
        config=config,
        namespace=namespace,
        ttl=ttl,
        timeout=timeout,
        json=bool(args.json),
        log_level=args.log_level or "warning",
        log_format=resolve_log_format(args, env),
        health_addr=_health_addr(args, env),
    )
