"""The committed protobuf code: up to date, privately named, and on etcd's wire format.

The expected field numbers, types and encodings below are written out by hand from
etcd's v3 API (3.4/3.5) on purpose: they are the wire protocol, and this file is the
second, independent statement of it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from etcd_elector._proto import kv_pb2, rpc_pb2

ROOT = Path(__file__).resolve().parent.parent
GENERATE = ROOT / "scripts" / "generate_proto.py"
PROTO_DIR = ROOT / "src" / "etcd_elector" / "_proto"

RPC_PACKAGE = "etcd_elector.etcdserverpb"
KV_PACKAGE = "etcd_elector.mvccpb"


# --- (a) the generated code matches the .proto files --------------------------------


def test_generated_code_is_not_stale() -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.fail(
            "grpcio-tools is not installed, so the committed generated code cannot be "
            "checked; install the pinned version from pyproject's 'dev' extra "
            "(pip install -e '.[dev]')"
        )
    result = subprocess.run(
        [sys.executable, str(GENERATE), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"scripts/generate_proto.py --check exited {result.returncode}:\n"
        f"{result.stdout}{result.stderr}"
    )


def test_runtime_version_gate_is_removed() -> None:
    for name in ("kv_pb2.py", "rpc_pb2.py"):
        text = (PROTO_DIR / name).read_text(encoding="utf-8")
        assert "runtime_version" not in text, name


# --- (b) private names, so we never collide with another etcd client's descriptors --


def test_descriptors_live_under_private_packages() -> None:
    assert kv_pb2.DESCRIPTOR.name == "etcd_elector/_proto/kv.proto"
    assert kv_pb2.DESCRIPTOR.package == KV_PACKAGE
    assert rpc_pb2.DESCRIPTOR.name == "etcd_elector/_proto/rpc.proto"
    assert rpc_pb2.DESCRIPTOR.package == RPC_PACKAGE
    assert kv_pb2.KeyValue.DESCRIPTOR.full_name == "etcd_elector.mvccpb.KeyValue"
    assert kv_pb2.Event.DESCRIPTOR.full_name == "etcd_elector.mvccpb.Event"
    assert rpc_pb2.RangeRequest.DESCRIPTOR.full_name == "etcd_elector.etcdserverpb.RangeRequest"
    assert rpc_pb2.TxnRequest.DESCRIPTOR.full_name == "etcd_elector.etcdserverpb.TxnRequest"
    assert rpc_pb2.Permission.DESCRIPTOR.full_name == "etcd_elector.etcdserverpb.Permission"
    kvs = rpc_pb2.RangeResponse.DESCRIPTOR.fields_by_name["kvs"]
    assert kvs.message_type.full_name == "etcd_elector.mvccpb.KeyValue"
    # Method paths are spelled out by the client; services would carry our package name.
    assert dict(rpc_pb2.DESCRIPTOR.services_by_name) == {}


# --- (c) wire compatibility ----------------------------------------------------------

# message -> field -> (number, type). Types: scalar name, "enum <Name>", message name,
# each optionally prefixed by "repeated ". Every field we define must be listed.
ETCD_FIELDS: dict[str, dict[str, tuple[int, str]]] = {
    "KeyValue": {
        "key": (1, "bytes"),
        "create_revision": (2, "int64"),
        "mod_revision": (3, "int64"),
        "version": (4, "int64"),
        "value": (5, "bytes"),
        "lease": (6, "int64"),
    },
    "Event": {
        "type": (1, "enum EventType"),
        "kv": (2, "KeyValue"),
        "prev_kv": (3, "KeyValue"),
    },
    "ResponseHeader": {
        "cluster_id": (1, "uint64"),
        "member_id": (2, "uint64"),
        "revision": (3, "int64"),
        "raft_term": (4, "uint64"),
    },
    "RangeRequest": {
        "key": (1, "bytes"),
        "range_end": (2, "bytes"),
        "limit": (3, "int64"),
        "revision": (4, "int64"),
        "sort_order": (5, "enum SortOrder"),
        "sort_target": (6, "enum SortTarget"),
        "serializable": (7, "bool"),
        "keys_only": (8, "bool"),
        "count_only": (9, "bool"),
        "min_mod_revision": (10, "int64"),
        "max_mod_revision": (11, "int64"),
        "min_create_revision": (12, "int64"),
        "max_create_revision": (13, "int64"),
    },
    "RangeResponse": {
        "header": (1, "ResponseHeader"),
        "kvs": (2, "repeated KeyValue"),
        "more": (3, "bool"),
        "count": (4, "int64"),
    },
    "PutRequest": {
        "key": (1, "bytes"),
        "value": (2, "bytes"),
        "lease": (3, "int64"),
        "prev_kv": (4, "bool"),
        "ignore_value": (5, "bool"),
        "ignore_lease": (6, "bool"),
    },
    "PutResponse": {"header": (1, "ResponseHeader"), "prev_kv": (2, "KeyValue")},
    "DeleteRangeRequest": {
        "key": (1, "bytes"),
        "range_end": (2, "bytes"),
        "prev_kv": (3, "bool"),
    },
    "DeleteRangeResponse": {
        "header": (1, "ResponseHeader"),
        "deleted": (2, "int64"),
        "prev_kvs": (3, "repeated KeyValue"),
    },
    "RequestOp": {
        "request_range": (1, "RangeRequest"),
        "request_put": (2, "PutRequest"),
        "request_delete_range": (3, "DeleteRangeRequest"),
        "request_txn": (4, "TxnRequest"),
    },
    "ResponseOp": {
        "response_range": (1, "RangeResponse"),
        "response_put": (2, "PutResponse"),
        "response_delete_range": (3, "DeleteRangeResponse"),
        "response_txn": (4, "TxnResponse"),
    },
    "Compare": {
        "result": (1, "enum CompareResult"),
        "target": (2, "enum CompareTarget"),
        "key": (3, "bytes"),
        "version": (4, "int64"),
        "create_revision": (5, "int64"),
        "mod_revision": (6, "int64"),
        "value": (7, "bytes"),
        "lease": (8, "int64"),
        "range_end": (64, "bytes"),
    },
    "TxnRequest": {
        "compare": (1, "repeated Compare"),
        "success": (2, "repeated RequestOp"),
        "failure": (3, "repeated RequestOp"),
    },
    "TxnResponse": {
        "header": (1, "ResponseHeader"),
        "succeeded": (2, "bool"),
        "responses": (3, "repeated ResponseOp"),
    },
    "CompactionRequest": {"revision": (1, "int64"), "physical": (2, "bool")},
    "CompactionResponse": {"header": (1, "ResponseHeader")},
    "WatchRequest": {
        "create_request": (1, "WatchCreateRequest"),
        "cancel_request": (2, "WatchCancelRequest"),
        "progress_request": (3, "WatchProgressRequest"),
    },
    "WatchCreateRequest": {
        "key": (1, "bytes"),
        "range_end": (2, "bytes"),
        "start_revision": (3, "int64"),
        "progress_notify": (4, "bool"),
        "filters": (5, "repeated enum FilterType"),
        "prev_kv": (6, "bool"),
        "watch_id": (7, "int64"),
        "fragment": (8, "bool"),
    },
    "WatchCancelRequest": {"watch_id": (1, "int64")},
    "WatchProgressRequest": {},
    "WatchResponse": {
        "header": (1, "ResponseHeader"),
        "watch_id": (2, "int64"),
        "created": (3, "bool"),
        "canceled": (4, "bool"),
        "compact_revision": (5, "int64"),
        "cancel_reason": (6, "string"),
        "fragment": (7, "bool"),
        "events": (11, "repeated Event"),
    },
    "LeaseGrantRequest": {"TTL": (1, "int64"), "ID": (2, "int64")},
    "LeaseGrantResponse": {
        "header": (1, "ResponseHeader"),
        "ID": (2, "int64"),
        "TTL": (3, "int64"),
        "error": (4, "string"),
    },
    "LeaseRevokeRequest": {"ID": (1, "int64")},
    "LeaseRevokeResponse": {"header": (1, "ResponseHeader")},
    "LeaseKeepAliveRequest": {"ID": (1, "int64")},
    "LeaseKeepAliveResponse": {
        "header": (1, "ResponseHeader"),
        "ID": (2, "int64"),
        "TTL": (3, "int64"),
    },
    "LeaseTimeToLiveRequest": {"ID": (1, "int64"), "keys": (2, "bool")},
    "LeaseTimeToLiveResponse": {
        "header": (1, "ResponseHeader"),
        "ID": (2, "int64"),
        "TTL": (3, "int64"),
        "grantedTTL": (4, "int64"),
        "keys": (5, "repeated bytes"),
    },
    "LeaseLeasesRequest": {},
    "LeaseStatus": {"ID": (1, "int64")},
    "LeaseLeasesResponse": {
        "header": (1, "ResponseHeader"),
        "leases": (2, "repeated LeaseStatus"),
    },
    "Member": {
        "ID": (1, "uint64"),
        "name": (2, "string"),
        "peerURLs": (3, "repeated string"),
        "clientURLs": (4, "repeated string"),
        "isLearner": (5, "bool"),
    },
    "MemberListRequest": {"linearizable": (1, "bool")},
    "MemberListResponse": {
        "header": (1, "ResponseHeader"),
        "members": (2, "repeated Member"),
    },
    "StatusRequest": {},
    "StatusResponse": {
        "header": (1, "ResponseHeader"),
        "version": (2, "string"),
        "dbSize": (3, "int64"),
        "leader": (4, "uint64"),
        "raftIndex": (5, "uint64"),
        "raftTerm": (6, "uint64"),
        "raftAppliedIndex": (7, "uint64"),
        "errors": (8, "repeated string"),
        "dbSizeInUse": (9, "int64"),
        "isLearner": (10, "bool"),
    },
    "UserAddOptions": {"no_password": (1, "bool")},  # etcd's authpb
    "Permission": {  # etcd's authpb
        "permType": (1, "enum Type"),
        "key": (2, "bytes"),
        "range_end": (3, "bytes"),
    },
    "AuthenticateRequest": {"name": (1, "string"), "password": (2, "string")},
    "AuthenticateResponse": {"header": (1, "ResponseHeader"), "token": (2, "string")},
    "AuthEnableRequest": {},
    "AuthEnableResponse": {"header": (1, "ResponseHeader")},
    "AuthUserAddRequest": {
        "name": (1, "string"),
        "password": (2, "string"),
        "options": (3, "UserAddOptions"),
    },
    "AuthUserAddResponse": {"header": (1, "ResponseHeader")},
    "AuthUserGrantRoleRequest": {"user": (1, "string"), "role": (2, "string")},
    "AuthUserGrantRoleResponse": {"header": (1, "ResponseHeader")},
    "AuthRoleAddRequest": {"name": (1, "string")},
    "AuthRoleAddResponse": {"header": (1, "ResponseHeader")},
    "AuthRoleGrantPermissionRequest": {"name": (1, "string"), "perm": (2, "Permission")},
    "AuthRoleGrantPermissionResponse": {"header": (1, "ResponseHeader")},
}

ETCD_ONEOFS: dict[str, dict[str, set[str]]] = {
    "RequestOp": {
        "request": {"request_range", "request_put", "request_delete_range", "request_txn"}
    },
    "ResponseOp": {
        "response": {"response_range", "response_put", "response_delete_range", "response_txn"}
    },
    "Compare": {"target_union": {"version", "create_revision", "mod_revision", "value", "lease"}},
    "WatchRequest": {"request_union": {"create_request", "cancel_request", "progress_request"}},
}

ETCD_ENUMS: dict[tuple[str, str], dict[str, int]] = {
    ("Event", "EventType"): {"PUT": 0, "DELETE": 1},
    ("RangeRequest", "SortOrder"): {"NONE": 0, "ASCEND": 1, "DESCEND": 2},
    ("RangeRequest", "SortTarget"): {"KEY": 0, "VERSION": 1, "CREATE": 2, "MOD": 3, "VALUE": 4},
    ("Compare", "CompareResult"): {"EQUAL": 0, "GREATER": 1, "LESS": 2, "NOT_EQUAL": 3},
    ("Compare", "CompareTarget"): {"VERSION": 0, "CREATE": 1, "MOD": 2, "VALUE": 3, "LEASE": 4},
    ("WatchCreateRequest", "FilterType"): {"NOPUT": 0, "NODELETE": 1},
    ("Permission", "Type"): {"READ": 0, "WRITE": 1, "READWRITE": 2},
}

# FieldDescriptor.TYPE_* values (fixed by descriptor.proto).
_SCALAR_TYPES = {3: "int64", 4: "uint64", 8: "bool", 9: "string", 12: "bytes"}
_TYPE_MESSAGE = 11
_TYPE_ENUM = 14
_LABEL_REPEATED = 3


def _message_descriptor(name: str) -> Any:
    module: Any = kv_pb2 if name in ("KeyValue", "Event") else rpc_pb2
    return module.DESCRIPTOR.message_types_by_name[name]


def _is_repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6.31; `label` is gone in 7
    if flag is None:
        flag = field.label == _LABEL_REPEATED
    return bool(flag)


def _describe(field: Any) -> tuple[int, str]:
    if field.type == _TYPE_MESSAGE:
        kind = str(field.message_type.name)
    elif field.type == _TYPE_ENUM:
        kind = f"enum {field.enum_type.name}"
    else:
        kind = _SCALAR_TYPES.get(field.type, f"type#{field.type}")
    if _is_repeated(field):
        kind = f"repeated {kind}"
    return int(field.number), kind


def test_every_message_is_listed() -> None:
    ours = set(kv_pb2.DESCRIPTOR.message_types_by_name) | set(
        rpc_pb2.DESCRIPTOR.message_types_by_name
    )
    assert ours == set(ETCD_FIELDS)


@pytest.mark.parametrize("message", sorted(ETCD_FIELDS))
def test_field_numbers_and_types_match_etcd(message: str) -> None:
    descriptor = _message_descriptor(message)
    actual = {field.name: _describe(field) for field in descriptor.fields}
    assert actual == ETCD_FIELDS[message]


@pytest.mark.parametrize("message", sorted(ETCD_ONEOFS))
def test_oneofs_match_etcd(message: str) -> None:
    descriptor = _message_descriptor(message)
    actual = {o.name: {f.name for f in o.fields} for o in descriptor.oneofs}
    assert actual == ETCD_ONEOFS[message]


@pytest.mark.parametrize(("message", "enum"), sorted(ETCD_ENUMS))
def test_enum_values_match_etcd(message: str, enum: str) -> None:
    enum_descriptor = _message_descriptor(message).enum_types_by_name[enum]
    actual = {value.name: value.number for value in enum_descriptor.values}
    assert actual == ETCD_ENUMS[(message, enum)]


def test_the_result_types_know_a_delete_without_loading_protobuf() -> None:
    # etcd_elector.etcd._types names kv.proto's Event.DELETE as a number (so that reading a
    # range over the JSON gateway never loads protobuf); it must stay the generated value.
    from etcd_elector.etcd import _types
    from etcd_elector.etcd._types import Event, EventType

    assert _types._DELETE == kv_pb2.Event.DELETE
    deleted = kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"k"))
    assert Event.from_proto(deleted).type is EventType.DELETE
    assert Event.from_proto(kv_pb2.Event(type=kv_pb2.Event.PUT)).type is EventType.PUT


def test_lease_grant_request_bytes() -> None:
    # field 1 (TTL) varint 5, field 2 (ID) varint 7
    assert rpc_pb2.LeaseGrantRequest(TTL=5, ID=7).SerializeToString() == b"\x08\x05\x10\x07"


def test_compare_create_revision_zero_is_sent() -> None:
    # "key does not exist" guard: create_revision == 0 must be on the wire, because it
    # sits in a oneof (explicit presence). result=EQUAL(0) is a default and is omitted.
    compare = rpc_pb2.Compare(
        result=rpc_pb2.Compare.EQUAL,
        target=rpc_pb2.Compare.CREATE,
        key=b"k",
        create_revision=0,
    )
    assert compare.WhichOneof("target_union") == "create_revision"
    assert compare.SerializeToString() == b"\x10\x01" + b"\x1a\x01k" + b"\x28\x00"


def test_compare_mod_revision_and_range_end_bytes() -> None:
    compare = rpc_pb2.Compare(
        result=rpc_pb2.Compare.GREATER,
        target=rpc_pb2.Compare.MOD,
        key=b"a",
        mod_revision=300,
        range_end=b"b",
    )
    expected = (
        b"\x08\x01"  # result GREATER
        b"\x10\x02"  # target MOD
        b"\x1a\x01a"  # key
        b"\x30\xac\x02"  # field 6 mod_revision, varint 300
        b"\x82\x04\x01b"  # field 64 range_end: tag (64 << 3 | 2) = 514 = varint 82 04
    )
    assert compare.SerializeToString() == expected


def test_watch_create_request_bytes() -> None:
    request = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=b"k", start_revision=1000, prev_kv=True)
    )
    inner = b"\x0a\x01k" + b"\x18\xe8\x07" + b"\x30\x01"  # key, start_revision 1000, prev_kv
    assert request.SerializeToString() == b"\x0a" + bytes([len(inner)]) + inner


def test_watch_response_events_decode() -> None:
    event = b"\x08\x01" + b"\x12\x03" + b"\x0a\x01k"  # type DELETE, kv{key "k"}
    data = b"\x10\x03" + b"\x18\x01" + b"\x5a" + bytes([len(event)]) + event  # events = 11
    response = rpc_pb2.WatchResponse.FromString(data)
    assert response.watch_id == 3
    assert response.created
    assert len(response.events) == 1
    assert response.events[0].type == kv_pb2.Event.DELETE
    assert response.events[0].kv.key == b"k"


def test_signed_and_unsigned_64_bit_fields() -> None:
    # TTL is int64 (not sint64): -1 is a ten-byte varint.
    response = rpc_pb2.LeaseTimeToLiveResponse.FromString(b"\x18" + b"\xff" * 9 + b"\x01")
    assert response.TTL == -1
    # Member.ID is uint64: the top bit set stays positive.
    member = rpc_pb2.Member(ID=2**64 - 1)
    assert member.SerializeToString() == b"\x08" + b"\xff" * 9 + b"\x01"


def test_auth_messages_bytes() -> None:
    grant = rpc_pb2.AuthRoleGrantPermissionRequest(
        name="r",
        perm=rpc_pb2.Permission(permType=rpc_pb2.Permission.READWRITE, key=b"/", range_end=b"0"),
    )
    perm = b"\x08\x02" + b"\x12\x01/" + b"\x1a\x010"
    assert grant.SerializeToString() == b"\x0a\x01r" + b"\x12" + bytes([len(perm)]) + perm
    add = rpc_pb2.AuthUserAddRequest(name="u", options=rpc_pb2.UserAddOptions(no_password=True))
    assert add.SerializeToString() == b"\x0a\x01u" + b"\x1a\x02\x08\x01"


def test_txn_round_trip() -> None:
    txn = rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(
                result=rpc_pb2.Compare.EQUAL,
                target=rpc_pb2.Compare.CREATE,
                key=b"/e/leader",
                create_revision=0,
            )
        ],
        success=[
            rpc_pb2.RequestOp(
                request_put=rpc_pb2.PutRequest(key=b"/e/leader", value=b"me", lease=7)
            )
        ],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"/e/leader"))],
    )
    parsed = rpc_pb2.TxnRequest.FromString(txn.SerializeToString())
    assert parsed == txn
    assert parsed.compare[0].WhichOneof("target_union") == "create_revision"
    assert parsed.success[0].WhichOneof("request") == "request_put"
    assert parsed.failure[0].WhichOneof("request") == "request_range"
