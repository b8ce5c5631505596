"""The overhead benchmark's bare grpc.aio baseline sends and parses the messages our transport does.

``benchmarks/scenario_overhead_protos.py`` declares etcd's messages itself, so that the
baseline does not go through the library. The comparison is only fair while every message
reachable from the benchmarked calls matches ours field for field: the same numbers, types,
repetition, presence, oneofs and enum values put the same bytes on the wire, and parse every
byte etcd answers with as a known field.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from etcd_elector._proto import rpc_pb2

PROTOS = Path(__file__).resolve().parent.parent / "benchmarks" / "scenario_overhead_protos.py"

# The requests and responses of KV/Put, KV/Txn and Lease/LeaseKeepAlive.
ROOTS = (
    "PutRequest",
    "PutResponse",
    "TxnRequest",
    "TxnResponse",
    "LeaseKeepAliveRequest",
    "LeaseKeepAliveResponse",
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scenario_overhead_protos", PROTOS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf 7 dropped `label`
    return bool(repeated if repeated is not None else field.label == field.LABEL_REPEATED)


def _shapes(roots: list[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every message and enum reachable from ``roots``, by short name, as wire-relevant facts."""
    shapes: dict[str, list[tuple[Any, ...]]] = {}
    pending = list(roots)
    while pending:
        message = pending.pop()
        if message.name in shapes:
            continue
        fields = []
        for field in sorted(message.fields, key=lambda f: f.number):
            target = field.message_type or field.enum_type
            if field.message_type is not None:
                pending.append(field.message_type)
            if field.enum_type is not None:
                enum = field.enum_type
                shapes[f"{enum.containing_type.name}.{enum.name}"] = [
                    (value.number, value.name) for value in enum.values
                ]
            fields.append(
                (
                    field.number,
                    field.name,
                    field.type,
                    _is_repeated(field),
                    field.has_presence,
                    target.name if target is not None else None,
                    field.containing_oneof.name if field.containing_oneof else None,
                )
            )
        shapes[message.name] = fields
    return shapes


def test_baseline_messages_are_ours_field_for_field(bench: ModuleType) -> None:
    ours = _shapes([getattr(rpc_pb2, name).DESCRIPTOR for name in ROOTS])
    theirs = _shapes([getattr(bench, name).DESCRIPTOR for name in ROOTS])
    assert "KeyValue" in ours and "Compare.CompareTarget" in ours  # the walk went deep
    assert theirs == ours


def test_a_full_transaction_encodes_to_the_same_bytes(bench: ModuleType) -> None:
    def txn(pb: Any) -> Any:
        return pb.TxnRequest(
            compare=[
                pb.Compare(
                    result=pb.Compare.NOT_EQUAL,
                    target=pb.Compare.VALUE,
                    key=b"k",
                    value=b"v",
                    range_end=b"z",
                )
            ],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=b"k", value=b"v", lease=7))],
            failure=[
                pb.RequestOp(
                    request_range=pb.RangeRequest(
                        key=b"k", sort_order=pb.RangeRequest.DESCEND, limit=1
                    )
                )
            ],
        )

    wire = txn(rpc_pb2).SerializeToString()
    assert txn(bench).SerializeToString() == wire
    assert bench.TxnRequest.FromString(wire).SerializeToString() == wire
