"""Election names and namespaces: validated before any I/O, and no prefix ever contains another
election's candidates."""

from __future__ import annotations

import re

import pytest
from helpers.election_kit import namespace_of

from etcd_elector import AsyncClient, AsyncElection, ConfigurationError
from etcd_elector._election._names import (
    MAX_NAME_LENGTH,
    MAX_NAMESPACE_LENGTH,
    candidate_key,
    election_prefix,
    is_candidate_key,
    validate_name,
    validate_namespace,
)

# An address nothing listens on: validation must fail before any connection is attempted.
UNREACHABLE = "127.0.0.1:1"


@pytest.mark.parametrize(
    "name",
    ["scheduler", "a", "a.b-c_d:e@f=g+h", "Job 7", "x" * MAX_NAME_LENGTH, "0", "ABC123"],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/", "'/'"),
        ("a/b", "'/'"),
        ("/a", "'/'"),
        ("a/", "'/'"),
        (" x", "malformed"),
        ("x ", "malformed"),
        ("x\n", "malformed"),
        ("tab\tname", "malformed"),
        ("naïve", "ASCII letters"),
        ("é", "ASCII letters"),
        ("x\x7f", "malformed"),
        ("\u202ejob", "malformed"),
        (".", "reserved"),
        ("..", "reserved"),
        ("x" * (MAX_NAME_LENGTH + 1), f"the limit is {MAX_NAME_LENGTH}"),
    ],
)
def test_invalid_names(name: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        validate_name(name)


@pytest.mark.parametrize("name", [None, 5, b"scheduler", ["a"], 1.5])
def test_names_must_be_strings(name: object) -> None:
    with pytest.raises(ConfigurationError, match="must be a string"):
        validate_name(name)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_name("")


@pytest.mark.parametrize(
    "namespace",
    ["/etcd-elector", "/a/b", "/", "/team a/x", "relative/x", "/a.b/c..d", "/" + "x" * 255],
)
def test_valid_namespaces_come_back_unchanged(namespace: str) -> None:
    assert len(namespace) <= MAX_NAMESPACE_LENGTH
    assert validate_namespace(namespace) == namespace


@pytest.mark.parametrize(("written", "canonical"), [("/a/", "/a"), ("a/b/", "a/b")])
def test_one_trailing_slash_is_how_prefixes_are_written(written: str, canonical: str) -> None:
    assert validate_namespace(written) == canonical
    assert election_prefix(validate_namespace(written), "job") == f"{canonical}/job/".encode()


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("", "empty: write '/' for elections at the root"),
        ("/a//", "ends with '/': write it as '/a'"),
        ("/a///", "write it as '/a'"),
        ("a//", "write it as 'a'"),
        ("//", "write it as '/'"),
        ("//a", "empty segment"),
        ("/a//b", "empty segment"),
        ("/a/./b", "'.' segment"),
        ("/a/..", "'..' segment"),
        ("..", "'..' segment"),
        (" /a", "malformed"),
        ("/a ", "malformed"),
        ("/a\n", "malformed"),
        ("/a\x00b", "malformed"),
        ("/a\tb", "malformed"),
        ("/a\x7f", "malformed"),
        ("/a\x1b[31m", "malformed"),
        ("/caf\u00e9", "ASCII letters"),
        ("/" + "x" * MAX_NAMESPACE_LENGTH, f"the limit is {MAX_NAMESPACE_LENGTH}"),
    ],
)
def test_invalid_namespaces_say_what_to_write(namespace: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        validate_namespace(namespace)


def test_a_long_namespace_is_not_quoted_in_the_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_namespace("/" + "x" * 1_600_000)
    assert len(str(caught.value)) < 200


def test_root_namespace_keys_have_one_slash() -> None:
    assert election_prefix("/", "job") == b"/job/"
    assert candidate_key("/", "job", 0xAB) == b"/job/ab"


@pytest.mark.parametrize("namespace", [None, 3, b"/a"])
def test_namespaces_must_be_strings(namespace: object) -> None:
    with pytest.raises(ConfigurationError, match="must be a string"):
        validate_namespace(namespace)


def test_keys_and_prefixes() -> None:
    assert election_prefix("/ns", "job") == b"/ns/job/"
    assert candidate_key("/ns", "job", 0x1A2B) == b"/ns/job/1a2b"
    prefix = election_prefix("/ns", "job")
    assert is_candidate_key(prefix, b"/ns/job/1a2b")
    assert is_candidate_key(prefix, b"/ns/job/" + b"f" * 16)
    assert not is_candidate_key(prefix, b"/ns/job/")
    assert not is_candidate_key(prefix, b"/ns/job/" + b"f" * 17)
    assert not is_candidate_key(prefix, b"/ns/job/inner/1a2b")  # a nested election's key
    assert not is_candidate_key(prefix, b"/ns/job/1A2B")
    assert not is_candidate_key(prefix, b"/ns/job/1a2b\n")  # '$' would match before a newline
    assert not is_candidate_key(prefix, b"/ns/jobs/1a2b")
    assert not is_candidate_key(prefix, b"/ns/other/1a2b")


async def test_elections_and_views_validate_before_any_io() -> None:
    async with AsyncClient(UNREACHABLE) as client:
        for bad in ("", "/", "a/b", " x", "x" * (MAX_NAME_LENGTH + 1)):
            with pytest.raises(ConfigurationError):
                client.election_view(bad)
        with pytest.raises(ConfigurationError, match="must be a string"):
            client.election_view(7)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="empty segment"):
            client.election_view("job", namespace="//x")
        with pytest.raises(ConfigurationError, match="ends with '/'"):
            client.election_view("job", namespace="/svc//")
        assert client.election_view("job", namespace="/svc/").prefix == b"/svc/job/"
        view = client.election_view("job", namespace="/svc")
        assert view.prefix == b"/svc/job/"
        session = client.session(ttl=5)  # not started: no lease, no I/O
        with pytest.raises(ConfigurationError, match="'/'"):
            AsyncElection(session, "a/b")
        with pytest.raises(ConfigurationError, match="empty segment"):
            AsyncElection(session, "job", namespace="/a//b")
        election = AsyncElection(session, "job", namespace="/svc")
        assert election.prefix == b"/svc/job/"
        await session.close()


async def test_nested_namespaces_do_not_mix_candidates(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    """Election ``b`` in ``N`` and election ``x`` in ``N/b`` share a key prefix; each must
    still see only its own candidates, and each gets its own leader."""
    outer_ns = namespace_of(etcd_prefix)
    inner_ns = f"{outer_ns}/b"
    async with (
        AsyncClient(etcd_endpoint) as client,
        client.session(ttl=5) as inner_session,
        client.session(ttl=5) as outer_session,
    ):
        # The inner election's key is created first, so it has the lower create revision.
        inner = AsyncElection(inner_session, "x", namespace=inner_ns)
        inner_term = await inner.campaign("inner")
        outer = AsyncElection(outer_session, "b", namespace=outer_ns)
        outer_term = await outer.campaign("outer")
        assert inner_term.token < outer_term.token
        assert outer_term.key.startswith(f"{outer_ns}/b/")
        assert inner_term.key.startswith(f"{outer_ns}/b/x/")
        assert inner.is_leader() and outer.is_leader()

        outer_view = client.election_view("b", namespace=outer_ns)
        leader = await outer_view.leader()
        assert leader is not None and leader.value == b"outer"
        assert [c.value for c in await outer_view.candidates()] == [b"outer"]
        inner_view = client.election_view("x", namespace=inner_ns)
        assert [c.value for c in await inner_view.candidates()] == [b"inner"]
        assert await outer.verify()
        assert await inner.verify()
