"""Bad input is refused before any I/O, with a message naming the problem; dead ends fail fast."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from etcd_elector import (
    AsyncClient,
    ClientConfig,
    Compare,
    ConfigurationError,
    ConnectionFailed,
    Op,
)
from etcd_elector._config import DEFAULT_ENDPOINT, parse_endpoints
from etcd_elector._election._timing import validate_ttl
from etcd_elector._environ import without_etcd_settings
from etcd_elector._seconds import seconds
from etcd_elector.etcd import Endpoint
from etcd_elector.testing import free_port

# -- endpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no etcd endpoint"),
        (" , ", "no etcd endpoint"),
        ("nohost", "no port"),
        ("host:notaport", "invalid port"),
        ("host:", "invalid port"),
        ("a:99999", "invalid port"),
        ("a:0", "invalid port"),
        ("a:-1", "invalid port"),
        ("ftp://x:1", "malformed"),
        ("http://x:1/path", "malformed"),
        ("a b:1", "invalid host name"),
        (":2379", "invalid host name"),
        ("[::1", "malformed"),
        ("ok:1,bad", "no port"),
    ],
)
def test_malformed_endpoints_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as info:
        AsyncClient(text)
    assert isinstance(info.value, ValueError)  # ConfigurationError is also a ValueError
    if text.strip(" ,"):
        # The message quotes the bad entry, so the user can find it.
        bad = text.split(",")[-1]
        assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("alice:S3cr3t@127.0.0.1:2379", "'***@127.0.0.1:2379'"),
        ("http://alice:S3cr3t@etcd:2379", "'http://***@etcd:2379'"),
        ("https://S3cr3t@[::1]:2379", "'https://***@[::1]:2379'"),
        ("ok:1,alice:S3cr3t@bad", "'***@bad'"),
        ("a:S3cr3t@b@c:1", "'***@c:1'"),
    ],
)
def test_credentials_in_an_endpoint_are_refused_and_never_echoed(text: str, shown: str) -> None:
    with pytest.raises(ConfigurationError, match="carries credentials") as info:
        parse_endpoints(text)
    assert shown in str(info.value) and "S3cr3t" not in str(info.value)


def test_endpoint_lists_must_hold_strings() -> None:
    with pytest.raises(ConfigurationError, match="not a string"):
        parse_endpoints(["127.0.0.1:2379", 2379])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="no etcd endpoint"):
        parse_endpoints([])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:2379", Endpoint("127.0.0.1", 2379)),
        (" etcd-0.etcd.svc:2379 ", Endpoint("etcd-0.etcd.svc", 2379)),
        ("http://localhost:2379/", Endpoint("localhost", 2379)),
        ("HTTPS://etcd:2379", Endpoint("etcd", 2379, secure=True)),
        ("[::1]:2379", Endpoint("::1", 2379)),
    ],
)
def test_wellformed_endpoints(text: str, expected: Endpoint) -> None:
    (endpoint,) = parse_endpoints(text)
    assert endpoint == expected


def test_endpoint_formatting_and_order() -> None:
    endpoints = parse_endpoints("b:2, a:1 ,b:2,https://[::1]:3")
    assert endpoints == (Endpoint("b", 2), Endpoint("a", 1), Endpoint("::1", 3, secure=True))
    assert [e.address for e in endpoints] == ["b:2", "a:1", "[::1]:3"]
    assert [str(e) for e in endpoints] == ["b:2", "a:1", "https://[::1]:3"]
    assert parse_endpoints(["a:1", "", "b:2"]) == (Endpoint("a", 1), Endpoint("b", 2))


# -- timeouts ------------------------------------------------------------------------------------

BAD_TIMEOUTS: list[Any] = [0, 0.0, -1, -0.5, float("nan"), float("inf"), float("-inf"), "5", True]


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=repr)
@pytest.mark.parametrize("name", ["timeout", "connect_timeout", "stream_timeout"])
def test_bad_timeouts_are_refused(name: str, value: Any) -> None:
    options: dict[str, Any] = {name: value}
    with pytest.raises(ConfigurationError, match=name):
        AsyncClient("127.0.0.1:2379", **options)
    with pytest.raises(ConfigurationError, match=name):
        ClientConfig.build("127.0.0.1:2379", **options)
    with pytest.raises(ConfigurationError, match=name):
        ClientConfig(**options)


@pytest.mark.parametrize("name", ["grpc_keepalive_time", "grpc_keepalive_timeout"])
def test_bad_grpc_keepalive_settings_are_refused(name: str) -> None:
    options: dict[str, Any] = {name: -1.0}
    with pytest.raises(ConfigurationError, match=name):
        ClientConfig(**options)


def test_good_settings_are_kept() -> None:
    config = ClientConfig.build("a:1", timeout=3, connect_timeout=0.5, stream_timeout=1.5)
    assert config.timeout == 3.0
    assert config.connect_timeout == 0.5
    assert config.stream_timeout == 1.5
    client = AsyncClient(config=config)
    assert client.config is config
    defaults = ClientConfig.build("a:1", environ={})
    assert (defaults.timeout, defaults.connect_timeout, defaults.stream_timeout) == (5, 2, 2)


def test_config_and_separate_settings_do_not_mix() -> None:
    config = ClientConfig.build("a:1")
    with pytest.raises(ConfigurationError, match="not both"):
        AsyncClient("b:2", config=config)
    for name in ("timeout", "connect_timeout", "stream_timeout"):
        options: dict[str, Any] = {name: 1.0}
        with pytest.raises(ConfigurationError, match="not both"):
            AsyncClient(config=config, **options)


# -- the environment -----------------------------------------------------------------------------


def test_etcd_endpoints_from_the_environment() -> None:
    build = ClientConfig.build
    assert build(environ={"ETCD_ENDPOINTS": "a:1,b:2"}).endpoints == (
        Endpoint("a", 1),
        Endpoint("b", 2),
    )
    assert build(environ={"ETCDCTL_ENDPOINTS": "c:3"}).endpoints == (Endpoint("c", 3),)
    both = {"ETCD_ENDPOINTS": "a:1", "ETCDCTL_ENDPOINTS": "c:3"}
    assert build(environ=both).endpoints == (Endpoint("a", 1),)
    # An empty variable counts as unset.
    assert build(environ={"ETCD_ENDPOINTS": "", "ETCDCTL_ENDPOINTS": "c:3"}).endpoints == (
        Endpoint("c", 3),
    )
    assert build(environ={}).endpoints == parse_endpoints(DEFAULT_ENDPOINT)
    # Explicit endpoints win over the environment.
    assert build("d:4", environ=both).endpoints == (Endpoint("d", 4),)


@pytest.mark.parametrize("variable", ["ETCD_ENDPOINTS", "ETCDCTL_ENDPOINTS"])
def test_malformed_endpoints_in_the_environment_are_refused(variable: str) -> None:
    with pytest.raises(ConfigurationError, match="no port"):
        ClientConfig.build(environ={variable: "etcd-without-port"})


def test_the_client_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETCDCTL_ENDPOINTS", raising=False)
    monkeypatch.setenv("ETCD_ENDPOINTS", "e:5,f:6")
    assert AsyncClient().config.endpoints == (Endpoint("e", 5), Endpoint("f", 6))
    monkeypatch.setenv("ETCD_ENDPOINTS", "broken")
    with pytest.raises(ConfigurationError, match="broken"):
        AsyncClient()


# -- an endpoint with nothing behind it ----------------------------------------------------------


async def use(client: AsyncClient, call: str, key: str, timeout: float) -> None:
    if call == "get":
        await client.get(key)
    elif call == "put":
        await client.put(key, "v")
    elif call == "watch":
        async with client.watch(key):
            pass
    elif call == "keepalive":
        await client.lease_keepalive(1).ping(timeout=timeout)
    else:
        await client.status()


async def test_refused_endpoint_fails_fast_and_names_the_endpoint(etcd_prefix: str) -> None:
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    timeout = 8.0
    async with AsyncClient(endpoint, timeout=timeout, connect_timeout=timeout) as client:
        for call in ("get", "put", "watch", "keepalive", "status"):
            started = time.monotonic()
            with pytest.raises(ConnectionFailed) as info:
                await use(client, call, etcd_prefix, timeout)
            elapsed = time.monotonic() - started
            assert endpoint in str(info.value), (call, info.value)
            assert "ETCD_ENDPOINTS" in str(info.value)
            # A refusal is known at once: no waiting out the (long) timeouts.
            assert elapsed < timeout / 2, (call, elapsed)


# -- transaction building blocks -----------------------------------------------------------------


def test_compares_check_their_operands() -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        _ = Compare.value("k") == 5
    with pytest.raises(TypeError, match="bytes or str"):
        _ = Compare.value("k") < None  # type: ignore[operator]
    for target in (Compare.version, Compare.create_revision, Compare.mod_revision, Compare.lease):
        with pytest.raises(TypeError, match="needs an int"):
            _ = target("k") == "1"
        with pytest.raises(TypeError, match="needs an int"):
            _ = target("k") > 1.5  # type: ignore[operator]
        with pytest.raises(TypeError, match="needs an int"):
            _ = target("k") != True  # noqa: E712 - a bool is not a revision


def test_compares_are_values() -> None:
    made = Compare.value("k") == "v"
    assert isinstance(made, Compare)
    assert made == Compare(b"k", "value", "==", b"v")
    assert (Compare.mod_revision(b"k") < 7).operand == 7
    assert (Compare.version("k") != 0).op == "!="
    assert (Compare.create_revision("k") > 3).to_proto().create_revision == 3
    with pytest.raises(TypeError):
        hash(Compare.value("k"))  # a half-made compare is no key


def test_ops_and_keys_check_their_types() -> None:
    for bad in (5, None, 1.5, ["k"]):
        with pytest.raises(TypeError, match="str or bytes"):
            Op.put(bad, "v")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="str or bytes"):
            Op.put("k", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="str or bytes"):
            Op.get(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="str or bytes"):
            Compare.value(bad)  # type: ignore[arg-type]
    assert Op.put(bytearray(b"k"), memoryview(b"v")).message.request_put.value == b"v"  # type: ignore[arg-type]
    prefix = Op.get("a/", prefix=True).message.request_range
    assert (prefix.key, prefix.range_end) == (b"a/", b"a0")
    assert Op.delete(b"\xff", prefix=True).message.request_delete_range.range_end == b"\0"


async def test_client_calls_check_key_types(etcd_endpoint: str) -> None:
    async with AsyncClient(etcd_endpoint) as client:
        with pytest.raises(TypeError, match="str or bytes"):
            await client.put("/k", 3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="str or bytes"):
            await client.get(7)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="str or bytes"):
            client.watch(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ttl", "typed", "message"),
    [
        (0.0, None, "ttl 0 cannot be granted"),
        (1.5, None, "ttl 1.5 is not whole"),
        (9.223372036854776e18, "9223372036854775807", "--ttl '9223372036854775807' cannot"),
        (0.0, "0.0", "--ttl '0.0' cannot be granted"),
    ],
)
def test_ttl_errors_show_the_value_as_written(ttl: float, typed: str | None, message: str) -> None:
    what = "ttl" if typed is None else "--ttl"
    with pytest.raises(ConfigurationError) as info:
        validate_ttl(ttl, what=what, typed=typed)
    assert str(info.value).startswith(message)
    assert "e+18" not in str(info.value)


def test_one_check_for_a_number_of_seconds() -> None:
    """Every setting in seconds (timeouts, margins, etcd's election timeout, a CLI's --grace)
    goes through one check, with one wording."""
    for bad in (True, "1", None, math.nan, -1, 0, math.inf):
        with pytest.raises(ConfigurationError, match=r"^wait must be a positive number of seconds"):
            seconds(bad, "wait")
    with pytest.raises(ConfigurationError, match="non-negative number of seconds, got '-1'"):
        seconds(-1.0, "--grace", allow_zero=True, shown="'-1'")
    assert seconds(0, "margin", allow_zero=True) == 0.0
    assert seconds(math.inf, "margin", allow_infinite=True) == math.inf
    assert seconds(2, "wait") == 2.0 and type(seconds(2, "wait")) is float


def test_child_environments_lose_the_callers_etcd_settings() -> None:
    environ = {
        "ETCD_ENDPOINTS": "a:1",
        "ETCDCTL_CACERT": "ca",
        "ETCD_UNSUPPORTED_ARCH": "x",
        "PATH": "/bin",
    }
    assert without_etcd_settings(environ) == {"PATH": "/bin"}
    assert without_etcd_settings(environ, keep=["ETCD_UNSUPPORTED_ARCH"]) == {
        "ETCD_UNSUPPORTED_ARCH": "x",
        "PATH": "/bin",
    }
