"""Global settings: command line first, then the environment, then defaults, all validated
before any I/O so that a bad value is one clear error line (exit code 4)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._config import DEFAULT_ENDPOINT, ClientConfig, parse_endpoints
from .._election._moves import DEFAULT_PRIORITY, MAX_PRIORITY, validate_priority
from .._election._names import DEFAULT_NAMESPACE, validate_name, validate_namespace
from .._errors import ConfigurationError
from .._seconds import seconds
from ._durations import duration_seconds
from ._output import printable
from ._parser import COMMAND_GLOBALS, LOG_FORMATS, ParsedArgs

__all__ = [
    "DEFAULT_TTL",
    "Options",
    "parse_priority",
    "parse_seconds",
    "printable_value",
    "resolve_log_format",
    "resolve_options",
]

DEFAULT_TTL = 10
DEFAULT_TIMEOUT = 5.0
# A deadline beyond gRPC's range fails every call at once ("did not answer in time"); an
# hour is already far longer than any etcd call should take.
TIMEOUT_BOUNDS = (0.01, 3600.0)


@dataclass(frozen=True)
class Options:
    """Validated global settings."""

    config: ClientConfig  # the defaults for commands that talk to no etcd
    namespace: str
    ttl: int
    timeout: float
    json: bool
    log_level: str
    log_format: str = "text"
    health_addr: tuple[str, int] | None = None  # campaign and run: serve /healthz etc.
    token_file: str | None = None  # campaign, run (kept), observe, status (read)
    accept_history_reset: bool = False  # campaign, run

    @property
    def endpoints(self) -> str:
        return ",".join(str(endpoint) for endpoint in self.config.endpoints)


def parse_seconds(
    text: str, what: str, *, allow_zero: bool = False, bounds: tuple[float, float] | None = None
) -> float:
    """``text`` as a finite, positive (or zero) number of seconds, within ``bounds`` if given,
    else a ConfigurationError that quotes ``text`` as typed. A unit may follow the number, as
    in every duration the command line takes (``500ms``, ``5s``, ``2m``)."""
    try:
        value = float(text)
    except ValueError:
        in_seconds = duration_seconds(text)
        if in_seconds is None:
            raise ConfigurationError(
                f"{what} must be a number of seconds (or with a unit: 500ms, 5s, 2m), got {text!r}"
            ) from None
        value = in_seconds
    if bounds is not None:
        low, high = bounds
        if not low <= value <= high:  # also false for nan
            raise ConfigurationError(
                f"{what} must be between {low:g} and {high:g} seconds, got {text!r}"
            )
        return value
    return seconds(value, what, allow_zero=allow_zero, shown=repr(text))


def _ttl(text: str, source: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(
            f"{source} must be a whole number of seconds (e.g. 10), got {text!r}"
        ) from None
    from .._election._timing import validate_ttl  # the commands that lead

    return validate_ttl(value, what=source, typed=text)


def parse_priority(text: str | None) -> int:
    """``--priority``: a whole number from 0 (never lead) to 1000000, default 1.

    :raises ConfigurationError: otherwise.
    """
    if text is None:
        return DEFAULT_PRIORITY
    if not text.strip().isdigit():
        raise ConfigurationError(
            f"--priority must be a whole number from 0 (never lead) to {MAX_PRIORITY}, got {text!r}"
        )
    return validate_priority(int(text))


def printable_value(text: str, source: str) -> str:
    """The candidate's value: printable text only. Operators read it one line per candidate
    (``status``, ``observe``, logs); a newline or an escape sequence in an identity is a
    mistake to catch here, not something to publish. (Library users may publish any bytes;
    the CLI escapes them when it prints.)"""
    for position, char in enumerate(text):
        if not char.isprintable():
            raise ConfigurationError(
                f"{source} has a character that cannot be shown ({printable(char)} at "
                f"position {position}): candidate values are printed one per line, so use "
                "printable text"
            )
    return text


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
        from .._health import parse_address  # http.server: only for --health-addr

        return parse_address(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None


def _client_config(args: ParsedArgs, timeout: float, env: Mapping[str, str]) -> ClientConfig:
    endpoints = args.endpoints
    if endpoints is None:
        endpoints = env.get("ETCD_ENDPOINTS") or env.get("ETCDCTL_ENDPOINTS") or DEFAULT_ENDPOINT
    try:
        parse_endpoints(endpoints)
    except ConfigurationError as exc:
        source = "--endpoints" if args.endpoints is not None else "ETCD_ENDPOINTS"
        raise ConfigurationError(f"{source}: {exc}") from None
    if args.password is not None and args.password_file is not None:
        raise ConfigurationError("give the password once: --password or --password-file")
    # TLS files and credentials: their errors name the option and the file themselves.
    config = ClientConfig.build(
        endpoints,
        timeout=timeout,
        connect_timeout=min(2.0, timeout),
        ca_file=args.cacert,
        cert_file=args.cert,
        key_file=args.key,
        server_name=args.server_name,
        username=args.user,
        password=args.password,
        password_file=args.password_file,
        environ=env,
    )
    if config.server_name is not None and not config.tls:
        raise ConfigurationError(
            "--server-name is for TLS: use https:// endpoints or --cacert (ETCD_CACERT)"
        )
    return config


def _namespace(args: ParsedArgs, env: Mapping[str, str]) -> str:
    text, source = args.namespace, "--namespace"
    if text is None:
        text = env.get("ETCD_ELECTOR_NAMESPACE") or DEFAULT_NAMESPACE
        source = "ETCD_ELECTOR_NAMESPACE"
    try:
        return validate_namespace(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None


def _lease_ttl(args: ParsedArgs, env: Mapping[str, str]) -> int:
    if args.ttl is not None:
        return _ttl(args.ttl, "--ttl")
    if env.get("ETCD_ELECTOR_TTL") and args.command in ("campaign", "run", "check-config"):
        return _ttl(env["ETCD_ELECTOR_TTL"], "ETCD_ELECTOR_TTL")
    return DEFAULT_TTL


def _check_value(args: ParsedArgs, env: Mapping[str, str]) -> None:
    if not hasattr(args, "value"):
        return  # a command that publishes no value
    if args.value is not None:
        printable_value(args.value, "--value")
    elif env.get("ETCD_ELECTOR_IDENTITY"):
        printable_value(env["ETCD_ELECTOR_IDENTITY"], "ETCD_ELECTOR_IDENTITY")


def _token_file(args: ParsedArgs, env: Mapping[str, str]) -> str | None:
    if not hasattr(args, "token_file"):
        return None  # a command that issues and compares no tokens
    return args.token_file or env.get("ETCD_ELECTOR_TOKEN_FILE") or None


def resolve_options(args: ParsedArgs, environ: Mapping[str, str] | None = None) -> Options:
    """Merge the command line with the environment and validate what the command uses (and
    nothing else: ``ETCD_ELECTOR_TTL=0`` does not stop ``leader``).

    :raises ConfigurationError: naming the option (or variable) that is wrong.
    """
    env = os.environ if environ is None else environ
    takes = COMMAND_GLOBALS[args.command]
    timeout = DEFAULT_TIMEOUT
    if args.timeout is not None:
        timeout = parse_seconds(args.timeout, "--timeout", bounds=TIMEOUT_BOUNDS)
    talks_to_etcd = "endpoints" in takes
    config = _client_config(args, timeout, env) if talks_to_etcd else ClientConfig()
    namespace = _namespace(args, env) if "namespace" in takes else DEFAULT_NAMESPACE
    ttl = _lease_ttl(args, env) if "ttl" in takes else DEFAULT_TTL
    name = getattr(args, "name", None)
    if name is not None:
        validate_name(name)
    _check_value(args, env)
    return Options(
        config=config,
        namespace=namespace,
        ttl=ttl,
        timeout=timeout,
        json=bool(args.json),
        log_level=args.log_level or "warning",
        log_format=resolve_log_format(args, env),
        health_addr=_health_addr(args, env),
        token_file=_token_file(args, env),
        accept_history_reset=bool(getattr(args, "accept_history_reset", False)),
    )
