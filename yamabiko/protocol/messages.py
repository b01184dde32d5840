"""JSON-RPC 2.0 messages: the wire envelope, the events a peer sees, the encoders.

Decoding is two-phase (docs/protocol.md, Requests): the envelope keeps ``params`` and
``result`` as :class:`msgspec.Raw`, so an unknown method or bad params never loses the
request id; the method's own params type is decoded later, by whoever knows it.

Encoding builds the envelope around already-encoded JSON by concatenation: the result
or params is the only part that needs a real encoder, and the hot path (``ping``) then
costs one small ``encode`` call.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

RequestId = int | str | None
"""A request id as the peer sent it. ``None`` only where the spec answers ``id: null``."""

JSONRPC_VERSION: Final = "2.0"


class ErrorObject(Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class Envelope(Struct, omit_defaults=True):
    """Every JSON-RPC message, before we know which kind it is.

    ``id`` is UNSET when absent (a notification) and None when the peer sent null.
    """

    jsonrpc: str | UnsetType = UNSET
    method: str | UnsetType = UNSET
    params: Raw | UnsetType = UNSET
    id: int | str | UnsetType | None = UNSET
    result: Raw | UnsetType = UNSET
    error: ErrorObject | UnsetType = UNSET


class IdOnly(Struct):
    """Used to salvage the id of a message whose envelope failed validation."""

    id: Any = None


# Incoming events. The peer turns bytes into these; the session acts on them.


class Request(Struct):
    id: int | str | None
    method: str
    params: bytes
    """The raw JSON of params; ``b"{}"`` when the peer sent none."""


class Notification(Struct):
    method: str
    params: bytes


class Response(Struct):
    """A response to one of our own requests."""

    id: int | str
    method: str
    """The method of the request it answers."""
    result: bytes | None
    error: ErrorObject | None


class Invalid(Struct):
    """A message we must answer with an error (id None when it was unreadable)."""

    id: int | str | None
    code: int
    message: str


class Dropped(Struct):
    """Something to log and drop: a response nobody waits for, an error with no id."""

    reason: str
    id: int | str | None = None


Incoming = Request | Notification | Response | Invalid | Dropped


class Batch(Struct):
    items: list[Incoming]


_encoder = msgspec.json.Encoder()
encode = _encoder.encode
"""Encode any msgspec-supported value to JSON bytes (the one shared encoder)."""

_RESULT_HEAD: Final = b'{"jsonrpc":"2.0","id":'
_NULL: Final = b"null"


def encode_id(request_id: RequestId) -> bytes:
    if request_id is None:
        return _NULL
    if type(request_id) is int:
        return str(request_id).encode()
    return _encoder.encode(request_id)


def encode_result_raw(request_id: RequestId, result_json: bytes) -> bytes:
    """A success response around an already-encoded result."""
    return b"".join((_RESULT_HEAD, encode_id(request_id), b',"result":', result_json, b"}"))


def encode_result(request_id: RequestId, result: Any) -> bytes:
    return encode_result_raw(request_id, _encoder.encode(result))


def encode_error(request_id: RequestId, code: int, message: str, data: Any = None) -> bytes:
    error = ErrorObject(code, message, data)
    return b"".join(
        (_RESULT_HEAD, encode_id(request_id), b',"error":', _encoder.encode(error), b"}")
    )


def notification_head(method: str) -> bytes:
    """The bytes before params in a notification of ``method``; callers may cache it."""
    return b'{"jsonrpc":"2.0","method":' + _encoder.encode(method) + b',"params":'


def encode_notification_raw(method: str, params_json: bytes) -> bytes:
    return b"".join((notification_head(method), params_json, b"}"))


def encode_notification(method: str, params: Any) -> bytes:
    return encode_notification_raw(method, _encoder.encode(params))


def encode_request(request_id: int | str, method: str, params: Any) -> bytes:
    return b"".join(
        (
            b'{"jsonrpc":"2.0","id":',
            encode_id(request_id),
            b',"method":',
            _encoder.encode(method),
            b',"params":',
            _encoder.encode(params),
            b"}",
        )
    )


def encode_batch(parts: list[bytes]) -> bytes:
    return b"[" + b",".join(parts) + b"]"
