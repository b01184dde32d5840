"""One session over an in-memory transport: lifecycle, admission, cancellation, batches,
server-to-client requests and shutdown, as the client sees them on the wire."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.sessions.memory import (
    INITIALIZE,
    WAIT,
    EchoResult,
    Gates,
    MemoryTransport,
    batch,
    cancel,
    make_session,
    notification,
    request,
    settle,
)
from yamabiko.protocol import errors
from yamabiko.schema.session import MCP_PROTOCOLS
from yamabiko.sessions.session import Session
from yamabiko.sessions.state import IllegalTransition, State


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
async def session(transport: MemoryTransport, gates: Gates) -> Session:
    """A session past ``initialize``, with nothing sent yet."""
    session = make_session(transport, gates)
    await session.receive(INITIALIZE)
    await transport.wait_frames(1)
    transport.frames.clear()
    return session


async def answers(transport: MemoryTransport, count: int) -> list[Any]:
    """The first ``count`` messages the client got, decoded (bounded wait)."""
    await transport.wait_frames(count)
    return transport.messages()[:count]


def error_of(message: dict[str, Any]) -> tuple[Any, int]:
    return message["id"], message["error"]["code"]


# Lifecycle


async def test_requests_before_initialize_are_not_initialized(
    transport: MemoryTransport, gates: Gates
) -> None:
    session = make_session(transport, gates)
    await session.receive(request(1, "test/gate", {"name": "a"}))
    await session.receive(request(2, "session/refresh", {"token": "t"}))
    await session.receive(request(3, "ping"))
    await session.receive(notification("test/note", {"mode": "ok"}))
    got = await answers(transport, 3)
    by_id = {m["id"]: m for m in got}
    assert error_of(by_id[1]) == (1, errors.NOT_INITIALIZED)
    assert by_id[1]["error"]["message"] == "session not initialized: send initialize first"
    assert error_of(by_id[2]) == (2, errors.NOT_INITIALIZED)
    assert by_id[3] == {"jsonrpc": "2.0", "id": 3, "result": {}}  # ping is served
    await settle()
    assert gates.entered == []
    assert gates.notes == []  # notifications before initialize are dropped
    assert len(transport.frames) == 3
    assert session.state is State.NEW


async def test_unknown_method_is_method_not_found_even_before_initialize(
    transport: MemoryTransport,
) -> None:
    session = make_session(transport)
    await session.receive(request("u", "no/such"))
    (got,) = await answers(transport, 1)
    assert error_of(got) == ("u", errors.METHOD_NOT_FOUND)
    assert "no/such" in got["error"]["message"]


async def test_initialize_result_announces_identity_and_limits(
    transport: MemoryTransport,
) -> None:
    session = make_session(
        transport,
        max_running_requests=3,
        max_message_bytes=5000,
        outbound_queue_bytes=70000,
        ping_interval_s=2.5,
        max_batch=7,
        server_version="9.9",
        instructions="be nice",
    )
    await session.receive(
        request(
            "init",
            "initialize",
            {
                "protocolVersion": "yamabiko/1",
                "clientInfo": {"name": "tester", "version": "1"},
                "capabilities": {"audio": {"binary": True}},
            },
        )
    )
    (got,) = await answers(transport, 1)
    assert got["id"] == "init"
    result = got["result"]
    assert result["protocolVersion"] == "yamabiko/1"
    assert result["serverInfo"] == {"name": "yamabiko", "version": "9.9"}
    assert result["sessionId"] == session.id
    assert result["instructions"] == "be nice"
    assert result["capabilities"]["experimental"]["yamabiko"]["version"] == "yamabiko/1"
    limits = result["limits"]
    assert limits["maxRunningRequests"] == 3
    assert limits["maxMessageBytes"] == 5000
    assert limits["outboundQueueBytes"] == 70000
    assert limits["pingIntervalMs"] == 2500
    assert limits["maxBatchItems"] == 7
    assert session.state is State.READY
    assert session.capabilities.audio.binary is True
    assert session.client_info.name == "tester"
    assert not session.client_ready
    await session.receive(notification("notifications/initialized"))
    assert session.client_ready


@pytest.mark.parametrize(
    ("subprotocol", "asked", "agreed"),
    [
        (None, "2025-06-18", "2025-06-18"),
        (None, "1999-01-01", "yamabiko/1"),
        ("mcp", "1999-01-01", MCP_PROTOCOLS[0]),
    ],
)
async def test_protocol_version_is_negotiated(
    transport: MemoryTransport, subprotocol: str | None, asked: str, agreed: str
) -> None:
    session = make_session(transport, subprotocol=subprotocol)
    await session.receive(request(1, "initialize", {"protocolVersion": asked}))
    (got,) = await answers(transport, 1)
    assert got["result"]["protocolVersion"] == agreed
    assert session.protocol_version == agreed


async def test_second_initialize_is_refused(session: Session, transport: MemoryTransport) -> None:
    await session.receive(INITIALIZE)
    (got,) = await answers(transport, 1)
    assert error_of(got) == (0, errors.INVALID_REQUEST)
    assert session.state is State.READY


async def test_initialize_with_bad_params_names_the_field(transport: MemoryTransport) -> None:
    session = make_session(transport)
    await session.receive(request(1, "initialize", {"protocolVersion": 5}))
    (got,) = await answers(transport, 1)
    assert error_of(got) == (1, errors.INVALID_PARAMS)
    assert "$.protocolVersion" in got["error"]["message"]
    assert session.state is State.NEW


async def test_handler_result_is_the_response(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(request(5, "test/gate", {"name": "a"}))
    await gates.wait_started("a")
    assert list(session.running) == [5]
    gates.open("a")
    (got,) = await answers(transport, 1)
    assert got == {"jsonrpc": "2.0", "id": 5, "result": {"name": "a"}}
    await settle()
    assert session.running == {}


async def test_unexpected_exception_is_internal_error_without_details(
    session: Session, transport: MemoryTransport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "yamabiko.session"):
        await session.receive(request(1, "test/gate", {"name": "raise"}))
        (got,) = await answers(transport, 1)
    assert error_of(got) == (1, errors.INTERNAL_ERROR)
    assert got["error"]["message"] == "internal error"
    assert "secret" not in json.dumps(got)
    error_id = got["error"]["data"]["errorId"]
    logged = [r for r in caplog.records if getattr(r, "errorId", None) == error_id]
    assert len(logged) == 1
    assert logged[0].exc_info is not None  # the traceback is in the log, not on the wire


async def test_malformed_messages_are_answered_and_the_session_goes_on(
    session: Session, transport: MemoryTransport
) -> None:
    await session.receive(b"{not json")
    await session.receive(b'{"jsonrpc":"2.0","id":"x","method":"ping","params":3}')
    await session.receive(b"[]")
    await session.receive(request(9, "ping"))
    got = await answers(transport, 4)
    assert [error_of(m) for m in got[:3]] == [
        (None, errors.PARSE_ERROR),
        ("x", errors.INVALID_REQUEST),
        (None, errors.INVALID_REQUEST),
    ]
    assert got[3] == {"jsonrpc": "2.0", "id": 9, "result": {}}
    assert session.stats.invalid_messages == 3


async def test_null_id_for_a_task_method_is_invalid(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(request(None, "test/gate", {"name": "a"}))
    (got,) = await answers(transport, 1)
    assert error_of(got) == (None, errors.INVALID_REQUEST)
    await settle()
    assert gates.entered == []


async def test_invalid_utf8_in_a_batch_is_answered_not_raised(
    session: Session, transport: MemoryTransport
) -> None:
    await session.receive(b'[{"jsonrpc":"2.0","id":1,"method":"\xff"}]')
    (got,) = await answers(transport, 1)
    errors_sent = got if isinstance(got, list) else [got]
    assert [error_of(m) for m in errors_sent] == [(None, errors.PARSE_ERROR)]


# Cancellation


async def test_cancel_before_the_first_step_answers_once(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(request(1, "test/gate", {"name": "a"}))
    # No yield in between: the task has not taken its first step.
    await session.receive(cancel(1))
    (got,) = await answers(transport, 1)
    assert got == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": errors.REQUEST_CANCELLED, "message": "request cancelled"},
    }
    await settle()
    assert gates.entered == []
    assert session.running == {}
    assert len(transport.frames) == 1


async def test_cancel_mid_run_answers_once(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(request("r", "test/gate", {"name": "a"}))
    await gates.wait_started("a")
    await session.receive(cancel("r"))
    (got,) = await answers(transport, 1)
    assert error_of(got) == ("r", errors.REQUEST_CANCELLED)
    assert gates.exited == ["a"]  # the handler was interrupted, its cleanup ran
    gates.open("a")
    await settle()
    assert session.running == {}
    assert len(transport.frames) == 1
    assert session.stats.methods["test/gate"].outcomes[2] == 1  # counted as cancelled


async def test_cancel_of_unknown_or_finished_request_is_ignored(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(cancel(404))
    await session.receive(request(1, "test/gate", {"name": "a"}))
    gates.open("a")
    await answers(transport, 1)
    await settle()
    await session.receive(cancel(1))
    await settle()
    assert transport.messages() == [{"jsonrpc": "2.0", "id": 1, "result": {"name": "a"}}]


async def test_cancel_leaves_other_requests_running(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(request(1, "test/gate", {"name": "a"}))
    await session.receive(request(2, "test/gate", {"name": "b"}))
    await gates.wait_started("b")
    await session.receive(cancel(1))
    (got,) = await answers(transport, 1)
    assert error_of(got) == (1, errors.REQUEST_CANCELLED)
    assert list(session.running) == [2]
    gates.open("b")
    got = await answers(transport, 2)
    assert got[1] == {"jsonrpc": "2.0", "id": 2, "result": {"name": "b"}}


async def test_cancel_after_the_response_went_out_adds_nothing(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(request(1, "test/gate", {"name": "a"}))
    await gates.wait_started("a")
    transport.block()  # the client reads slowly
    gates.open("a")
    await transport.wait_writing()  # the result is handed to the socket, not yet drained
    await session.receive(cancel(1))  # crosses the result on the wire
    transport.unblock()
    await settle()
    assert [m["id"] for m in transport.messages()] == [1]
    assert transport.messages()[0]["result"] == {"name": "a"}


async def test_cancel_inside_a_batch_is_answered_in_the_batch(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(
        batch(request(1, "test/gate", {"name": "a"}), request(2, "ping"), cancel(1))
    )
    (got,) = await answers(transport, 1)
    assert isinstance(got, list)
    assert sorted((m["id"], m.get("error", {}).get("code")) for m in got) == [
        (1, errors.REQUEST_CANCELLED),
        (2, None),
    ]
    await settle()
    assert len(transport.frames) == 1  # no -32800 on its own
    assert session.running == {}


async def test_cancel_during_a_running_batch_is_answered_in_the_batch(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    receiving = asyncio.create_task(
        session.receive(
            batch(request(1, "test/gate", {"name": "a"}), request(2, "test/gate", {"name": "b"}))
        )
    )
    await gates.wait_started("a")
    await gates.wait_started("b")
    await session.receive(cancel(1))
    gates.open("b")
    await asyncio.wait_for(receiving, WAIT)
    (got,) = await answers(transport, 1)
    assert got == [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {"code": errors.REQUEST_CANCELLED, "message": "request cancelled"},
        },
        {"jsonrpc": "2.0", "id": 2, "result": {"name": "b"}},
    ]
    await settle()
    assert len(transport.frames) == 1
    assert session.running == {}


async def test_a_slow_batch_does_not_hold_up_the_next_message(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    receiving = asyncio.create_task(
        session.receive(batch(request(1, "test/gate", {"name": "a"}), request(2, "ping")))
    )
    await gates.wait_started("a")
    await settle()
    try:
        # The server's read loop awaits receive() before reading the next message.
        assert receiving.done()
    finally:
        gates.open("a")
        await asyncio.wait_for(receiving, WAIT)


# Admission


async def test_max_running_requests_is_rate_limited_with_retry_hint(
    transport: MemoryTransport, gates: Gates
) -> None:
    session = make_session(transport, gates, max_running_requests=2)
    await session.receive(INITIALIZE)
    await answers(transport, 1)
    await session.receive(request(1, "test/gate", {"name": "a"}))
    await session.receive(request(2, "test/gate", {"name": "b"}))
    await session.receive(request(3, "test/gate", {"name": "c"}))
    await session.receive(request(4, "ping"))  # inline methods do not count
    got = await answers(transport, 3)
    assert error_of(got[1]) == (3, errors.RATE_LIMITED)
    assert got[1]["error"]["data"] == {"retryAfterMs": 100, "limit": "maxRunningRequests"}
    assert "2" in got[1]["error"]["message"]
    assert got[2] == {"jsonrpc": "2.0", "id": 4, "result": {}}
    await settle()
    assert gates.entered == ["a", "b"]
    gates.open("a")
    await answers(transport, 4)
    await settle()
    await session.receive(request(5, "test/gate", {"name": "c"}))
    await gates.wait_started("c")  # a slot was freed
    assert sorted(session.running) == [2, 5]


async def test_duplicate_id_of_a_running_request_is_invalid(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(request(7, "test/gate", {"name": "a"}))
    await gates.wait_started("a")
    await session.receive(request(7, "test/gate", {"name": "b"}))
    (got,) = await answers(transport, 1)
    assert error_of(got) == (7, errors.INVALID_REQUEST)
    assert "already in use" in got["error"]["message"]
    gates.open("a")
    got = await answers(transport, 2)
    assert got[1] == {"jsonrpc": "2.0", "id": 7, "result": {"name": "a"}}
    assert gates.entered == ["a"]
    # Once it has answered, the id may be used again.
    await settle()
    gates.open("b")
    await session.receive(request(7, "test/gate", {"name": "b"}))
    got = await answers(transport, 3)
    assert got[2] == {"jsonrpc": "2.0", "id": 7, "result": {"name": "b"}}


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "boom"},  # RuntimeError
        {"mode": "refuse"},  # a YamabikoError
        {"mode": 5},  # bad params
        {},  # missing field
    ],
)
async def test_notification_errors_never_produce_a_message(
    session: Session, transport: MemoryTransport, gates: Gates, params: dict[str, Any]
) -> None:
    await session.receive(notification("test/note", params))
    await session.receive(notification("no/such/notification", {}))
    await session.receive(notification("test/gate", {"name": "a"}))  # a request's method
    await settle()
    assert transport.frames == []
    assert gates.entered == []
    await session.receive(request(1, "ping"))
    (got,) = await answers(transport, 1)
    assert got["id"] == 1  # the first thing the client hears is the ping's answer


async def test_notification_handler_runs(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(notification("test/note", {"mode": "boom"}))
    await session.receive(notification("test/note", {"mode": "fine"}))
    assert gates.notes == ["boom", "fine"]  # an error does not stop later ones


async def test_all_notification_batch_gets_no_response(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    await session.receive(
        batch(notification("test/note", {"mode": "a"}), notification("test/note", {"mode": "b"}))
    )
    await settle()
    assert gates.notes == ["a", "b"]
    assert transport.frames == []


async def test_batch_answers_every_element_in_one_array(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    gates.open("a")
    await session.receive(
        batch(
            request(1, "ping"),
            request(2, "test/gate", {"name": "a"}),
            request(3, "no/such"),
            b"42",
            notification("test/note", {"mode": "x"}),
            request(4, "test/gate", {"name": 1}),
        )
    )
    (got,) = await answers(transport, 1)
    assert isinstance(got, list)
    summary = sorted(
        ((m["id"] is None, m["id"]), m.get("error", {}).get("code"), m.get("result")) for m in got
    )
    assert summary == [
        ((False, 1), None, {}),
        ((False, 2), None, {"name": "a"}),
        ((False, 3), errors.METHOD_NOT_FOUND, None),
        ((False, 4), errors.INVALID_PARAMS, None),
        ((True, None), errors.INVALID_REQUEST, None),
    ]
    assert gates.notes == ["x"]
    await settle()
    assert len(transport.frames) == 1
    assert session.running == {}


# Requests to the client


async def _asked(transport: MemoryTransport) -> dict[str, Any]:
    asked: dict[str, Any]
    (asked,) = await answers(transport, 1)
    assert asked["jsonrpc"] == "2.0"
    return asked


async def test_request_round_trip(session: Session, transport: MemoryTransport) -> None:
    asking = asyncio.create_task(
        session.request("sampling/createMessage", {"q": 1}, dict[str, Any], timeout=WAIT)
    )
    asked = await _asked(transport)
    assert asked["method"] == "sampling/createMessage"
    assert asked["params"] == {"q": 1}
    await session.receive(json.dumps({"jsonrpc": "2.0", "id": asked["id"], "result": {"a": 1}}))
    assert await asyncio.wait_for(asking, WAIT) == {"a": 1}


async def test_request_result_is_decoded_to_the_type(
    session: Session, transport: MemoryTransport
) -> None:
    asking = asyncio.create_task(session.request("m", {}, EchoResult, timeout=WAIT))
    asked = await _asked(transport)
    await session.receive(
        json.dumps({"jsonrpc": "2.0", "id": asked["id"], "result": {"name": "n"}})
    )
    assert await asyncio.wait_for(asking, WAIT) == EchoResult(name="n")
    transport.frames.clear()
    asking = asyncio.create_task(session.request("m", {}, EchoResult, timeout=WAIT))
    asked = await _asked(transport)
    await session.receive(json.dumps({"jsonrpc": "2.0", "id": asked["id"], "result": {"x": 1}}))
    with pytest.raises(errors.InvalidParams, match="name"):
        await asyncio.wait_for(asking, WAIT)


async def test_request_error_response_raises_remote_error(
    session: Session, transport: MemoryTransport
) -> None:
    asking = asyncio.create_task(session.request("client/applyActions", {}, Any, timeout=WAIT))
    asked = await _asked(transport)
    await session.receive(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": asked["id"],
                "error": {"code": -32099, "message": "user said no", "data": {"why": "x"}},
            }
        )
    )
    with pytest.raises(errors.RemoteError) as info:
        await asyncio.wait_for(asking, WAIT)
    assert errors.wire_code(info.value) == -32099
    assert info.value.message == "user said no"
    assert info.value.data == {"why": "x"}


async def test_request_timeout_then_late_answer_is_dropped(
    session: Session, transport: MemoryTransport, caplog: pytest.LogCaptureFixture
) -> None:
    asking = asyncio.create_task(session.request("client/slow", {}, Any, timeout=0.01))
    asked = await _asked(transport)
    with pytest.raises(errors.RequestTimeout, match="client/slow"):
        await asyncio.wait_for(asking, WAIT)
    with caplog.at_level(logging.INFO, "yamabiko.session"):
        await session.receive(json.dumps({"jsonrpc": "2.0", "id": asked["id"], "result": 1}))
    dropped = [r for r in caplog.records if r.getMessage() == "dropped a message"]
    assert [r.reason for r in dropped] == [  # type: ignore[attr-defined]
        "response to an unknown or already answered id"
    ]
    await settle()
    assert len(transport.frames) == 1  # nothing answered the late response
    # The next request gets a fresh id and still works.
    transport.frames.clear()
    asking_again = asyncio.create_task(session.request("client/slow", {}, int, timeout=WAIT))
    again = await _asked(transport)
    assert again["id"] != asked["id"]
    await session.receive(json.dumps({"jsonrpc": "2.0", "id": again["id"], "result": 2}))
    assert await asyncio.wait_for(asking_again, WAIT) == 2


async def test_handler_asks_the_client_while_the_read_loop_goes_on(
    transport: MemoryTransport, gates: Gates
) -> None:
    """A handler waiting for the client's answer does not stop other requests."""
    session = make_session(transport, gates)
    await session.receive(INITIALIZE)
    await answers(transport, 1)
    transport.frames.clear()
    asking = asyncio.create_task(session.request("m", {}, int, timeout=WAIT))
    asked = await _asked(transport)
    await session.receive(request(1, "ping"))
    got = await answers(transport, 2)
    assert got[1] == {"jsonrpc": "2.0", "id": 1, "result": {}}
    await session.receive(json.dumps({"jsonrpc": "2.0", "id": asked["id"], "result": 3}))
    assert await asyncio.wait_for(asking, WAIT) == 3


# Shutdown


async def test_shutdown_cancels_everything_and_closes_the_queue(
    session: Session, transport: MemoryTransport, gates: Gates
) -> None:
    closed: list[str] = []
    session.on_close(lambda: closed.append("first"))

    def failing() -> None:
        raise RuntimeError("callback failed")

    session.on_close(failing)  # a failing callback does not stop the others
    session.on_close(lambda: closed.append("last"))
    await session.receive(request(1, "test/gate", {"name": "a"}))
    await session.receive(request(2, "test/gate", {"name": "b"}))
    await gates.wait_started("b")
    asking = asyncio.create_task(session.request("m", {}, Any, timeout=WAIT))
    await answers(transport, 1)
    session.shutdown()
    assert session.state is State.CLOSED
    assert closed == ["first", "last"]
    async with asyncio.timeout(WAIT):
        # The typed outcome, not a bare CancelledError: the client went away.
        with pytest.raises(errors.ConnectionClosed) as closed_exc:
            await asking
        assert closed_exc.value.local is False
        while session.running:
            await asyncio.sleep(0)
    assert sorted(gates.exited) == ["a", "b"]
    await settle()
    assert len(transport.frames) == 1  # only the request to the client: no -32800s
    with pytest.raises(ConnectionError):
        await session.outbound.send(b"{}")
    session.notify("late/notification", {})
    await settle()
    assert len(transport.frames) == 1
    session.shutdown()  # a second call does nothing
    assert closed == ["first", "last"]


async def test_close_records_the_code_once(session: Session, transport: MemoryTransport) -> None:
    closing_before = session.closing
    await session.close(4001, "token expired")
    await session.close(1000, "again")
    assert (closing_before, session.closing) == (False, True)
    assert transport.closed == (4001, "token expired")
    assert session.stats.closed_by_code == {4001: 1}


# The transition table on a real session


async def test_a_second_initialize_is_refused_by_the_table(session: Session) -> None:
    with pytest.raises(IllegalTransition):
        session.initialized("yamabiko/1")
    assert session.state is State.READY


async def test_close_then_gone_walks_the_table(
    session: Session, transport: MemoryTransport
) -> None:
    asking = asyncio.create_task(session.request("m", {}, Any, timeout=WAIT))
    await answers(transport, 1)
    await session.close(4000, "going")
    assert session.state is State.CLOSING
    await session.close(4000, "again")  # asking twice moves nothing
    assert session.state is State.CLOSING
    session.shutdown()
    assert session.state is State.CLOSED
    # Our side closed, with the code we chose.
    with pytest.raises(errors.ConnectionClosed) as closed:
        await asyncio.wait_for(asking, WAIT)
    assert (closed.value.local, closed.value.close_code) == (True, 4000)
    # A request after the end is refused at once, with the same outcome.
    with pytest.raises(errors.ConnectionClosed):
        await session.request("m", {}, Any, timeout=WAIT)
    with pytest.raises(IllegalTransition):
        session.initialized(None)
