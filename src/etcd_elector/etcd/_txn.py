"""Transaction building blocks: compares and operations, as small immutable values.

    Compare.create_revision(key) == 0          # the key does not exist
    Compare.value(key) == b"x"
    Op.put(key, b"v", lease=lease_id)

A compare is made by applying ``==``, ``!=``, ``<`` or ``>`` to a target; the result is a
``Compare`` that the transport turns into etcd's message.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._keys import KeyLike, as_bytes, prefix_range_end
from .._proto import rpc_pb2

__all__ = ["Compare", "Op"]

_RESULTS = {
    "==": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    "<": rpc_pb2.Compare.LESS,
    ">": rpc_pb2.Compare.GREATER,
}
_TARGETS = {
    "version": (rpc_pb2.Compare.VERSION, "version"),
    "create_revision": (rpc_pb2.Compare.CREATE, "create_revision"),
    "mod_revision": (rpc_pb2.Compare.MOD, "mod_revision"),
    "value": (rpc_pb2.Compare.VALUE, "value"),
    "lease": (rpc_pb2.Compare.LEASE, "lease"),
}


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: ``target(key) op operand``."""

    key: bytes
    target: str
    op: str
    operand: int | bytes

    def to_proto(self) -> rpc_pb2.Compare:
        kind, field_name = _TARGETS[self.target]
        message = rpc_pb2.Compare(result=_RESULTS[self.op], target=kind, key=self.key)
        setattr(message, field_name, self.operand)
        return message

    @staticmethod
    def version(key: KeyLike) -> _Target:
        return _Target(as_bytes(key), "version")

    @staticmethod
    def create_revision(key: KeyLike) -> _Target:
        return _Target(as_bytes(key), "create_revision")

    @staticmethod
    def mod_revision(key: KeyLike) -> _Target:
        return _Target(as_bytes(key), "mod_revision")

    @staticmethod
    def value(key: KeyLike) -> _Target:
        return _Target(as_bytes(key), "value")

    @staticmethod
    def lease(key: KeyLike) -> _Target:
        return _Target(as_bytes(key), "lease")


@dataclass(frozen=True, eq=False)
class _Target:
    """Half of a compare; finish it with a comparison operator."""

    key: bytes
    target: str

    def _make(self, op: str, operand: int | bytes | str) -> Compare:
        if self.target == "value":
            if not isinstance(operand, str | bytes):
                raise TypeError("a value compare needs bytes or str")
            return Compare(self.key, self.target, op, as_bytes(operand))
        if isinstance(operand, bool) or not isinstance(operand, int):
            raise TypeError(f"a {self.target} compare needs an int")
        return Compare(self.key, self.target, op, operand)

    def __eq__(self, operand: object) -> Compare:  # type: ignore[override]
        return self._make("==", operand)  # type: ignore[arg-type]

    def __ne__(self, operand: object) -> Compare:  # type: ignore[override]
        return self._make("!=", operand)  # type: ignore[arg-type]

    def __lt__(self, operand: int | bytes | str) -> Compare:
        return self._make("<", operand)

    def __gt__(self, operand: int | bytes | str) -> Compare:
        return self._make(">", operand)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Op:
    """One operation inside a transaction branch."""

    message: rpc_pb2.RequestOp

    @staticmethod
    def get(
        key: KeyLike,
        *,
        prefix: bool = False,
        limit: int = 0,
        sort_by_create_revision: bool = False,
        descending: bool = False,
        max_create_revision: int = 0,
    ) -> Op:
        """A read; by create revision (``descending`` or not) with ``sort_by_create_revision``,
        only keys created at or before ``max_create_revision`` when it is set."""
        raw = as_bytes(key)
        request = rpc_pb2.RangeRequest(
            key=raw,
            range_end=prefix_range_end(raw) if prefix else b"",
            limit=limit,
            max_create_revision=max_create_revision,
        )
        if sort_by_create_revision:
            request.sort_target = rpc_pb2.RangeRequest.CREATE
            request.sort_order = (
                rpc_pb2.RangeRequest.DESCEND if descending else rpc_pb2.RangeRequest.ASCEND
            )
        return Op(rpc_pb2.RequestOp(request_range=request))

    @staticmethod
    def put(key: KeyLike, value: KeyLike, *, lease: int = 0, prev_kv: bool = False) -> Op:
        request = rpc_pb2.PutRequest(
            key=as_bytes(key), value=as_bytes(value), lease=lease, prev_kv=prev_kv
        )
        return Op(rpc_pb2.RequestOp(request_put=request))

    @staticmethod
    def delete(key: KeyLike, *, prefix: bool = False, prev_kv: bool = False) -> Op:
        raw = as_bytes(key)
        request = rpc_pb2.DeleteRangeRequest(
            key=raw, range_end=prefix_range_end(raw) if prefix else b"", prev_kv=prev_kv
        )
        return Op(rpc_pb2.RequestOp(request_delete_range=request))

    @staticmethod
    def txn(compares: list[Compare], success: list[Op], failure: list[Op]) -> Op:
        request = build_txn_request(compares, success, failure)
        return Op(rpc_pb2.RequestOp(request_txn=request))


def reads_only(request: rpc_pb2.TxnRequest) -> bool:
    """Whether a transaction only reads (whichever branch runs): such a transaction changes
    nothing, so a failure of unknown outcome is harmless and it may be sent again."""
    for branch in (request.success, request.failure):
        for op in branch:  # a write, usually the first op, settles it
            if op.WhichOneof("request") != "request_range":
                return False
    return True


def build_txn_request(
    compares: list[Compare] | tuple[Compare, ...],
    success: list[Op] | tuple[Op, ...],
    failure: list[Op] | tuple[Op, ...],
) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[c.to_proto() for c in compares],
        success=[op.message for op in success],
        failure=[op.message for op in failure],
    )
