"""McpClients against a real MCP server (tests/mcp/tool_server.py, written with the SDK):
over stdio as a child process, and over Streamable HTTP served on 127.0.0.1 in the test.
Every wait is bounded by the pool's timeouts and pytest-timeout."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvicorn

from tests.mcp.tool_server import build
from yamabiko.engines.tools.egress import EgressPolicy
from yamabiko.engines.tools.mcp import (
    McpClientError,
    McpClients,
    McpConfigError,
    McpConnectError,
    McpConnectionLost,
    McpNotAllowed,
    McpServerSpec,
    McpTimeout,
    McpTimeouts,
    secret_names,
    spec_from_server,
)
from yamabiko.schema.objects import McpServer

HERE = Path(__file__).parent
TOOL_SERVER = str(HERE / "tool_server.py")
HANGING_SERVER = str(HERE / "hanging_server.py")
TIMEOUTS = McpTimeouts(connect=15.0, list=10.0, call=10.0, close=10.0)
LOOPBACK = EgressPolicy(["127.0.0.1"])
"""The test's own HTTP servers listen on 127.0.0.1, which the default policy refuses."""


def stdio(server_id: str = "tools", script: str = TOOL_SERVER) -> McpServerSpec:
    return McpServerSpec(server_id, "stdio", command=sys.executable, args=(script,))


@pytest.fixture
async def pool() -> AsyncIterator[McpClients]:
    clients = McpClients([sys.executable], timeouts=TIMEOUTS, egress=LOOPBACK)
    yield clients
    await clients.aclose()


# stdio


async def test_lists_the_tools_with_their_schemas(pool: McpClients) -> None:
    tools = {t.name: t for t in await pool.tools(stdio())}
    assert set(tools) == {"transpose", "chord_tones", "explode", "pid", "crash", "sleep"}
    assert tools["transpose"].description == "Transpose a MIDI pitch by some semitones."
    schema = tools["transpose"].input_schema
    assert schema["type"] == "object"
    assert sorted(schema["required"]) == ["pitch", "semitones"]


async def test_calls_tools(pool: McpClients) -> None:
    spec = stdio()
    up = await pool.call(spec, "transpose", {"pitch": 60, "semitones": 7})
    assert (up.content_text, up.is_error, up.structured) == ("67", False, {"result": 67})
    chord = await pool.call(spec, "chord_tones", {"symbol": "Am"})
    assert not chord.is_error
    assert chord.structured == {"result": [69, 72, 76]}
    assert chord.content_text.split("\n") == ["69", "72", "76"]


async def test_tool_errors_are_results(pool: McpClients) -> None:
    spec = stdio()
    raised = await pool.call(spec, "explode", {"reason": "no"})
    assert raised.is_error
    assert "explode" in raised.content_text
    bad_symbol = await pool.call(spec, "chord_tones", {"symbol": "H#"})
    assert bad_symbol.is_error
    unknown = await pool.call(spec, "no_such_tool", {})
    assert unknown.is_error
    assert "no_such_tool" in unknown.content_text
    wrong_args = await pool.call(spec, "transpose", {"pitch": "high"})
    assert wrong_args.is_error
    # The session survived all of it.
    assert (await pool.call(spec, "transpose", {"pitch": 1, "semitones": 1})).content_text == "2"
    assert pool.sessions_opened == 1


async def test_refuses_a_command_not_on_the_allowlist(pool: McpClients) -> None:
    for command in ("bash", "python3-not-listed", "/bin/sh", f"{sys.executable}/../python"):
        spec = McpServerSpec("x", "stdio", command=command, args=("-c", "exit 0"))
        with pytest.raises(McpNotAllowed, match="not on the stdio allowlist"):
            await pool.tools(spec)
        with pytest.raises(McpNotAllowed):
            await pool.call(spec, "anything")
        probe = await pool.test(spec)
        assert not probe.ok
        assert probe.error is not None
        assert "allowlist" in probe.error
    assert pool.sessions_opened == 0
    assert pool.allows(sys.executable)
    assert not pool.allows("python")  # exact strings: no PATH search


def test_allowlist_entries_are_names_or_absolute_paths() -> None:
    with pytest.raises(ValueError, match="command name or an absolute path"):
        McpClients(["bin/server"])
    assert McpClients(["npx", "/usr/bin/uvx", " "]).allowlist == {"npx", "/usr/bin/uvx"}


async def test_an_unusable_spec_is_a_clear_error(pool: McpClients) -> None:
    with pytest.raises(McpConfigError, match="needs a command"):
        await pool.tools(McpServerSpec("x", "stdio"))
    with pytest.raises(McpConfigError, match="http"):
        await pool.tools(McpServerSpec("y", "http", url="ftp://example.com"))
    # A command that cannot start.
    missing = "/nonexistent/mcp-server"
    lone = McpClients([missing], timeouts=TIMEOUTS)
    try:
        with pytest.raises(McpConnectError, match="could not connect"):
            await lone.tools(McpServerSpec("z", "stdio", command=missing))
    finally:
        await lone.aclose()


async def test_times_out_on_a_server_that_never_answers() -> None:
    limit = 0.5
    clients = McpClients([sys.executable], timeouts=McpTimeouts(connect=limit, close=10.0))
    try:
        start = time.perf_counter()
        with pytest.raises(McpTimeout, match="initialize") as caught:
            await clients.tools(stdio("hangs", HANGING_SERVER))
        assert caught.value.stage == "connect"
        assert time.perf_counter() - start < limit + 5.0
        assert clients.size == 0
        probe = await clients.test(stdio("hangs", HANGING_SERVER))
        assert not probe.ok
        assert probe.latency_ms >= limit * 1000.0
    finally:
        await clients.aclose()


async def test_a_call_times_out_and_the_next_one_gets_a_new_session() -> None:
    clients = McpClients([sys.executable], timeouts=McpTimeouts(connect=15.0, call=0.5))
    spec = stdio()
    try:
        with pytest.raises(McpTimeout, match="tools/call timed out") as caught:
            await clients.call(spec, "sleep", {"seconds": 30})
        assert caught.value.stage == "call"
        assert not clients.live(spec)
        result = await clients.call(spec, "transpose", {"pitch": 0, "semitones": 12})
        assert result.content_text == "12"
        assert clients.sessions_opened == 2
    finally:
        await clients.aclose()


async def test_reuses_a_live_session(pool: McpClients) -> None:
    spec = stdio()
    first = await pool.call(spec, "pid")
    await pool.tools(spec)
    second = await pool.call(spec, "pid")
    assert first.content_text == second.content_text
    assert pool.live(spec)
    assert pool.sessions_opened == 1
    # An equal spec (another object) is the same session; another id is another one.
    assert (await pool.call(stdio(), "pid")).content_text == first.content_text
    assert (await pool.call(stdio("other"), "pid")).content_text != first.content_text
    assert pool.sessions_opened == 2


async def test_concurrent_first_uses_open_one_session(pool: McpClients) -> None:
    spec = stdio()
    pids = await asyncio.gather(*(pool.call(spec, "pid") for _ in range(4)))
    assert len({r.content_text for r in pids}) == 1
    assert pool.sessions_opened == 1


async def test_reopens_a_session_whose_server_died(pool: McpClients) -> None:
    spec = stdio()
    before = await pool.call(spec, "pid")
    with pytest.raises(McpConnectionLost, match="closed during tools/call"):
        await pool.call(spec, "crash")
    assert not pool.live(spec)
    after = await pool.call(spec, "pid")
    assert after.content_text != before.content_text
    assert pool.sessions_opened == 2


async def test_keeps_at_most_max_sessions_closing_the_least_recently_used() -> None:
    clients = McpClients([sys.executable], timeouts=TIMEOUTS, max_sessions=2)
    a, b, c = stdio("a"), stdio("b"), stdio("c")
    try:
        await clients.call(a, "pid")
        await clients.call(b, "pid")
        await clients.call(a, "pid")  # b is now the least recently used
        await clients.call(c, "pid")
        assert clients.size == 2
        assert clients.live(a)
        assert clients.live(c)
        assert not clients.live(b)
    finally:
        await clients.aclose()


async def test_test_lists_tools_on_a_fresh_session(pool: McpClients) -> None:
    spec = stdio()
    await pool.call(spec, "pid")
    probe = await pool.test(spec)
    assert probe.ok
    assert probe.error is None
    assert "transpose" in [t.name for t in probe.tools]
    assert probe.latency_ms > 0
    assert pool.sessions_opened == 2  # the pooled one was replaced
    assert pool.live(spec)


async def test_forget_and_aclose(pool: McpClients) -> None:
    spec = stdio()
    await pool.call(spec, "pid")
    await pool.forget(spec.id)
    assert pool.size == 0
    await pool.call(spec, "pid")
    await pool.aclose()
    assert pool.size == 0
    with pytest.raises(McpClientError, match="closed"):
        await pool.call(spec, "pid")
    await pool.aclose()  # idempotent


# specs and secret references


def _stored(headers: dict[str, str]) -> McpServer:
    from datetime import UTC, datetime

    from yamabiko.schema.objects import McpServerId, TenantId

    now = datetime.now(UTC)
    return McpServer(
        id=McpServerId("srv1"), tenant_id=TenantId("t1"), name="gh", transport="http",
        command=None, args=[], url="https://example.com/mcp", headers=headers,
        created_at=now, updated_at=now,
    )  # fmt: skip


def test_spec_from_server_resolves_secret_references() -> None:
    server = _stored({"Authorization": "Bearer ${secret:GH_TOKEN}", "X-Team": "music"})
    assert secret_names(server.headers) == {"GH_TOKEN"}
    spec = spec_from_server(server, secrets={"GH_TOKEN": "s3cr3t"})
    assert spec.headers == {"Authorization": "Bearer s3cr3t", "X-Team": "music"}
    assert (spec.id, spec.transport, spec.url) == ("srv1", "http", "https://example.com/mcp")
    assert "s3cr3t" not in repr(spec)
    assert "music" not in str(spec)
    with pytest.raises(McpConfigError, match="GH_TOKEN") as caught:
        spec_from_server(server, secrets={"OTHER": "value"})
    assert "value" not in caught.value.message


def test_results_show_secret_references_and_hide_other_header_values() -> None:
    from yamabiko.handlers.mcp_servers import redacted

    server = _stored(
        {"Authorization": "Bearer ${secret:GH}", "X-Key": "literal-key", "X-Both": "a${secret:GH}"}
    )
    assert redacted(server).headers == {
        "Authorization": "Bearer ${secret:GH}", "X-Key": "***", "X-Both": "***",
    }  # fmt: skip


# Streamable HTTP

TOKEN = "test-token"


def _require_bearer(app: Any, token: str) -> Callable[..., Awaitable[None]]:
    """The ASGI app, answering 401 to a request without ``Authorization: Bearer token``."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return guarded


@pytest.fixture
async def http_url() -> AsyncIterator[str]:
    """The test server's Streamable HTTP endpoint on a loopback port of its own. (Ask
    for it before ``pool``, so that the pool closes its sessions first.)"""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    app = _require_bearer(build().streamable_http_app(), TOKEN)
    config = uvicorn.Config(
        app, lifespan="on", ws="none", log_level="warning", timeout_graceful_shutdown=2
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        await server.shutdown(sockets=[sock])


async def test_over_streamable_http(http_url: str, pool: McpClients) -> None:
    spec = McpServerSpec("web", "http", url=http_url, headers={"Authorization": f"Bearer {TOKEN}"})
    probe = await pool.test(spec)
    assert probe.ok, probe.error
    assert "chord_tones" in [t.name for t in probe.tools]
    result = await pool.call(spec, "chord_tones", {"symbol": "G7"})
    assert result.structured == {"result": [67, 71, 74, 77]}
    assert (await pool.call(spec, "explode")).is_error
    assert pool.sessions_opened == 1


async def test_over_streamable_http_with_a_resolved_secret(http_url: str, pool: McpClients) -> None:
    stored = _stored({"Authorization": "Bearer ${secret:TOKEN}"})
    server = msgspec.structs.replace(stored, url=http_url)
    spec = spec_from_server(server, secrets={"TOKEN": TOKEN})
    assert (await pool.call(spec, "transpose", {"pitch": 3, "semitones": 4})).content_text == "7"
    refused = await pool.test(spec_from_server(server, secrets={"TOKEN": "wrong"}))
    assert not refused.ok
    assert refused.error is not None
    assert "wrong" not in refused.error


async def test_an_unreachable_http_server_is_a_connect_error(pool: McpClients) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(McpConnectError, match="could not connect"):
        await pool.tools(McpServerSpec("gone", "http", url=f"http://127.0.0.1:{port}/mcp"))
