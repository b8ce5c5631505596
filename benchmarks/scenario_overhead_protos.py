"""etcd's KV and Lease messages for the bare ``grpc.aio`` baseline of ``scenario_overhead.py``.

The baseline must not go through etcd_elector, not even for its generated protobuf code, so
the messages it sends and parses are declared here: every message reachable from the
requests and responses of ``KV/Put``, ``KV/Txn`` and ``Lease/LeaseKeepAlive``, field for field
as in etcd's ``rpc.proto`` and ``kv.proto`` (3.4/3.5; ``tests/test_benchmark_protos.py``
checks them against the library's). They are built at import time into a descriptor pool of
their own, as protoc's Python output builds its classes, so the same protobuf runtime
serializes and parses them with the same cost.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "bench.etcd"

# Method paths on the wire (etcd's service names, whatever our proto package is called).
PUT = "/etcdserverpb.KV/Put"
TXN = "/etcdserverpb.KV/Txn"
LEASE_KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"

# Enums nested in a message: "<message>.<enum>" -> value names, numbered from 0.
ENUMS: dict[str, tuple[str, ...]] = {
    "RangeRequest.SortOrder": ("NONE", "ASCEND", "DESCEND"),
    "RangeRequest.SortTarget": ("KEY", "VERSION", "CREATE", "MOD", "VALUE"),
    "Compare.CompareResult": ("EQUAL", "GREATER", "LESS", "NOT_EQUAL"),
    "Compare.CompareTarget": ("VERSION", "CREATE", "MOD", "VALUE", "LEASE"),
}

# message -> fields (name, number, type[, oneof]); a type is a scalar, a message, or a nested
# enum, "repeated " in front for a repeated field.
MESSAGES: dict[str, list[tuple[str, int, str] | tuple[str, int, str, str]]] = {
    "KeyValue": [
        ("key", 1, "bytes"),
        ("create_revision", 2, "int64"),
        ("mod_revision", 3, "int64"),
        ("version", 4, "int64"),
        ("value", 5, "bytes"),
        ("lease", 6, "int64"),
    ],
    "ResponseHeader": [
        ("cluster_id", 1, "uint64"),
        ("member_id", 2, "uint64"),
        ("revision", 3, "int64"),
        ("raft_term", 4, "uint64"),
    ],
    "RangeRequest": [
        ("key", 1, "bytes"),
        ("range_end", 2, "bytes"),
        ("limit", 3, "int64"),
        ("revision", 4, "int64"),
        ("sort_order", 5, "RangeRequest.SortOrder"),
        ("sort_target", 6, "RangeRequest.SortTarget"),
        ("serializable", 7, "bool"),
        ("keys_only", 8, "bool"),
        ("count_only", 9, "bool"),
        ("min_mod_revision", 10, "int64"),
        ("max_mod_revision", 11, "int64"),
        ("min_create_revision", 12, "int64"),
        ("max_create_revision", 13, "int64"),
    ],
    "RangeResponse": [
        ("header", 1, "ResponseHeader"),
        ("kvs", 2, "repeated KeyValue"),
        ("more", 3, "bool"),
        ("count", 4, "int64"),
    ],
    "PutRequest": [
        ("key", 1, "bytes"),
        ("value", 2, "bytes"),
        ("lease", 3, "int64"),
        ("prev_kv", 4, "bool"),
        ("ignore_value", 5, "bool"),
        ("ignore_lease", 6, "bool"),
    ],
    "PutResponse": [("header", 1, "ResponseHeader"), ("prev_kv", 2, "KeyValue")],
    "DeleteRangeRequest": [("key", 1, "bytes"), ("range_end", 2, "bytes"), ("prev_kv", 3, "bool")],
    "DeleteRangeResponse": [
        ("header", 1, "ResponseHeader"),
        ("deleted", 2, "int64"),
        ("prev_kvs", 3, "repeated KeyValue"),
    ],
    "RequestOp": [
        ("request_range", 1, "RangeRequest", "request"),
        ("request_put", 2, "PutRequest", "request"),
        ("request_delete_range", 3, "DeleteRangeRequest", "request"),
        ("request_txn", 4, "TxnRequest", "request"),
    ],
    "ResponseOp": [
        ("response_range", 1, "RangeResponse", "response"),
        ("response_put", 2, "PutResponse", "response"),
        ("response_delete_range", 3, "DeleteRangeResponse", "response"),
        ("response_txn", 4, "TxnResponse", "response"),
    ],
    "Compare": [
        ("result", 1, "Compare.CompareResult"),
        ("target", 2, "Compare.CompareTarget"),
        ("key", 3, "bytes"),
        ("version", 4, "int64", "target_union"),
        ("create_revision", 5, "int64", "target_union"),
        ("mod_revision", 6, "int64", "target_union"),
        ("value", 7, "bytes", "target_union"),
        ("lease", 8, "int64", "target_union"),
        ("range_end", 64, "bytes"),
    ],
    "TxnRequest": [
        ("compare", 1, "repeated Compare"),
        ("success", 2, "repeated RequestOp"),
        ("failure", 3, "repeated RequestOp"),
    ],
    "TxnResponse": [
        ("header", 1, "ResponseHeader"),
        ("succeeded", 2, "bool"),
        ("responses", 3, "repeated ResponseOp"),
    ],
    "LeaseKeepAliveRequest": [("ID", 1, "int64")],
    "LeaseKeepAliveResponse": [
        ("header", 1, "ResponseHeader"),
        ("ID", 2, "int64"),
        ("TTL", 3, "int64"),
    ],
}

_Field = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bytes": _Field.TYPE_BYTES,
    "bool": _Field.TYPE_BOOL,
    "int64": _Field.TYPE_INT64,
    "uint64": _Field.TYPE_UINT64,
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="bench/etcd.proto", package=PACKAGE, syntax="proto3"
    )
    messages = {}
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        messages[name] = message
        oneofs: list[str] = []
        for spec in fields:
            field_name, number, kind = spec[0], spec[1], spec[2]
            field = message.field.add(name=field_name, number=number)
            field.label = _Field.LABEL_OPTIONAL
            if kind.startswith("repeated "):
                field.label = _Field.LABEL_REPEATED
                kind = kind.removeprefix("repeated ")
            if kind in _SCALARS:
                field.type = _SCALARS[kind]
            else:
                field.type = _Field.TYPE_ENUM if kind in ENUMS else _Field.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{kind}"
            if len(spec) == 4:
                if spec[3] not in oneofs:
                    oneofs.append(spec[3])
                    message.oneof_decl.add(name=spec[3])
                field.oneof_index = oneofs.index(spec[3])
    for path, values in ENUMS.items():
        owner, enum_name = path.split(".")
        enum = messages[owner].enum_type.add(name=enum_name)
        for number, value in enumerate(values):
            enum.value.add(name=value, number=number)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(_file().SerializeToString())


def message_class(name: str) -> Any:
    """The message class for ``name`` (``"PutRequest"``, ``"Compare"``, ...)."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


PutRequest = message_class("PutRequest")
PutResponse = message_class("PutResponse")
RangeRequest = message_class("RangeRequest")
Compare = message_class("Compare")
RequestOp = message_class("RequestOp")
TxnRequest = message_class("TxnRequest")
TxnResponse = message_class("TxnResponse")
LeaseKeepAliveRequest = message_class("LeaseKeepAliveRequest")
LeaseKeepAliveResponse = message_class("LeaseKeepAliveResponse")
