"""Client settings: endpoints, deadlines, connection tuning, TLS and credentials. Validated
when built: certificate files are read and checked then, not at the first connection.

Reading the environment happens here and only here (``ClientConfig.from_env``), so every
entry point (library, CLI, test kit) agrees on what ``ETCD_ENDPOINTS`` means.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypedDict, Unpack

from ._errors import ConfigurationError
from ._seconds import seconds
from ._secret import Secret
from ._tls import check_tls_files

__all__ = ["DEFAULT_ENDPOINT", "ClientConfig", "ClientSettings", "Endpoint", "parse_endpoints"]

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


def _redacted(text: str) -> str:
    """``text`` as an error may quote it: user information before an ``@`` is hidden."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    _, at, host = rest.rpartition("@")
    shown = f"***@{host}" if at else rest
    return f"{scheme}://{shown}" if sep else shown


def _parse_one(text: str) -> Endpoint:
    raw = text.strip()
    shown = _redacted(text)
    secure = False
    for scheme, is_secure in (("https://", True), ("http://", False)):
        if raw.lower().startswith(scheme):
            raw, secure = raw[len(scheme) :], is_secure
            break
    raw = raw.rstrip("/")
    if "@" in raw:
        raise ConfigurationError(
            f"endpoint {shown!r} carries credentials (not echoed): an endpoint is host:port "
            "only; give the user with --user (ETCD_USER) and the password with "
            "--password-file or ETCD_PASSWORD"
        )
    if "://" in raw or "/" in raw:
        raise ConfigurationError(
            f"endpoint {shown!r} is malformed: use host:port, http://host:port or https://host:port"
        )
    if raw.startswith("["):
        host, sep, port_text = raw[1:].partition("]:")
        if not sep:
            raise ConfigurationError(f"endpoint {shown!r} is malformed: use [ipv6]:port")
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep:
            raise ConfigurationError(
                f"endpoint {shown!r} has no port: write it as host:port, e.g. 127.0.0.1:2379"
            )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"endpoint {shown!r} has an invalid port: use 1-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host or not all(_HOST_LABEL.match(label) for label in host.split(".")):
            raise ConfigurationError(
                f"endpoint {shown!r} has an invalid host name {host!r}"
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


class ClientSettings(TypedDict, total=False):
    """The settings :class:`ClientConfig.build` (and so ``AsyncClient`` and ``Client``) take as
    keyword arguments; each one left unset (or ``None``) falls back to the environment, then
    to the default. Written once, here: the clients' signatures reuse it."""

    #: Deadline in seconds for each call, failover included (default 5).
    timeout: float | None
    #: Deadline in seconds for one endpoint's connection (default 2).
    connect_timeout: float | None
    #: How long a watch or keepalive stream may stay silent after we asked it something (2).
    stream_timeout: float | None
    #: PEM CA bundle that signed etcd's certificate (turns TLS on).
    ca_file: str | None
    #: Client certificate (PEM) for etcd's ``--client-cert-auth``, with ``key_file``.
    cert_file: str | None
    #: The client certificate's unencrypted PEM key.
    key_file: str | None
    #: The name etcd's certificate carries, if not the endpoint's host.
    server_name: str | None
    #: etcd user (``name`` or ``name:password``).
    username: str | None
    #: The user's password.
    password: str | Secret | None
    #: A file holding the user's password.
    password_file: str | None


@dataclass(frozen=True)
class ClientConfig:
    """How to reach etcd.

    ``timeout`` bounds every unary call (including failover attempts); ``connect_timeout``
    bounds waiting for one endpoint's connection; ``stream_timeout`` is how long a watch or
    keepalive stream may stay silent after we asked it something before we call it dead.

    TLS: ``https://`` endpoints use TLS, verified against the system's CA roots unless
    ``ca_file`` names a PEM CA bundle. Giving ``ca_file``, ``cert_file`` or ``key_file``
    turns TLS on for every endpoint. ``cert_file`` and ``key_file`` (PEM, unencrypted) are the
    client certificate for etcd's ``--client-cert-auth``. ``server_name`` is the name etcd's
    certificate must carry when it differs from the endpoint's host.

    Authentication: ``username`` and ``password`` (kept as a :class:`Secret`, shown as
    ``********``) are exchanged for a token that every call carries; the client gets a new one
    when etcd says it expired.
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
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    username: str | None = None
    password: Secret | None = None

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConfigurationError("no etcd endpoint given")
        self._check_security()
        seconds(self.timeout, "timeout")
        seconds(self.connect_timeout, "connect_timeout")
        seconds(self.stream_timeout, "stream_timeout")
        seconds(self.grpc_keepalive_time, "grpc_keepalive_time")
        seconds(self.grpc_keepalive_timeout, "grpc_keepalive_timeout")

    def _check_security(self) -> None:
        for name in ("ca_file", "cert_file", "key_file", "server_name", "username"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
        if self.password is not None and not isinstance(self.password, Secret):
            if not isinstance(self.password, str):
                raise ConfigurationError("password must be a str or a Secret")
            object.__setattr__(self, "password", Secret(self.password))
        if self.username is None and self.password is not None:
            raise ConfigurationError(
                "a password was given without a user name: pass the user too (--user, ETCD_USER)"
            )
        if self.username is not None and not self.password:
            raise ConfigurationError(
                f"user {self.username!r} has no password: pass it with --user NAME:PASSWORD, "
                "--password-file FILE or ETCD_PASSWORD"
            )
        if self.ca_file or self.cert_file or self.key_file:
            check_tls_files(self.ca_file, self.cert_file, self.key_file)
            if not all(endpoint.secure for endpoint in self.endpoints):
                secure = tuple(replace(endpoint, secure=True) for endpoint in self.endpoints)
                object.__setattr__(self, "endpoints", secure)

    @property
    def tls(self) -> bool:
        """Whether connections use TLS (to every endpoint, or to its https:// ones)."""
        return any(endpoint.secure for endpoint in self.endpoints)

    @classmethod
    def build(
        cls,
        endpoints: str | Sequence[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **settings: Unpack[ClientSettings],
    ) -> ClientConfig:
        """Settings from arguments (:class:`ClientSettings`), falling back to the environment,
        then to defaults.

        Each unset argument falls back to its variable, then to etcdctl's: ``ETCD_ENDPOINTS``
        (``ETCDCTL_ENDPOINTS``), ``ETCD_CACERT``, ``ETCD_CERT``, ``ETCD_KEY``, ``ETCD_USER``
        and ``ETCD_PASSWORD`` (``ETCDCTL_CACERT`` ...). Like etcdctl, a user given as
        ``name:password`` carries its password; ``password_file`` holds the password (one
        trailing newline is dropped).

        :raises ConfigurationError: for a bad value, a missing or unreadable file, or a
            password given twice.
        """
        env = os.environ if environ is None else environ
        if endpoints is None:
            endpoints = (
                env.get("ETCD_ENDPOINTS") or env.get("ETCDCTL_ENDPOINTS") or DEFAULT_ENDPOINT
            )
        deadlines: dict[str, float] = {}
        for name in ("timeout", "connect_timeout", "stream_timeout"):
            value = settings.get(name)
            if value is not None:
                deadlines[name] = seconds(value, name)
        user, secret = _credentials(
            settings.get("username"), settings.get("password"), settings.get("password_file"), env
        )
        return cls(
            endpoints=parse_endpoints(endpoints),
            **deadlines,
            ca_file=settings.get("ca_file") or _env(env, "CACERT"),
            cert_file=settings.get("cert_file") or _env(env, "CERT"),
            key_file=settings.get("key_file") or _env(env, "KEY"),
            server_name=settings.get("server_name"),
            username=user,
            password=secret,
        )


def _env(env: Mapping[str, str], name: str) -> str | None:
    """``ETCD_<name>``, else ``ETCDCTL_<name>``, else None (empty counts as unset)."""
    return env.get(f"ETCD_{name}") or env.get(f"ETCDCTL_{name}") or None


def _credentials(
    username: str | None,
    password: str | Secret | None,
    password_file: str | None,
    env: Mapping[str, str],
) -> tuple[str | None, Secret | None]:
    """The user name and password from arguments, a file or the environment, in that order."""
    if password is not None and password_file is not None:
        raise ConfigurationError("give the password once: password or password_file, not both")
    secret = Secret(password) if password is not None else None
    if password_file is not None:
        secret = Secret(_read_password(password_file))
    user = username if username is not None else _env(env, "USER")
    if user is not None and ":" in user:
        user, _, inline = user.partition(":")
        if secret is not None and username is not None:
            raise ConfigurationError(
                "give the password once: in --user NAME:PASSWORD or apart, not both"
            )
        secret = secret or Secret(inline)
    if secret is None and user is not None and _env(env, "PASSWORD") is not None:
        secret = Secret(_env(env, "PASSWORD") or "")
    return user, secret


def _read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise ConfigurationError(f"password file {path} (--password-file) does not exist") from None
    except PermissionError:
        raise ConfigurationError(
            f"password file {path} (--password-file) cannot be read (permission denied)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"password file {path} (--password-file) cannot be read: {type(exc).__name__}"
        ) from None
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if not text:
        raise ConfigurationError(f"password file {path} (--password-file) is empty")
    return text
