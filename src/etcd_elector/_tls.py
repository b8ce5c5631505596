"""TLS: checking the certificate files when the configuration is built, building gRPC's
channel credentials, and turning gRPC's handshake failures into one clear sentence.

gRPC reports every handshake failure as ``UNAVAILABLE`` with BoringSSL's words buried in the
details; :func:`handshake_error` recognises the common cases (unknown CA, hostname mismatch,
expired certificate, a client certificate etcd refused, TLS spoken to a plaintext port).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import ConfigurationError, ConnectionFailed, TLSHandshakeFailed

if TYPE_CHECKING:
    import ssl

    import grpc

__all__ = [
    "channel_credentials",
    "check_tls_files",
    "handshake_error",
    "plaintext_hint",
    "serves_tls",
    "ssl_context",
]

_CA = ("CA bundle", "ca_file, --cacert, ETCD_CACERT")
_CERT = ("client certificate", "cert_file, --cert, ETCD_CERT")
_KEY = ("client key", "key_file, --key, ETCD_KEY")


def _read(path: str, kind: tuple[str, str]) -> bytes:
    what, setting = kind
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{what} {path} ({setting}) does not exist: give the path of a PEM file"
        ) from None
    except IsADirectoryError:
        raise ConfigurationError(
            f"{what} {path} ({setting}) is a directory: give the path of a PEM file"
        ) from None
    except PermissionError:
        raise ConfigurationError(
            f"{what} {path} ({setting}) cannot be read (permission denied): make it readable "
            "by this user"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"{what} {path} ({setting}) cannot be read: {exc.strerror or exc}"
        ) from None
    if b"-----BEGIN" not in data:
        raise ConfigurationError(f"{what} {path} ({setting}) is not a PEM file")
    return data


def _no_passphrase() -> bytes:
    raise ConfigurationError("encrypted")  # never prompt on the terminal


def check_tls_files(ca_file: str | None, cert_file: str | None, key_file: str | None) -> None:
    """Check that each given file exists, is readable PEM, and that the key fits the
    certificate, so that a mistake is reported before any connection is tried.

    :raises ConfigurationError: naming the file and what to do about it.
    """
    if (cert_file is None) != (key_file is None):
        given, missing = (
            ("cert_file", "key_file") if key_file is None else ("key_file", "cert_file")
        )
        raise ConfigurationError(
            f"a client certificate needs its key: {given} is set but {missing} is not "
            "(pass both --cert and --key)"
        )
    import ssl  # here: a configuration without TLS never loads it

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        _read(ca_file, _CA)
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError:
            raise ConfigurationError(
                f"CA bundle {ca_file} ({_CA[1]}) holds no usable certificate: give the PEM "
                "certificate of the CA that signed etcd's certificate"
            ) from None
    if cert_file is not None and key_file is not None:
        _read(cert_file, _CERT)
        key = _read(key_file, _KEY)
        if b"ENCRYPTED" in key:
            raise ConfigurationError(
                f"client key {key_file} ({_KEY[1]}) is encrypted: gRPC needs an unencrypted "
                "PEM key (decrypt it, e.g. with 'openssl pkey', and protect the file instead)"
            )
        try:
            context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
        except (ssl.SSLError, ConfigurationError) as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ConfigurationError(
                    f"client key {key_file} does not belong to the client certificate "
                    f"{cert_file}: pass the key that was issued with the certificate"
                ) from None
            raise ConfigurationError(
                f"client certificate {cert_file} or key {key_file} cannot be loaded: "
                "give a PEM certificate and its unencrypted PEM key"
            ) from None
        _check_validity(cert_file)


def _check_validity(cert_file: str) -> None:
    """Refuse a client certificate outside its validity period (when ``cryptography`` is
    installed to read it; etcd would otherwise only answer "bad certificate")."""
    import datetime

    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - an optional dependency
        return
    try:
        with open(cert_file, "rb") as file:
            certificate = x509.load_pem_x509_certificate(file.read())
    except (OSError, ValueError):
        return  # ssl already accepted it; nothing more to say
    try:  # the *_utc properties exist from cryptography 42 on
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    except AttributeError:  # pragma: no cover - an old cryptography
        return
    now = datetime.datetime.now(datetime.UTC)
    if not_after < now:
        raise ConfigurationError(
            f"client certificate {cert_file} ({_CERT[1]}) expired on "
            f"{not_after:%Y-%m-%d %H:%M} UTC: etcd will refuse it; get a renewed certificate"
        )
    if not_before > now:
        raise ConfigurationError(
            f"client certificate {cert_file} ({_CERT[1]}) is not valid before "
            f"{not_before:%Y-%m-%d %H:%M} UTC: check this machine's clock"
        )


def channel_credentials(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> grpc.ChannelCredentials:
    """gRPC credentials from the configured files; without a CA bundle, the system's roots.

    :raises ConfigurationError: if a file cannot be read any more.
    """
    import grpc  # here, not above: the JSON gateway's commands (`leader`) never load gRPC

    root = _read(ca_file, _CA) if ca_file else None
    key = _read(key_file, _KEY) if key_file else None
    chain = _read(cert_file, _CERT) if cert_file else None
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )


def ssl_context(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """The same trust as :func:`channel_credentials`, for Python's own TLS (the JSON gateway):
    the CA bundle, or the system's roots; the client certificate and key, if given; the
    server's certificate and host name always verified.

    :raises ConfigurationError: if a file cannot be read any more.
    """
    import ssl

    root = _read(ca_file, _CA).decode("ascii", "replace") if ca_file else None
    context = ssl.create_default_context(cadata=root)
    if cert_file is not None and key_file is not None:
        _read(cert_file, _CERT)
        _read(key_file, _KEY)
        try:
            context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
        except (ssl.SSLError, ConfigurationError):
            raise ConfigurationError(
                f"client certificate {cert_file} or key {key_file} cannot be loaded: "
                "give a PEM certificate and its unencrypted PEM key"
            ) from None
    return context


# What BoringSSL and gRPC (or OpenSSL through Python's ssl) say, lowercased, and which
# failure it means; first match wins.
_MARKERS: tuple[tuple[str, str], ...] = (
    ("certificate has expired", TLSHandshakeFailed.EXPIRED),
    ("certificate is not yet valid", TLSHandshakeFailed.NOT_YET_VALID),
    ("hostname verification check failed", TLSHandshakeFailed.HOSTNAME_MISMATCH),
    ("not in peer certificate", TLSHandshakeFailed.HOSTNAME_MISMATCH),
    ("hostname mismatch", TLSHandshakeFailed.HOSTNAME_MISMATCH),  # Python's ssl says these
    ("ip address mismatch", TLSHandshakeFailed.HOSTNAME_MISMATCH),
    ("certificate_verify_failed", TLSHandshakeFailed.UNKNOWN_CA),
    ("alert_bad_certificate", TLSHandshakeFailed.CLIENT_CERTIFICATE_REJECTED),
    ("alert_certificate_required", TLSHandshakeFailed.CLIENT_CERTIFICATE_REJECTED),
    ("alert_unknown_ca", TLSHandshakeFailed.CLIENT_CERTIFICATE_REJECTED),
    ("alert_certificate_expired", TLSHandshakeFailed.CLIENT_CERTIFICATE_REJECTED),
    ("alert_certificate_unknown", TLSHandshakeFailed.CLIENT_CERTIFICATE_REJECTED),
    ("wrong_version_number", TLSHandshakeFailed.NOT_TLS),
    ("handshake read failed", TLSHandshakeFailed.NOT_TLS),
    ("tls handshake failed", TLSHandshakeFailed.OTHER),
    ("ssl handshake failed", TLSHandshakeFailed.OTHER),
    ("failed to create security handshaker", TLSHandshakeFailed.OTHER),
)


def handshake_error(
    details: str | None,
    endpoint: str,
    *,
    server_name: str | None = None,
    client_certificate: str | None = None,
) -> TLSHandshakeFailed | None:
    """The clear error for a gRPC failure whose ``details`` tell of a failed TLS handshake,
    or None if they do not. ``endpoint`` is shown as is; ``server_name`` is the name the
    certificate was checked against, when it is not the endpoint's host."""
    lowered = (details or "").lower()
    reason = next((reason for marker, reason in _MARKERS if marker in lowered), None)
    if reason is None:
        return None
    head = f"TLS handshake with etcd at {endpoint} failed"
    if reason == TLSHandshakeFailed.UNKNOWN_CA:
        text = (
            "certificate verify failed: etcd's certificate is not signed by a CA we trust "
            "(unknown CA? pass the CA that signed it with --cacert / ETCD_CACERT / ca_file)"
        )
    elif reason == TLSHandshakeFailed.EXPIRED:
        text = (
            "certificate verify failed: etcd's certificate has expired (renew it on the "
            "server, or check this machine's clock)"
        )
    elif reason == TLSHandshakeFailed.NOT_YET_VALID:
        text = (
            "certificate verify failed: etcd's certificate is not valid yet (check the clocks "
            "of this machine and of the CA)"
        )
    elif reason == TLSHandshakeFailed.HOSTNAME_MISMATCH:
        name = f"name {server_name!r}" if server_name else "host name of the endpoint"
        text = (
            f"hostname mismatch: etcd's certificate is not issued for the {name} (connect "
            "with a host name the certificate lists, or set the name it carries: "
            "--server-name NAME / server_name)"
        )
    elif reason == TLSHandshakeFailed.CLIENT_CERTIFICATE_REJECTED:
        if client_certificate:
            text = (
                f"etcd rejected our client certificate {client_certificate} (not signed by a "
                "CA in etcd's --trusted-ca-file, or expired?)"
            )
        else:
            text = (
                "etcd requires a client certificate (mTLS): pass --cert and --key "
                "(ETCD_CERT, ETCD_KEY; cert_file, key_file)"
            )
    elif reason == TLSHandshakeFailed.NOT_TLS:
        text = (
            "etcd does not speak TLS on this port (use http:// endpoints without "
            "--cacert/--cert/--key, or serve TLS from etcd)"
        )
    else:
        last = (details or "").rpartition("last error: ")[2].strip() or "no details"
        text = f"{last} (check --cacert, --cert and --key)"
    return TLSHandshakeFailed(f"{head}: {text}", endpoint=endpoint, reason=reason)


def plaintext_hint(details: str | None, endpoint: str) -> ConnectionFailed | None:
    """A plaintext connection that etcd closed at once: it most likely serves TLS there."""
    if "socket closed" not in (details or "").lower():
        return None
    return serves_tls(endpoint)


def serves_tls(endpoint: str) -> ConnectionFailed:
    """etcd refused plaintext at ``endpoint`` (``host:port``): it serves TLS there."""
    return ConnectionFailed(
        f"etcd at {endpoint} closed the plaintext connection at once: it probably serves TLS "
        f"(use https://{endpoint} and --cacert / ETCD_CACERT)",
        endpoint=endpoint,
    )
