"""The sans-I/O peer: every branch of :meth:`Peer.receive`, with no event loop.

Each test feeds the bytes a client could send and checks the event the session would
act on: what it answers (code, id) or that it drops the message.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from yamabiko.protocol.errors import INVALID_REQUEST, PARSE_ERROR, ConnectionClosed
from yamabiko.protocol.messages import (
    Batch,
    Dropped,
    ErrorObject,
    Invalid,
    Notification,
    Request,
    Response,
)
from yamabiko.protocol.peer import DEFAULT_MAX_BATCH, Peer

EVENT_TYPES = (Request, Notification, Response, Invalid, Dropped)


def msg(**fields: Any) -> bytes:
    """A JSON-RPC message with ``jsonrpc: "2.0"`` unless the test says otherwise."""
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()


# Single messages


@pytest.mark.parametrize("request_id", [1, 0, -7, 2**70, "abc", "", "é\"\\'"])
def test_request_keeps_its_id_method_and_params(request_id: int | str) -> None:
    event = Peer().receive(msg(id=request_id, method="chat/send", params={"text": "hi"}))
    assert event == Request(request_id, "chat/send", b'{"text": "hi"}')


def test_request_with_null_id_is_a_request_with_id_none() -> None:
    # The session, not the peer, refuses id null (it is reserved for unreadable requests).
    assert Peer().receive(msg(id=None, method="ping")) == Request(None, "ping", b"{}")


def test_absent_params_read_as_empty_object() -> None:
    assert Peer().receive(msg(id=1, method="ping")) == Request(1, "ping", b"{}")
    assert Peer().receive(msg(method="n")) == Notification("n", b"{}")


def test_positional_params_are_kept_raw() -> None:
    event = Peer().receive(b'{"jsonrpc":"2.0","id":3,"method":"m","params":[1, "two", {}]}')
    assert event == Request(3, "m", b'[1, "two", {}]')


@pytest.mark.parametrize("params", [3, "text", True, None, 1.5])
def test_scalar_params_are_invalid_and_keep_the_id(params: Any) -> None:
    event = Peer().receive(msg(id="r1", method="m", params=params))
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == ("r1", INVALID_REQUEST)
    assert "params" in event.message


def test_scalar_params_on_a_notification_are_invalid_with_no_id() -> None:
    event = Peer().receive(msg(method="n", params=5))
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, INVALID_REQUEST)


def test_notification_has_method_and_params() -> None:
    event = Peer().receive(msg(method="notifications/cancelled", params={"requestId": 4}))
    assert event == Notification("notifications/cancelled", b'{"requestId": 4}')


def test_str_input_is_read_like_bytes() -> None:
    text = '{"jsonrpc":"2.0","id":"é","method":"ping","params":{"k":"ü"}}'
    assert Peer().receive(text) == Request("é", "ping", '{"k":"ü"}'.encode())
    assert Peer().receive("[]") == Invalid(None, INVALID_REQUEST, "invalid request: empty batch")
    event = Peer().receive("{")
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, PARSE_ERROR)


def test_whitespace_around_the_message_is_allowed() -> None:
    assert Peer().receive(b' \n {"jsonrpc":"2.0","id":1,"method":"ping"} \t') == Request(
        1, "ping", b"{}"
    )


# The jsonrpc member


@pytest.mark.parametrize(
    "fields",
    [
        {"id": 7, "method": "m"},  # missing
        {"jsonrpc": "1.0", "id": 7, "method": "m"},
        {"jsonrpc": 2.0, "id": 7, "method": "m"},  # right value, wrong type
        {"jsonrpc": None, "id": 7, "method": "m"},
    ],
)
def test_missing_or_wrong_jsonrpc_is_invalid_and_keeps_the_id(fields: dict[str, Any]) -> None:
    event = Peer().receive(json.dumps(fields).encode())
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (7, INVALID_REQUEST)


def test_wrong_jsonrpc_keeps_a_string_id() -> None:
    event = Peer().receive(b'{"jsonrpc":"1.0","id":"abc","method":"m"}')
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == ("abc", INVALID_REQUEST)


def test_wrong_jsonrpc_on_a_notification_answers_with_id_none() -> None:
    event = Peer().receive(b'{"method":"m"}')
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, INVALID_REQUEST)


# Ids


@pytest.mark.parametrize("bad_id", [1.5, {"a": 1}, [1], True, False])
def test_unusable_id_is_invalid_with_id_none(bad_id: Any) -> None:
    event = Peer().receive(msg(id=bad_id, method="m"))
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, INVALID_REQUEST)


def test_wrong_method_type_keeps_the_usable_id() -> None:
    event = Peer().receive(msg(id=9, method=5))
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (9, INVALID_REQUEST)
    assert "$.method" in event.message


def test_request_carrying_result_or_error_is_invalid() -> None:
    for extra in ({"result": 1}, {"error": {"code": 1, "message": "x"}}):
        event = Peer().receive(msg(id=2, method="m", **extra))
        assert isinstance(event, Invalid)
        assert (event.id, event.code) == (2, INVALID_REQUEST)
        assert "cannot carry result or error" in event.message


def test_message_with_neither_method_nor_result_is_invalid() -> None:
    event = Peer().receive(msg(id=5))
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (5, INVALID_REQUEST)


def test_response_with_both_result_and_error_is_invalid() -> None:
    peer = Peer()
    request_id, _ = peer.request("client/ask", {})
    event = peer.receive(msg(id=request_id, result=1, error={"code": 1, "message": "x"}))
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (request_id, INVALID_REQUEST)


@pytest.mark.parametrize("value", [3, -1.5, "s", True, None])
def test_valid_json_that_is_neither_object_nor_array_is_invalid_request(value: Any) -> None:
    event = Peer().receive(json.dumps(value).encode())
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, INVALID_REQUEST)


# Responses to our own requests


def test_response_is_matched_to_our_request_and_popped() -> None:
    peer = Peer()
    request_id, _ = peer.request("client/applyActions", {"actions": []})
    assert {rid: e.method for rid, e in peer.pending.items()} == {request_id: "client/applyActions"}
    answer = msg(id=request_id, result={"applied": 2})
    event = peer.receive(answer)
    assert event == Response(request_id, "client/applyActions", b'{"applied": 2}', None)
    assert peer.pending == {}
    # The same answer again: nobody waits for it any more.
    assert peer.receive(answer) == Dropped(
        "response to an unknown or already answered id", request_id
    )


def test_error_response_is_matched_with_its_error_object() -> None:
    peer = Peer()
    request_id, _ = peer.request("sampling/createMessage", {})
    event = peer.receive(msg(id=request_id, error={"code": -1, "message": "no", "data": [1]}))
    assert event == Response(request_id, "sampling/createMessage", None, ErrorObject(-1, "no", [1]))


def test_null_result_is_a_result() -> None:
    peer = Peer()
    request_id, _ = peer.request("m", {})
    assert peer.receive(msg(id=request_id, result=None)) == Response(request_id, "m", b"null", None)


def test_response_to_unknown_id_is_dropped() -> None:
    peer = Peer()
    peer.request("m", {})
    assert peer.receive(msg(id=99, result={})) == Dropped(
        "response to an unknown or already answered id", 99
    )
    assert list(peer.pending) == [1]


def test_response_after_forget_is_dropped() -> None:
    peer = Peer()
    request_id, _ = peer.request("m", {})
    peer.forget(request_id)
    peer.forget(request_id)  # forgetting twice is harmless
    event = peer.receive(msg(id=request_id, result={}))
    assert isinstance(event, Dropped)
    assert event.id == request_id


class _Waiter:
    """A waiter without an event loop: records what it was given."""

    def __init__(self) -> None:
        self.outcome: object = None

    def done(self) -> bool:
        return self.outcome is not None

    def set_result(self, result: Response, /) -> None:
        self.outcome = result

    def set_exception(self, exception: BaseException, /) -> None:
        self.outcome = exception


def test_the_waiter_of_a_request_gets_its_response() -> None:
    peer = Peer()
    waiter = _Waiter()
    request_id, _ = peer.request("client/ask", {}, waiter)
    event = peer.receive(msg(id=request_id, result={"ok": True}))
    assert waiter.outcome == event == Response(request_id, "client/ask", b'{"ok": true}', None)


def test_fail_pending_gives_every_waiter_the_outcome_and_empties_the_table() -> None:
    peer = Peer()
    waiters = [_Waiter(), _Waiter()]
    ids = [peer.request("m", {}, w)[0] for w in waiters]
    peer.request("no waiter", {})
    closed = ConnectionClosed(1001, "going away", local=False)
    assert peer.fail_pending(closed) == 3
    assert [w.outcome for w in waiters] == [closed, closed]
    assert peer.pending == {}
    # An answer arriving after the close finds nobody.
    assert isinstance(peer.receive(msg(id=ids[0], result={})), Dropped)


def test_string_id_response_does_not_match_an_int_request() -> None:
    peer = Peer()
    request_id, _ = peer.request("m", {})
    assert isinstance(peer.receive(msg(id=str(request_id), result={})), Dropped)
    assert request_id in peer.pending


@pytest.mark.parametrize(
    "fields",
    [
        {"id": None, "error": {"code": -32700, "message": "parse error"}},
        {"error": {"code": -32600, "message": "invalid"}},
        {"id": None, "result": {}},
    ],
)
def test_error_or_result_without_id_is_dropped_never_answered(fields: dict[str, Any]) -> None:
    # Answering an error with an error could ping-pong forever between two peers.
    event = Peer().receive(msg(**fields))
    assert isinstance(event, Dropped)
    assert event.id is None


def test_our_request_ids_increase_and_encode_the_request() -> None:
    peer = Peer()
    first, data = peer.request("client/ask", {"q": 1})
    second, _ = peer.request("client/ask", {"q": 2})
    assert second > first
    assert json.loads(data) == {
        "jsonrpc": "2.0",
        "id": first,
        "method": "client/ask",
        "params": {"q": 1},
    }


# Batches


def test_empty_batch_is_one_invalid() -> None:
    event = Peer().receive(b"[]")
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, INVALID_REQUEST)


def test_batch_over_max_is_one_invalid() -> None:
    peer = Peer(max_batch=3)
    items = [json.loads(msg(id=i, method="ping")) for i in range(4)]
    event = peer.receive(json.dumps(items).encode())
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, INVALID_REQUEST)
    assert "4" in event.message
    assert "3" in event.message
    # At the limit it is accepted.
    batch = peer.receive(json.dumps(items[:3]).encode())
    assert isinstance(batch, Batch)
    assert [item.id for item in batch.items] == [0, 1, 2]  # type: ignore[union-attr]


def test_default_max_batch_is_the_announced_one() -> None:
    items = [json.loads(msg(method="n"))] * (DEFAULT_MAX_BATCH + 1)
    assert isinstance(Peer().receive(json.dumps(items).encode()), Invalid)
    assert isinstance(Peer().receive(json.dumps(items[:-1]).encode()), Batch)


def test_batch_classifies_each_element() -> None:
    peer = Peer()
    ours, _ = peer.request("client/ask", {})
    batch = peer.receive(
        b"["
        b'{"jsonrpc":"2.0","id":1,"method":"ping"},'
        b'{"jsonrpc":"2.0","method":"notifications/initialized"},'
        b"1,"
        b'{"jsonrpc":"1.0","id":"x","method":"ping"},'
        b'{"jsonrpc":"2.0","id":2.5,"method":"ping"},'
        b'{"jsonrpc":"2.0","id":"p","method":"m","params":7},'
        b'{"jsonrpc":"2.0","id":' + str(ours).encode() + b',"result":{"ok":true}},'
        b'{"jsonrpc":"2.0","id":12345,"result":{}},'
        b'{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}},'
        b"[],"
        b'[{"jsonrpc":"2.0","id":3,"method":"ping"}]'
        b"]"
    )
    assert isinstance(batch, Batch)
    items = batch.items
    assert len(items) == 11
    assert items[0] == Request(1, "ping", b"{}")
    assert items[1] == Notification("notifications/initialized", b"{}")
    kinds = [(type(i).__name__, getattr(i, "id", None), getattr(i, "code", None)) for i in items]
    assert kinds[2:6] == [
        ("Invalid", None, INVALID_REQUEST),  # a number is not a request
        ("Invalid", "x", INVALID_REQUEST),  # wrong jsonrpc keeps its id
        ("Invalid", None, INVALID_REQUEST),  # a float id is unusable
        ("Invalid", "p", INVALID_REQUEST),  # scalar params
    ]
    assert items[6] == Response(ours, "client/ask", b'{"ok":true}', None)
    assert items[7] == Dropped("response to an unknown or already answered id", 12345)
    assert isinstance(items[8], Dropped)
    # Nested arrays are not requests, and their contents are not run.
    assert kinds[9:] == [("Invalid", None, INVALID_REQUEST)] * 2
    assert peer.pending == {}


def test_batch_of_only_notifications_yields_only_notifications() -> None:
    batch = Peer().receive(b'[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]')
    assert batch == Batch([Notification("a", b"{}"), Notification("b", b"{}")])


def test_batch_as_str() -> None:
    batch = Peer().receive('[{"jsonrpc":"2.0","id":"é","method":"ping"}]')
    assert batch == Batch([Request("é", "ping", b"{}")])


# Parse errors: always -32700 with id None


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b"",
        b"   ",
        b"not json",
        b'{"jsonrpc":"2.0","id":1,"method":"ping"',
        b'{"jsonrpc":"2.0","id":1,"method":"ping"} trailing',
        b'{"jsonrpc":"2.0","id":1,"method":"ping",}',
        b"[1,]",
        b"\xff",
        b'{"jsonrpc":"2.0","id":1,"method":"\\ud800"}',  # a lone surrogate escape
    ],
)
def test_not_json_is_a_parse_error_with_id_none(data: bytes) -> None:
    event = Peer().receive(data)
    assert isinstance(event, Invalid)
    assert (event.id, event.code) == (None, PARSE_ERROR)
    assert event.message.startswith("parse error")


@pytest.mark.parametrize(
    "data",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"\xff"}',
        b'{"jsonrpc":"2.0","id":"\xfe\xff","method":"ping"}',
        b'{"jsonrpc":"2.0","id":1,"method":"caf\xc3"}',  # truncated sequence
        b'{"jsonrpc":"2.0","id":1,"method":"\xed\xa0\x80"}',  # an encoded surrogate
    ],
)
def test_invalid_utf8_in_a_string_is_a_parse_error(data: bytes) -> None:
    assert Peer().receive(data) == Invalid(
        None, PARSE_ERROR, "parse error: message is not valid UTF-8"
    )


def test_invalid_utf8_inside_a_batch_element_is_a_parse_error() -> None:
    event = Peer().receive(b'[{"jsonrpc":"2.0","id":1,"method":"\xff"}]')
    # Either shape answers the client; neither raises.
    errors = event.items if isinstance(event, Batch) else [event]
    assert errors == [Invalid(None, PARSE_ERROR, "parse error: message is not valid UTF-8")]


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        # Deep inside params, which the envelope keeps raw: still refused as a whole.
        b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"x":'
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}}",
        # Deep inside one element of a batch.
        b'[{"jsonrpc":"2.0","id":1,"method":"m","params":[' + b"[" * 50_000 + b"]" * 50_001 + b"}]",
    ],
)
def test_deep_nesting_is_a_parse_error_not_a_crash(data: bytes) -> None:
    assert Peer().receive(data) == Invalid(
        None, PARSE_ERROR, "parse error: message nested too deeply"
    )


def test_peer_keeps_working_after_garbage() -> None:
    peer = Peer()
    request_id, _ = peer.request("m", {})
    for garbage in (b"{", b"[" * 100_000, b"\xff", b"[]", b"3"):
        assert isinstance(peer.receive(garbage), Invalid)
    assert isinstance(peer.receive(msg(id=request_id, result={})), Response)


# A property: whatever JSON arrives, the peer answers with an event and never raises.


def _random_scalar(rng: random.Random) -> Any:
    choice = rng.randrange(9)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randint(-(2**64), 2**64)
    if choice == 3:
        return rng.uniform(-1e9, 1e9)
    if choice == 4:
        return rng.choice(["2.0", "1.0", "", "ping", "initialize"])
    if choice == 5:
        return "".join(chr(rng.choice([0x22, 0x5C, 0x0A, 0xE9, 0x2028, 0x1F600])) for _ in range(3))
    if choice == 6:
        return rng.randint(0, 5)
    if choice == 7:
        return "\ud800"  # a lone surrogate: escaped on the wire
    return "".join(rng.choice("abc/_") for _ in range(rng.randrange(6)))


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return _random_scalar(rng)
    if roll < 0.6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["a", "b", "id", "x"]): _random_json(rng, depth + 1) for _ in range(3)}


def _random_envelope(rng: random.Random) -> dict[str, Any]:
    """An object shaped like JSON-RPC, each member present or not, right or wrong."""
    members: dict[str, Callable[[], Any]] = {
        "jsonrpc": lambda: rng.choice(["2.0", "2.0", "2.0", "1.0", 2, None]),
        "id": lambda: rng.choice([1, 2, "a", None, 1.5, {}, [], True, rng.randint(-9, 9)]),
        "method": lambda: rng.choice(["ping", "m/x", "", 5, None]),
        "params": lambda: rng.choice([{}, [], {"a": 1}, 3, "s", None, _random_json(rng)]),
        "result": lambda: _random_json(rng),
        "error": lambda: rng.choice(
            [
                {"code": 1, "message": "m"},
                {"code": "x"},
                None,
                5,
                {"code": 1, "message": "m", "data": {}},
            ]
        ),
    }
    return {name: make() for name, make in members.items() if rng.random() < 0.6}


def _check_event(event: object, sent: Any) -> None:
    assert isinstance(event, EVENT_TYPES), event
    if isinstance(event, Invalid):
        assert event.code in (INVALID_REQUEST, PARSE_ERROR)
        assert event.id is None or type(event.id) in (int, str)
        usable_id = isinstance(sent, dict) and type(sent.get("id")) in (int, str)
        # A lone surrogate escape makes msgspec refuse the whole text, id included.
        readable = "\\ud800" not in json.dumps(sent)
        if usable_id and readable and event.code == INVALID_REQUEST:
            assert event.id == sent["id"], "an Invalid lost a usable id"
    if isinstance(event, Request | Notification):
        assert event.params[:1] in (b"{", b"[")


def test_any_json_value_gets_an_event_and_never_raises() -> None:
    rng = random.Random(20240611)
    seen: set[type] = set()
    for case in range(2000):
        if case % 3 == 0:
            sent: Any = _random_json(rng)
        elif case % 3 == 1:
            sent = _random_envelope(rng)
        else:
            sent = [
                _random_envelope(rng) if rng.random() < 0.7 else _random_json(rng)
                for _ in range(rng.randrange(7))
            ]
        text = json.dumps(sent)
        for data in (text, text.encode()):
            peer = Peer(max_batch=5)
            peer.request("m", {})  # id 1 is pending, so some responses match
            event = peer.receive(data)
            seen.add(type(event))
            if isinstance(event, Batch):
                assert isinstance(sent, list)
                assert 1 <= len(sent) <= 5
                assert len(event.items) == len(sent)
                for element, item in zip(sent, event.items, strict=True):
                    seen.add(type(item))
                    _check_event(item, element)
            else:
                _check_event(event, sent)
    # The generator reaches every kind of event, so the property covers them all.
    assert seen == {Request, Notification, Response, Invalid, Dropped, Batch}
