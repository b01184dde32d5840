"""Every method driven with hostile sizes and shapes over a real socket.

For each method a client may send, the fuzzer sends params of the wrong shape, each
declared field with a wrong type, past its bounds, empty, huge, with NUL characters and
lone surrogates, plus unknown fields and deep nesting. What must hold, whatever it
sends: every request is answered, with a result or with an error code that the
method's row in ``openrpc.json`` lists (never -32603: hostile input is the peer's
fault, not ours); the socket stays open; and another tenant's ``ping`` keeps being
answered promptly while it runs. Bounded: well under a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support import Running, postgres_schema, running_server
from yamabiko.schema import openrpc
from yamabiko.sessions.identity import SCOPES

DOCUMENT = openrpc.build()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
CLIENT_METHODS = [
    m for m in DOCUMENT["methods"] if m.get("x-sender", "client") in {"client", "both"}
]
PING_BOUND_S = 1.0
"""Generous on 2 loaded cores; the measured p99 is printed for the record."""


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema with one level of ``$ref`` and ``null``-unions taken off."""
    if "$ref" in schema:
        return resolve(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    options = [o for o in schema.get("anyOf", ()) if o.get("type") != "null"]
    return resolve(options[0]) if len(options) == 1 else schema


def hostile_values(schema: dict[str, Any]) -> Iterator[Any]:
    """Values a careless or malicious client sends for a field of this schema."""
    field = resolve(schema)
    kind = field.get("type")
    yield None
    yield {"$ref": "#/x", "__proto__": {"admin": True}}
    yield [[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]
    if kind == "string":
        yield 12345
        yield ""
        yield "a\u0000b"
        yield "\ud800"
        yield "x" * (field.get("maxLength", 10_000) + 1)
        yield "../../../../etc/passwd"
        yield "' OR 1=1; --"
    elif kind in {"integer", "number"}:
        yield "12"
        yield -1
        yield 10**30
        yield 1e308
        yield -(2**63)
        if "maximum" in field:
            yield field["maximum"] + 1
        if "minimum" in field:
            yield field["minimum"] - 1
    elif kind == "array":
        yield {}
        yield ["x"] * 5_000
        yield [None] * 3
    elif kind == "object":
        yield []
        yield {f"k{i}": i for i in range(2_000)}
    elif kind == "boolean":
        yield "true"
        yield 1
    else:
        yield 1
        yield "x"


def plausible(schema: dict[str, Any]) -> Any:
    """A value of the field's type within its bounds, so that the one hostile field of a
    case is what the handler sees, past decoding."""
    field = resolve(schema)
    if "enum" in field:
        return field["enum"][0]
    if "const" in field:
        return field["const"]
    kind = field.get("type")
    if kind == "string":
        return "x" * max(1, field.get("minLength", 1))
    if kind == "integer":
        return max(field.get("minimum", 1), min(1, field.get("maximum", 1)))
    if kind == "number":
        return float(max(field.get("minimum", 1.0), min(1.0, field.get("maximum", 1.0))))
    if kind == "array":
        return []
    if kind == "boolean":
        return False
    if kind == "object":
        return {
            name: plausible(sub)
            for name, sub in field.get("properties", {}).items()
            if name in field.get("required", ())
        }
    return None


def cases(method: dict[str, Any]) -> Iterator[Any]:
    """Whole params objects (or not-objects) to send to ``method``."""
    yield None
    yield []
    yield "params"
    yield 42
    yield {}
    yield {"unknownField": "x" * 1000}
    yield {"_meta": {"progressToken": {"nested": [1, 2, 3]}}}
    fields = {p["name"]: p for p in method["params"] if p["name"] != "_meta"}
    for name, param in fields.items():
        for value in hostile_values(param["schema"]):
            yield {name: value}
            # The same value with every other required field present and plausible.
            base = {n: plausible(p["schema"]) for n, p in fields.items() if p["required"]}
            yield {**base, name: value}


ENVELOPE_CODES = {-32700, -32600}
"""Parse errors and malformed envelopes (params neither object nor array) are about the
message, not the method: any request can get them."""


def declared_codes(method: dict[str, Any]) -> set[int]:
    return ENVELOPE_CODES | {int(e["$ref"].rsplit("/", 1)[1]) for e in method.get("errors", ())}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    # Limits high enough that the fuzzer reaches every method rather than -32029.
    limits = {"requests_per_second": 100_000.0, "request_burst": 100_000}
    tenant = {"tenant_requests_per_second": 100_000.0, "tenant_request_burst": 100_000}
    async with AsyncExitStack() as stack:
        if request.param == "postgres":
            base = request.getfixturevalue("postgres_url")
            limits["database_url"] = await stack.enter_async_context(postgres_schema(base))
        yield await stack.enter_async_context(running_server(tmp_path, **limits, **tenant))


async def open_socket(server: Running, sub: str, tenant: str) -> ClientConnection:
    token = server.token(sub, tenant, scopes=sorted(SCOPES))
    ws = await connect(
        server.url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None
    )
    init = {"protocolVersion": "yamabiko/1", "capabilities": {}}
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}))
    await answer(ws, 0)
    await ws.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    return ws


async def answer(
    ws: ClientConnection, request_id: int, *, unparseable: bool = False, timeout: float = 10.0
) -> dict[str, Any]:
    """The response to ``request_id``, skipping notifications and server requests, and
    the id-less errors that answer malformed notifications. ``unparseable``: the request
    was not JSON (a lone surrogate), so its answer is the id-less -32700."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            if isinstance(raw, bytes) and raw[:2] == b"YA":
                continue  # a binary audio frame
            message = json.loads(raw)
            if "method" in message:
                continue
            if message.get("id") == request_id:
                return message  # type: ignore[no-any-return]
            if message.get("id") is None:
                assert message["error"]["code"] in {-32700, -32600}, message
                if unparseable and message["error"]["code"] == -32700:
                    return message
                continue
            raise AssertionError(f"an answer to another request: {message}")


async def pinger(server: Running, stop: asyncio.Event, times: list[float]) -> None:
    """Another tenant pinging while the fuzzer runs."""
    ws = await open_socket(server, "bystander", "other-tenant")
    try:
        for n in itertools.count(1):
            if stop.is_set():
                return
            began = time.perf_counter()
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": n, "method": "ping"}))
            await answer(ws, n, timeout=5)
            times.append(time.perf_counter() - began)
            await asyncio.sleep(0.02)
    finally:
        await ws.close()


async def test_every_method_survives_hostile_params(server: Running) -> None:
    stop = asyncio.Event()
    ping_times: list[float] = []
    bystander = asyncio.create_task(pinger(server, stop, ping_times))
    ws = await open_socket(server, "mallory", "acme")
    undeclared: list[str] = []
    sent = 0
    started = time.monotonic()
    try:
        ids = itertools.count(1)
        for method in CLIENT_METHODS:
            name = method["name"]
            is_request = "result" in method
            for params in cases(method):
                message: dict[str, Any] = {"jsonrpc": "2.0", "method": name}
                if params is not None:
                    message["params"] = params
                if not is_request:
                    await ws.send(json.dumps(message))
                    continue
                request_id = message["id"] = next(ids)
                message_text = json.dumps(message)
                await ws.send(message_text)
                try:
                    reply = await answer(ws, request_id, unparseable="\\ud800" in message_text)
                except TimeoutError:
                    pytest.fail(f"no answer to {json.dumps(message)[:300]}")
                sent += 1
                error = reply.get("error")
                if error is not None and (
                    error["code"] == -32603 or error["code"] not in declared_codes(method)
                ):
                    undeclared.append(f"{name} {json.dumps(params)[:80]} -> {str(error)[:160]}")
            # After each method: the same socket still answers.
            check_id = next(ids)
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": check_id, "method": "ping"}))
            assert (await answer(ws, check_id))["result"] == {}, f"socket broken after {name}"
    finally:
        stop.set()
        await bystander
        await ws.close()
    assert not undeclared, "answers with codes the method does not declare:\n" + "\n".join(
        undeclared[:40]
    )
    assert sent > 500
    assert time.monotonic() - started < 60
    ping_times.sort()
    p99 = ping_times[int(len(ping_times) * 0.99) - 1] if ping_times else float("inf")
    print(f"\n{sent} hostile requests; bystander ping p99 {p99 * 1000:.1f} ms")
    assert ping_times, "the bystander never got an answer"
    assert max(ping_times) < PING_BOUND_S
