"""The encoders: what they write is exactly the JSON-RPC message meant, and reads back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from yamabiko.protocol import errors
from yamabiko.protocol.messages import (
    Request,
    Response,
    encode,
    encode_batch,
    encode_error,
    encode_id,
    encode_notification,
    encode_notification_raw,
    encode_request,
    encode_result,
    encode_result_raw,
    notification_head,
)
from yamabiko.protocol.peer import Peer
from yamabiko.schema.session import Implementation, InitializeResult, Limits

AWKWARD_IDS: list[int | str] = [
    0,
    -1,
    2**63,
    "",
    "plain",
    'with "quotes"',
    "back\\slash",
    "new\nline\ttab\x00nul",
    "é ü 漢字 😀",
    "\u2028\u2029",
    "</script>",
]


@pytest.mark.parametrize("request_id", [*AWKWARD_IDS, None])
def test_result_round_trips(request_id: int | str | None) -> None:
    data = encode_result(request_id, {"a": [1, 2.5, None, "é"]})
    assert json.loads(data) == {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": {"a": [1, 2.5, None, "é"]},
    }


def test_result_of_a_struct_uses_wire_names() -> None:
    result = InitializeResult(
        protocol_version="yamabiko/1",
        server_info=Implementation(name="yamabiko", version="1"),
        capabilities={},
        session_id="s",
        limits=Limits(
            max_message_bytes=1,
            max_running_requests=2,
            max_subscriptions=3,
            outbound_queue_bytes=4,
            ping_interval_ms=5,
            requests_per_second=6.0,
            request_burst=7,
            max_batch_items=8,
            max_audio_streams=9,
            max_documents=10,
        ),
    )
    decoded = json.loads(encode_result(1, result))["result"]
    assert decoded["protocolVersion"] == "yamabiko/1"
    assert decoded["limits"]["maxRunningRequests"] == 2
    assert "instructions" not in decoded  # None defaults are omitted


def test_result_raw_embeds_the_given_json_verbatim() -> None:
    assert encode_result_raw(7, b'{"x":1}') == b'{"jsonrpc":"2.0","id":7,"result":{"x":1}}'


@pytest.mark.parametrize("request_id", [*AWKWARD_IDS, None])
def test_error_round_trips_without_data(request_id: int | str | None) -> None:
    data = encode_error(request_id, errors.METHOD_NOT_FOUND, "method not found: x")
    assert json.loads(data) == {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": -32601, "message": "method not found: x"},
    }


@pytest.mark.parametrize("data", [{"retryAfterMs": 100}, [1, "two"], "text", 0, False])
def test_error_round_trips_with_data(data: Any) -> None:
    encoded = encode_error("r", errors.RATE_LIMITED, "rate limited", data)
    assert json.loads(encoded) == {
        "jsonrpc": "2.0",
        "id": "r",
        "error": {"code": -32029, "message": "rate limited", "data": data},
    }


def test_error_message_with_quotes_and_unicode_escapes() -> None:
    message = 'bad "field" at $.a\\b \u2028 😀'
    assert json.loads(encode_error(1, -32602, message))["error"]["message"] == message


def test_notification_round_trips() -> None:
    params = {"expiresAt": "2030-01-01T00:00:00Z", "n": [1, {"k": None}]}
    assert json.loads(encode_notification("session/expiring", params)) == {
        "jsonrpc": "2.0",
        "method": "session/expiring",
        "params": params,
    }


def test_notification_of_a_datetime_is_rfc3339() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    decoded = json.loads(encode_notification("m", {"at": when}))
    assert datetime.fromisoformat(decoded["params"]["at"]) == when


def test_notification_method_is_escaped() -> None:
    method = 'odd "method"\\é'
    assert json.loads(encode_notification(method, {}))["method"] == method
    assert json.loads(encode_notification_raw(method, b"[]")) == {
        "jsonrpc": "2.0",
        "method": method,
        "params": [],
    }
    assert notification_head(method) + b"{}}" == encode_notification(method, {})


@pytest.mark.parametrize("request_id", AWKWARD_IDS)
def test_request_round_trips(request_id: int | str) -> None:
    data = encode_request(request_id, "client/applyActions", {"actions": [{"op": "x"}]})
    assert json.loads(data) == {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "client/applyActions",
        "params": {"actions": [{"op": "x"}]},
    }


@pytest.mark.parametrize("request_id", AWKWARD_IDS)
def test_our_peer_reads_back_what_we_encode(request_id: int | str) -> None:
    """What one peer encodes, another decodes to the same id: ids survive both ways."""
    event = Peer().receive(encode_request(request_id, "m", [1]))
    assert event == Request(request_id, "m", b"[1]")
    asker = Peer()
    ours, _ = asker.request("m", {})
    assert asker.receive(encode_result(ours, {"ok": True})) == Response(
        ours, "m", b'{"ok":true}', None
    )


def test_encode_id() -> None:
    assert encode_id(None) == b"null"
    assert encode_id(12) == b"12"
    assert encode_id(-3) == b"-3"
    assert json.loads(encode_id('a"b')) == 'a"b'


def test_batch_is_an_array_of_its_parts_in_order() -> None:
    parts = [
        encode_result(1, {}),
        encode_error(None, errors.INVALID_REQUEST, "invalid request"),
        encode_error("x", errors.REQUEST_CANCELLED, "request cancelled"),
    ]
    assert json.loads(encode_batch(parts)) == [
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}},
        {"jsonrpc": "2.0", "id": "x", "error": {"code": -32800, "message": "request cancelled"}},
    ]
    assert json.loads(encode_batch(parts[:1])) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


def test_shared_encoder() -> None:
    assert json.loads(encode({"a": (1, 2)})) == {"a": [1, 2]}


def test_error_classes_carry_their_wire_codes() -> None:
    assert errors.RateLimited(250).data == {"retryAfterMs": 250}
    assert errors.RateLimited(-5).data == {"retryAfterMs": 0}
    remote = errors.RemoteError(-1, "client says no", {"why": 1})
    assert errors.wire_code(remote) == -1
    assert errors.wire_code(errors.NotInitialized()) == -32002
    assert errors.NotInitialized().message == "session not initialized: send initialize first"
