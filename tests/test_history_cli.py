"""etcd loses history under the command line: real ``etcd-elector campaign``, ``observe`` and
``status`` processes with ``--json``, a real etcd wiped or restored from a snapshot.

What a user sees: the leader's ``lost`` event with reason ``etcd_history_lost`` and a
``history_lost`` event; an ERROR line on stderr at the default log level naming revisions,
cluster ids and the remedy; no ``elected`` with a token at or below the highest seen before;
``observe`` reporting the loss; the token file making a freshly started candidate refuse too;
and ``--accept-history-reset`` letting the new history lead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.cli_process import CliProcess, run_cli, wait_until

from etcd_elector import AsyncClient
from etcd_elector.testing import EtcdMember

pytestmark = pytest.mark.timeout(120)

Cli = Callable[..., CliProcess]
NAME = "job"
FILLER = 40
TTL = "5"  # outlives the wipe or restore: the term ends for the loss, not at its deadline


def common(member: EtcdMember, prefix: str) -> list[str]:
    return ["--json", "--endpoints", member.client_endpoint, "--namespace", prefix.rstrip("/")]


def fill(member: EtcdMember, prefix: str, count: int) -> None:
    async def writes() -> None:
        async with AsyncClient(member.client_endpoint) as client:
            for index in range(count):
                await client.put(f"{prefix}fill/{index}", "x")

    asyncio.run(writes())


def stderr_has(process: CliProcess, text: str, timeout: float = 30) -> str:
    found: list[str] = []

    def seen() -> bool:
        found[:] = [line for line in process.stderr_lines if text in line]
        return bool(found)

    wait_until(seen, timeout, f"{text!r} on stderr of {' '.join(process.args)}")
    return found[0]


def elected_tokens(process: CliProcess) -> list[int]:
    return [int(event["token"]) for event in process.events if event["event"] == "elected"]


def test_a_wiped_etcd_ends_the_term_refuses_lower_tokens_and_observe_says_so(
    etcd_member: EtcdMember, etcd_prefix: str, tmp_path: Path, cli: Cli
) -> None:
    fill(etcd_member, etcd_prefix, FILLER)
    args = common(etcd_member, etcd_prefix)
    token_file = tmp_path / "token.json"
    observer = cli(*args, "observe", NAME)
    leader = cli(*args, "--ttl", TTL, "campaign", NAME, "--token-file", str(token_file))
    token = int(leader.expect("elected")["token"])
    observer.expect("leader", where=lambda e: e["token"] == token)

    etcd_member.wipe_and_restart()

    loss = leader.expect("history_lost")
    assert loss["kind"] == "revision_went_back"
    assert loss["previous_revision"] >= token > loss["revision"]
    assert loss["cluster_id"] == loss["previous_cluster_id"]  # a wipe keeps the cluster id
    lost = leader.expect("lost")
    assert (lost["reason"], lost["token"]) == ("etcd_history_lost", token)
    error = stderr_has(leader, "ERROR etcd_elector.etcd._history_guard: etcd history lost")
    assert f" previous_revision={loss['previous_revision']} " in error
    assert f" revision={loss['revision']} " in error and "went back" in error
    assert f" cluster_id={loss['cluster_id']} " in error and "--accept-history-reset" in error
    refusal = stderr_has(leader, "refusing to lead")
    assert "not above the floor" in refusal and f" floor={loss['floor']}" in refusal

    seen = observer.expect("history_lost")
    assert seen["previous_revision"] >= token and seen["kind"] == "revision_went_back"

    # Leadership comes back once etcd's revisions pass the floor, never at or below it: move
    # them on the way docs/operations.md tells operators to (etcdctl put, then del).
    for _ in range(loss["floor"] - loss["revision"]):
        etcd_member.cluster.run_tool(
            "etcdctl", "--endpoints", etcd_member.client_endpoint, "put", "/etcd-elector-bump", "x"
        )
    etcd_member.cluster.run_tool(
        "etcdctl", "--endpoints", etcd_member.client_endpoint, "del", "/etcd-elector-bump"
    )
    again = leader.expect("elected", timeout=60)
    assert again["token"] > loss["floor"]
    assert [t for t in elected_tokens(leader) if t <= loss["floor"]] == [token]
    # What observe reported as leader at or below the floor, it marked as gone back.
    after_loss = observer.events[observer.events.index(seen) :]
    for event in after_loss:
        if event["event"] == "leader":
            assert event.get("below_floor", False) == (event["token"] <= seen["floor"])
    observer.expect("leader", where=lambda e: e["token"] == again["token"])

    # The token file keeps the highest token for a candidate started later.
    kept = json.loads(token_file.read_text())
    assert kept["highest_token"] >= again["token"]
    leader.signal()
    assert leader.wait() == 143


def test_a_restored_older_snapshot_ends_the_term_and_shows_a_new_cluster_id(
    etcd_member: EtcdMember, etcd_prefix: str, tmp_path: Path, cli: Cli
) -> None:
    fill(etcd_member, etcd_prefix, FILLER)
    backup = tmp_path / "backup.db"
    etcd_member.snapshot_save(backup)  # the backup predates the term
    args = common(etcd_member, etcd_prefix)
    observer = cli(*args, "observe", NAME)
    leader = cli(*args, "--ttl", TTL, "campaign", NAME)
    token = int(leader.expect("elected")["token"])
    observer.expect("leader", where=lambda e: e["token"] == token)

    etcd_member.cluster.restore_snapshot(backup)

    loss = leader.expect("history_lost")
    assert loss["kind"] == "revision_went_back"
    assert loss["revision"] < token <= loss["previous_revision"] <= loss["floor"]
    assert loss["cluster_id"] != loss["previous_cluster_id"]  # restored with a new token
    lost = leader.expect("lost")
    assert (lost["reason"], lost["token"]) == ("etcd_history_lost", token)
    error = stderr_has(leader, "ERROR etcd_elector.etcd._history_guard: etcd history lost")
    assert f" cluster_id={loss['cluster_id']} " in error
    assert f" previous_cluster_id={loss['previous_cluster_id']} " in error
    seen = observer.expect("history_lost")
    assert (seen["previous_cluster_id"], seen["cluster_id"]) == (
        loss["previous_cluster_id"],
        loss["cluster_id"],
    )
    # The next term's token is above everything seen before; none at or below it.
    again = leader.expect("elected", timeout=60)
    assert again["token"] > loss["floor"]
    assert [t for t in elected_tokens(leader) if t <= loss["floor"]] == [token]
    observer.expect("leader", where=lambda e: e["token"] == again["token"])


def test_the_token_file_makes_a_fresh_candidate_refuse_and_the_override_lets_it_lead(
    etcd_member: EtcdMember, etcd_prefix: str, tmp_path: Path, cli: Cli
) -> None:
    fill(etcd_member, etcd_prefix, FILLER)
    args = common(etcd_member, etcd_prefix)
    token_file = tmp_path / "token.json"
    first = cli(*args, "--ttl", TTL, "campaign", NAME, "--token-file", str(token_file))
    token = int(first.expect("elected")["token"])
    first.signal()
    assert first.wait() == 143
    etcd_member.wipe_and_restart()  # while no candidate runs: nobody in memory saw it

    fresh = cli(
        *args, "--ttl", TTL, "campaign", NAME, env={"ETCD_ELECTOR_TOKEN_FILE": str(token_file)}
    )
    loss = fresh.expect("history_lost")
    assert loss["from_token_file"] and loss["previous_revision"] >= token
    stderr_has(fresh, "refusing to lead")
    status = run_cli(*args, "status", NAME, "--token-file", str(token_file))
    assert status.returncode == 0, status.stderr
    events = [json.loads(line) for line in status.stdout.splitlines()]
    assert events[0]["event"] == "history_lost"
    assert events[-1]["event"] == "status" and events[-1]["token_floor"] >= token
    observer = cli(*args, "observe", NAME, "--token-file", str(token_file))
    seen = observer.expect("history_lost")  # went back while nothing was running
    assert seen["from_token_file"] and seen["previous_revision"] >= token
    assert elected_tokens(fresh) == []
    fresh.signal()
    assert fresh.wait() == 143
    assert elected_tokens(fresh) == []

    accepted = cli(
        *args,
        "--ttl",
        TTL,
        "campaign",
        NAME,
        "--token-file",
        str(token_file),
        "--accept-history-reset",
    )
    elected = accepted.expect("elected")
    assert elected["token"] <= token  # the new history leads, on the operator's word
    stderr_has(accepted, "accepted etcd's current history")
    accepted.signal()
    assert accepted.wait() == 143


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "is not a token file"), (None, "does not exist")],
)
def test_an_unusable_token_file_is_one_error_line_and_exit_code_4(
    etcd_endpoint: str, etcd_prefix: str, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "token.json"
    if content is None:
        path = tmp_path / "missing" / "token.json"
    else:
        path.write_bytes(content)
    for command in ("campaign", "observe", "status"):
        done = run_cli(
            "--endpoints", etcd_endpoint, command, NAME, "--token-file", str(path), timeout=30
        )
        assert done.returncode == 4, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], lines
