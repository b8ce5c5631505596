"""The blocking client's lifecycle: making one starts nothing, its first use starts the one
loop thread (``with`` and ``open()`` too), ``close()`` stops it, and a closed client says so."""

from __future__ import annotations

import threading

import pytest

from etcd_elector import Client, ClientClosed

pytestmark = pytest.mark.timeout(30)

LOOP_THREAD = "etcd-elector-loop"


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LOOP_THREAD]


def test_making_a_client_starts_no_thread_and_its_first_use_does(
    etcd_endpoint: str, etcd_prefix: str
) -> None:
    before = loop_threads()
    client = Client(etcd_endpoint)
    assert loop_threads() == before
    client.put(etcd_prefix + "k", "v")  # usable without `with`: the first call starts it
    (started,) = [t for t in loop_threads() if t not in before]
    assert client.get(etcd_prefix + "k").kv is not None
    client.close()
    assert not started.is_alive()
    with pytest.raises(ClientClosed, match="the client is closed"):
        client.get(etcd_prefix + "k")
    client.close()  # idempotent


def test_a_client_never_used_closes_without_starting_anything(etcd_endpoint: str) -> None:
    before = loop_threads()
    client = Client(etcd_endpoint)
    client.close()
    assert loop_threads() == before
    with pytest.raises(ClientClosed):
        client.open()


def test_with_and_open_start_the_thread(etcd_endpoint: str) -> None:
    before = loop_threads()
    with Client(etcd_endpoint) as client:
        assert len(loop_threads()) == len(before) + 1
        assert client.open() is client
        assert len(loop_threads()) == len(before) + 1  # still one
    assert loop_threads() == before
