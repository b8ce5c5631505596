"""Test certificates (made with trustme at test time) and etcd users and roles (set up through
etcd's JSON gateway before authentication is switched on)."""

from __future__ import annotations

import base64
import datetime
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import trustme

from etcd_elector._keys import prefix_range_end

__all__ = ["ROOT_PASSWORD", "Certs", "enable_auth", "make_certs"]

ROOT_PASSWORD = "root-Pw-7c1e"

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Certs:
    """Paths of PEM files: a CA and what it signed, and a CA nobody trusts."""

    ca: str
    other_ca: str
    server_cert: str  # for 127.0.0.1, localhost and etcd.test
    server_key: str
    expired_server_cert: str
    expired_server_key: str
    client_cert: str
    client_key: str
    foreign_client_cert: str  # signed by other_ca
    foreign_client_key: str
    expired_client_cert: str
    expired_client_key: str


def make_certs(directory: Path) -> Certs:
    ca, other = trustme.CA(), trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    long_ago, yesterday = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    files: dict[str, str] = {}

    def write(name: str, blob: trustme.Blob) -> None:
        path = directory / f"{name}.pem"
        blob.write_to_path(str(path))
        files[name] = str(path)

    def leaf(name: str, cert: trustme.LeafCert) -> None:
        write(f"{name}_cert", cert.cert_chain_pems[0])
        write(f"{name}_key", cert.private_key_pem)

    write("ca", ca.cert_pem)
    write("other_ca", other.cert_pem)
    leaf("server", ca.issue_cert("127.0.0.1", "localhost", "etcd.test"))
    leaf("expired_server", ca.issue_cert("127.0.0.1", not_before=long_ago, not_after=yesterday))
    leaf("client", ca.issue_cert("candidate", common_name="candidate"))
    leaf("foreign_client", other.issue_cert("candidate", common_name="candidate"))
    leaf(
        "expired_client",
        ca.issue_cert(
            "candidate", common_name="candidate", not_before=long_ago, not_after=yesterday
        ),
    )
    return Certs(**files)


def _post(endpoint: str, path: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"http://{endpoint}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with _HTTP.open(request, timeout=5) as response:
        response.read()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def enable_auth(endpoint: str, users: dict[str, tuple[str, str | None]]) -> None:
    """Create ``root`` (password :data:`ROOT_PASSWORD`), then each user ``name: (password,
    prefix)`` with a role of its own that may read and write ``prefix`` only (no role for
    ``None``), then switch authentication on."""
    _post(endpoint, "/v3/auth/user/add", {"name": "root", "password": ROOT_PASSWORD})
    _post(endpoint, "/v3/auth/role/add", {"name": "root"})
    _post(endpoint, "/v3/auth/user/grant", {"user": "root", "role": "root"})
    for name, (password, prefix) in users.items():
        _post(endpoint, "/v3/auth/user/add", {"name": name, "password": password})
        if prefix is None:
            continue
        role = f"{name}-role"
        _post(endpoint, "/v3/auth/role/add", {"name": role})
        key = prefix.encode()
        perm = {"permType": "READWRITE", "key": _b64(key), "range_end": _b64(prefix_range_end(key))}
        _post(endpoint, "/v3/auth/role/grant", {"name": role, "perm": perm})
        _post(endpoint, "/v3/auth/user/grant", {"user": name, "role": role})
    _post(endpoint, "/v3/auth/enable", {})
