"""The sans-I/O JSON-RPC 2.0 peer.

Theory of operation
-------------------
A :class:`Peer` is one end of a bidirectional JSON-RPC conversation. It does no I/O and
knows no method. Bytes go in through :meth:`Peer.receive`, which returns what they mean
as events (:class:`Request`, :class:`Notification`, :class:`Response`, :class:`Invalid`,
:class:`Dropped`, or a :class:`Batch` of them); outgoing messages come out of the
``encode_*`` functions and :meth:`Peer.request` as bytes, for the caller to send.

Both directions carry requests. Our own requests get increasing integer ids and wait in
``pending``, the one table of them (the server's session and the Python client keep no
other), until the peer answers; a response is matched by id and popped, and the
request's waiter, if it gave one, gets it. An unknown or duplicate response id becomes
:class:`Dropped` (logged, never raised). How long to wait is the caller's business: it
calls :meth:`Peer.forget` when it gives up, so a late answer is dropped too. When the
connection ends, :meth:`Peer.fail_pending` gives every waiter the same outcome
(:class:`~yamabiko.protocol.errors.ConnectionClosed`) and empties the table.

Batches follow the spec to the letter: an empty array is one -32600; each bad element
gets its own error; the caller sends the responses of a batch as one array, and nothing
at all when every element was a notification.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec
from msgspec import UNSET, Raw

from yamabiko.protocol.errors import INVALID_REQUEST, PARSE_ERROR
from yamabiko.protocol.messages import (
    JSONRPC_VERSION,
    Batch,
    Dropped,
    Envelope,
    IdOnly,
    Incoming,
    Invalid,
    Notification,
    Request,
    Response,
    encode_request,
)

EMPTY_PARAMS: Final = b"{}"
DEFAULT_MAX_BATCH: Final = 100

_decode_message = msgspec.json.Decoder(Envelope | list[Raw]).decode
_decode_envelope = msgspec.json.Decoder(Envelope).decode
_decode_id_only = msgspec.json.Decoder(IdOnly).decode


class Waiter(Protocol):
    """What waits for the answer to one of our requests (an ``asyncio.Future`` is one;
    this package does no I/O and names no event loop)."""

    def done(self) -> bool: ...

    def set_result(self, result: Response, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class Outgoing:
    """One of our requests awaiting an answer: its method, and who waits for it."""

    __slots__ = ("method", "waiter")

    def __init__(self, method: str, waiter: Waiter | None) -> None:
        self.method = method
        self.waiter = waiter


class Peer:
    """One end of a JSON-RPC 2.0 conversation, without I/O."""

    __slots__ = ("_next_id", "max_batch", "pending")

    def __init__(self, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.max_batch = max_batch
        self.pending: dict[int | str, Outgoing] = {}
        """Our requests awaiting an answer, by id."""
        self._next_id = 0

    # Outgoing

    def request(self, method: str, params: Any, waiter: Waiter | None = None) -> tuple[int, bytes]:
        """Make a request of ours: its id and the bytes to send. ``waiter`` gets the
        :class:`Response` when it comes, or the outcome of :meth:`fail_pending`."""
        self._next_id += 1
        request_id = self._next_id
        self.pending[request_id] = Outgoing(method, waiter)
        return request_id, encode_request(request_id, method, params)

    def forget(self, request_id: int | str) -> None:
        """Stop waiting for ``request_id`` (timed out or cancelled): a late answer drops."""
        self.pending.pop(request_id, None)

    def fail_pending(self, outcome: BaseException) -> int:
        """End every request of ours still waiting with ``outcome`` (the connection is
        gone); returns how many there were. Later answers are dropped."""
        pending, self.pending = self.pending, {}
        for entry in pending.values():
            waiter = entry.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(outcome)
        return len(pending)

    # Incoming

    def receive(self, data: bytes | str) -> Incoming | Batch:
        """What one WebSocket message means."""
        if not isinstance(data, str) and not data.isascii():
            # The decoder checks UTF-8 only in what it decodes, not inside the raw params
            # it keeps for later: check the whole message once, here (a fast C pass).
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                return Invalid(None, PARSE_ERROR, _parse_message(exc))
        try:
            message = _decode_message(data)
        except msgspec.ValidationError as exc:
            if data.lstrip()[:1] in (b"{", "{"):
                return _invalid_envelope(data, exc)
            # Valid JSON, but neither an object nor an array: not a request at all.
            return Invalid(None, INVALID_REQUEST, "invalid request: expected an object or array")
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            return Invalid(None, PARSE_ERROR, _parse_message(exc))
        if type(message) is Envelope:
            return self._classify(message, data)
        assert isinstance(message, list)
        if not message:
            return Invalid(None, INVALID_REQUEST, "invalid request: empty batch")
        if len(message) > self.max_batch:
            return Invalid(
                None,
                INVALID_REQUEST,
                f"invalid request: batch of {len(message)} messages exceeds {self.max_batch}",
            )
        return Batch([self._receive_element(raw) for raw in message])

    def _receive_element(self, raw: Raw) -> Incoming:
        data = bytes(raw)
        try:
            envelope = _decode_envelope(data)
        except msgspec.ValidationError as exc:
            return _invalid_envelope(data, exc)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            # Raw elements of a batch are not UTF-8 checked until decoded here.
            return Invalid(None, PARSE_ERROR, _parse_message(exc))
        return self._classify(envelope, data)

    def _classify(self, env: Envelope, data: bytes | str) -> Incoming:
        method = env.method
        request_id = env.id
        if env.jsonrpc != JSONRPC_VERSION:
            salvaged = None if request_id is UNSET else request_id
            return Invalid(salvaged, INVALID_REQUEST, 'invalid request: jsonrpc must be "2.0"')
        if method is not UNSET:
            if env.result is not UNSET or env.error is not UNSET:
                return _invalid(request_id, "a request cannot carry result or error")
            params = env.params
            if params is UNSET:
                params_json = EMPTY_PARAMS
            else:
                params_json = bytes(params)
                first = params_json[:1]
                if first != b"{" and first != b"[":
                    return _invalid(request_id, "params must be an object or an array")
            if request_id is UNSET:
                return Notification(method, params_json)
            return Request(request_id, method, params_json)
        # A response to one of ours.
        if request_id is UNSET or (env.result is UNSET) == (env.error is UNSET):
            if env.error is not UNSET and request_id in (UNSET, None):
                return Dropped("error response without id", None)
            return _invalid(request_id, "a message needs method, or id with result or error")
        if request_id is None:
            return Dropped("response with null id", None)
        entry = self.pending.pop(request_id, None)
        if entry is None:
            return Dropped("response to an unknown or already answered id", request_id)
        result = env.result
        error = env.error
        response = Response(
            request_id,
            entry.method,
            None if result is UNSET else bytes(result),
            None if error is UNSET else error,
        )
        waiter = entry.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        return response


def _invalid(request_id: Any, reason: str) -> Invalid:
    rid = None if request_id is UNSET else request_id
    return Invalid(rid, INVALID_REQUEST, f"invalid request: {reason}")


def _invalid_envelope(data: bytes | str, exc: msgspec.ValidationError) -> Invalid:
    """An object that is not a valid envelope: answer with its id when the id is usable."""
    try:
        salvaged = _decode_id_only(data).id
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        salvaged = None
    if type(salvaged) is not int and type(salvaged) is not str:
        salvaged = None
    return Invalid(salvaged, INVALID_REQUEST, f"invalid request: {exc}")


def _parse_message(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "parse error: message is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "parse error: message nested too deeply"
    return f"parse error: {exc}"
