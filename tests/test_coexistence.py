"""Our generated etcd protos live next to another etcd client's in one process, in any order."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SUBPROCESS_TIMEOUT_S = 90.0


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter where every warning is an error; return stdout."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Warning" not in done.stderr, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "imports",
    [
        "import etcd3aio, etcd_elector; import etcd_elector._proto.rpc_pb2",
        "import etcd_elector, etcd_elector._proto.rpc_pb2; import etcd3aio",
        "import etcd3aio._protobuf, etcd_elector._proto.rpc_pb2, etcd_elector._proto.kv_pb2",
        "import etcd_elector._proto.kv_pb2, etcd_elector._proto.rpc_pb2, etcd3aio._protobuf",
    ],
)
def test_both_clients_import_in_either_order(imports: str) -> None:
    out = run_python(
        f"""
        {imports}
        import etcd3aio._protobuf as theirs
        from etcd_elector._proto import rpc_pb2 as ours
        print(ours.RangeRequest.DESCRIPTOR.full_name)
        print(theirs.RangeRequest.DESCRIPTOR.full_name)
        """
    )
    mine, other = out.split()
    assert mine != other
    assert other == "etcdserverpb.RangeRequest"
    assert mine.endswith(".etcdserverpb.RangeRequest")


def test_both_clients_talk_to_etcd_in_one_process(etcd_endpoint: str, etcd_prefix: str) -> None:
    out = run_python(
        f"""
        import asyncio
        import etcd3aio
        from etcd_elector import AsyncClient

        async def main():
            key = {etcd_prefix + "k"!r}
            async with AsyncClient({etcd_endpoint!r}) as ours:
                async with etcd3aio.Etcd3Client([{etcd_endpoint!r}]) as theirs:
                    await theirs.kv.put(key, b"from etcd3aio")
                    got = await ours.get(key)
                    print(got.kv.value.decode())
                    await ours.put(key, "from etcd_elector")
                    answer = await theirs.kv.get(key)
                    print(answer.kvs[0].value.decode())

        asyncio.run(main())
        """
    )
    assert out.splitlines() == ["from etcd3aio", "from etcd_elector"]
