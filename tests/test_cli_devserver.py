"""``etcd-elector etcd``: it listens where it is told (else on 127.0.0.1:2379 when free, and
says so when not), refuses addresses off this machine, and with ``--data-dir`` its data
survives a restart, for one member and for three."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.cli_process import CliProcess, run_cli

from etcd_elector import Client
from etcd_elector.testing import free_port

_START_S = 40.0


def _port_open(endpoint: str) -> bool:
    host, port = endpoint.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def _held(port: int) -> Iterator[None]:
    """Keep ``port`` busy with a listener of our own, if it is free (else it is busy anyway)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        # As etcd does: a connection of an earlier run still in TIME_WAIT does not count.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", port))
            holder.listen(1)
        except OSError:
            pass
        yield


def _stop(server: CliProcess) -> None:
    server.signal(signal.SIGINT)
    assert server.wait(timeout=30) == 128 + signal.SIGINT
    server.expect("etcd_stopped")


def _one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


def test_it_listens_where_told(cli: Callable[..., CliProcess]) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    server = cli("--json", "--endpoints", endpoint, "etcd")
    ready = server.expect("etcd_ready", timeout=_START_S)
    assert ready["endpoints"] == [endpoint]
    assert ready["members"][0]["client"] == endpoint
    with Client(endpoint) as client:
        client.put("/dev/where", "here")
    _stop(server)
    assert not _port_open(endpoint)


def test_etcd_endpoints_in_the_environment_is_where_it_listens(
    cli: Callable[..., CliProcess],
) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    server = cli("--json", "etcd", env={"ETCD_ENDPOINTS": endpoint})
    assert server.expect("etcd_ready", timeout=_START_S)["endpoints"] == [endpoint]
    # The commands that read the same variable find it.
    leader = run_cli("leader", "anything", env={"ETCD_ENDPOINTS": endpoint})
    assert leader.returncode == 3, leader.stderr
    _stop(server)


def test_by_default_2379_when_free_else_it_says_which_port_it_took(
    cli: Callable[..., CliProcess],
) -> None:
    with _held(2379):
        busy = cli("--json", "etcd")
        note = busy.expect("port_in_use", timeout=_START_S)  # said before it starts
        (endpoint,) = busy.expect("etcd_ready", timeout=_START_S)["endpoints"]
        assert endpoint != "127.0.0.1:2379"
        assert note["detail"] == f"127.0.0.1:2379 is in use: clients use {endpoint} instead"
        assert _port_open(endpoint)
        _stop(busy)
    # Released: it is 2379 now, unless some other program on this machine holds it.
    free = _is_free(2379)
    server = cli("--json", "etcd")
    ready = server.expect("etcd_ready", timeout=_START_S)
    notes = [e["detail"] for e in server.events if e["event"] == "port_in_use"]
    if free:
        assert ready["endpoints"] == ["127.0.0.1:2379"]
        assert not any("127.0.0.1:2379 is in use" in note for note in notes)
    else:
        assert ready["endpoints"] != ["127.0.0.1:2379"]
        assert any("127.0.0.1:2379 is in use" in note for note in notes)
    _stop(server)


def test_three_members_by_default_use_etcds_usual_ports_where_free(
    cli: Callable[..., CliProcess],
) -> None:
    usual = [(2379, 2380), (22379, 22380), (32379, 32380)]
    free = {port: _is_free(port) for pair in usual for port in pair}
    server = cli("--json", "etcd", "--members", "3")
    members = server.expect("etcd_ready", timeout=_START_S)["members"]
    notes = " ".join(e["detail"] for e in server.events if e["event"] == "port_in_use")
    for member, (client, peer) in zip(members, usual, strict=True):
        for port, used in ((client, member["client"]), (peer, member["peer"])):
            if free[port]:
                assert used == f"127.0.0.1:{port}", members
            else:
                assert used != f"127.0.0.1:{port}" and f"127.0.0.1:{port} is in use" in notes
    _stop(server)


@pytest.mark.parametrize("where", ["10.1.2.3:2379", "0.0.0.0:2379", "example.com:2379"])
def test_addresses_off_this_machine_are_refused(where: str) -> None:
    done = run_cli("--endpoints", where, "etcd")
    _one_line_error(done, 4, "--endpoints", "127.x.x.x", where)


def test_a_remote_etcd_endpoints_variable_is_refused_by_name() -> None:
    done = run_cli("etcd", env={"ETCD_ENDPOINTS": "https://etcd.example:2379"})
    _one_line_error(done, 4, "ETCD_ENDPOINTS", "plain http")


def test_a_taken_port_that_was_asked_for_is_an_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        endpoint = f"127.0.0.1:{holder.getsockname()[1]}"
        done = run_cli("--endpoints", endpoint, "etcd")
    _one_line_error(done, 5, f"client address {endpoint} is in use", "--endpoints")


def test_three_members_need_three_addresses() -> None:
    done = run_cli("--endpoints", f"127.0.0.1:{free_port()}", "etcd", "--members", "3")
    _one_line_error(done, 4, "--members 3 needs 3 client addresses")


def test_data_survives_a_restart(cli: Callable[..., CliProcess], tmp_path: Path) -> None:
    data = tmp_path / "etcd-data"
    endpoint = f"127.0.0.1:{free_port()}"
    first = cli("--json", "--endpoints", endpoint, "etcd", "--data-dir", str(data))
    assert first.expect("etcd_ready", timeout=_START_S)["data_dir"] == str(data)
    with Client(endpoint) as client:
        client.put("/dev/kept", "across restarts")
    _stop(first)

    # Started again on the same directory, without --endpoints: same place, same data.
    again = cli("--json", "etcd", "--data-dir", str(data))
    assert again.expect("etcd_ready", timeout=_START_S)["endpoints"] == [endpoint]
    with Client(endpoint) as client:
        kept = client.get("/dev/kept").kv
        assert kept is not None and kept.value == b"across restarts"
    _stop(again)
    assert (data / "m0.log").exists()

    # Told another client address, the same data serves there.
    moved = f"127.0.0.1:{free_port()}"
    third = cli("--json", "--endpoints", moved, "etcd", "--data-dir", str(data))
    assert third.expect("etcd_ready", timeout=_START_S)["endpoints"] == [moved]
    with Client(moved) as client:
        kept = client.get("/dev/kept").kv
        assert kept is not None and kept.value == b"across restarts"
    _stop(third)

    wrong = run_cli("etcd", "--data-dir", str(data), "--members", "3")
    _one_line_error(wrong, 4, "holds a 1-member etcd", "--members 1")


def _start_text(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the text-mode dev server; return it and its lines up to 'stop with Ctrl-C'."""
    server = subprocess.Popen(
        [sys.executable, "-m", "etcd_elector.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert server.stdout is not None
    lines = []
    for line in server.stdout:
        lines.append(line.rstrip("\n"))
        if "stop with Ctrl-C" in line:
            return server, lines
    server.wait(10)
    errors = server.stderr.read() if server.stderr else ""
    raise AssertionError(f"no ready lines: {lines}, stderr {errors}")


def _interrupt(server: subprocess.Popen[str]) -> None:
    subprocess.run(["kill", "-INT", str(server.pid)], check=True)  # as a script would
    server.communicate(timeout=30)
    assert server.returncode == 128 + signal.SIGINT


@pytest.mark.timeout(180)
def test_three_members_say_their_ports_and_keep_their_data(tmp_path: Path) -> None:
    data = tmp_path / "cluster"
    clients = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    args = ["--endpoints", ",".join(clients), "etcd", "--members", "3", "--data-dir", str(data)]
    server, lines = _start_text(*args)
    try:
        layout = json.loads((data / "etcd-elector-dev.json").read_text())
        for index, client in enumerate(clients):
            peer = f"127.0.0.1:{layout['ports'][index][1]}"
            assert f"  m{index}: clients on {client}, peers on {peer}" in lines, lines
        assert f"  export ETCD_ENDPOINTS={','.join(clients)}" in lines
        with Client(clients[1]) as writer:
            writer.put("/dev/three", "kept")
    finally:
        _interrupt(server)

    # The members rejoin each other on the peer ports their data names.
    server, lines = _start_text("etcd", "--members", "3", "--data-dir", str(data))
    try:
        with Client(",".join(clients)) as reader:
            kept = reader.get("/dev/three").kv
            assert kept is not None and kept.value == b"kept"
    finally:
        _interrupt(server)
