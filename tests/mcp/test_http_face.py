"""The MCP Streamable HTTP face of a real ``yamabiko serve`` subprocess, through the
SDK's own clients (``ClientSession`` over ``streamable_http_client``, and ``Client``):
tools listed by scope, calls with structured results, progress, failures as ``isError``
results, 401 without a valid token. Every wait is bounded by pytest-timeout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from yamabiko.server.auth import mint_token

SECRET = "test-secret-for-the-mcp-http-face-0123456789"
TOOLS = {"chat", "agent_run", "music_generate", "ghost_complete", "audio_synthesize"}
ALL_SCOPES = ["chat", "agent", "ghost", "audio", "mcp"]


def clean_env() -> dict[str, str]:
    """The environment without our settings and provider keys (the local engines answer),
    with a fixed JWT secret."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("YAMABIKO_") and not k.endswith(("_API_KEY", "_BASE_URL"))
    }
    return {**env, "YAMABIKO_JWT_SECRET": SECRET}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token(scopes: list[str] = ALL_SCOPES, sub: str = "alice") -> str:
    return mint_token(SECRET, sub=sub, tenant="acme", scopes=scopes, ttl_s=600)


class Served:
    def __init__(self, ws_url: str, mcp_url: str) -> None:
        self.ws_url = ws_url
        self.mcp_url = mcp_url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``yamabiko serve --port 0 --mcp-port <free>``; its two URLs from its stdout."""
    tmp = tmp_path_factory.mktemp("mcp_http")
    cmd = [sys.executable, "-m", "yamabiko.server.cli", "serve", "--port", "0"]
    cmd += ["--mcp-port", str(free_port()), "--data-dir", str(tmp / "data")]
    with (
        (tmp / "server.log").open("w") as log,
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=clean_env()
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded by the test timeout
            assert line.startswith("listening on ws://"), (tmp / "server.log").read_text()
            mcp_line = proc.stdout.readline()
            assert mcp_line.startswith("mcp on http://"), (tmp / "server.log").read_text()
            yield Served(line.split()[-1], mcp_line.split()[-1])
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@asynccontextmanager
async def session(url: str, bearer: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {bearer}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as client,
    ):
        init = await client.initialize()
        assert init.server_info.name == "yamabiko"
        yield client


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_lists_and_calls_the_tools(served: Served) -> None:
    async with session(served.mcp_url, token()) as client:
        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        assert set(tools) == TOOLS
        music = tools["music_generate"]
        assert music.input_schema["type"] == "object"
        assert "kind" in music.input_schema["required"]
        assert music.output_schema is not None

        part = await client.call_tool(
            "music_generate", {"kind": "bassline", "key": "A minor", "bars": 2}
        )
        assert not part.is_error, text_of(part)
        assert part.structured_content is not None
        assert part.structured_content["notes"]

        ghost = await client.call_tool("ghost_complete", {"text": "the quick brown fo"})
        assert not ghost.is_error, text_of(ghost)
        assert ghost.structured_content is not None
        assert isinstance(ghost.structured_content["items"], list)


async def test_failures_are_is_error_results(served: Served) -> None:
    async with session(served.mcp_url, token()) as client:
        bad = await client.call_tool("ghost_complete", {"text": 3})
        assert bad.is_error
        assert "$.text" in text_of(bad)
        missing = await client.call_tool("music_generate", {"bars": 2})
        assert missing.is_error
        assert "kind" in text_of(missing)
        unknown = await client.call_tool("no_such_tool", {})
        assert unknown.is_error
        assert "no_such_tool" in text_of(unknown)
        # The MCP session survived all of it.
        assert not (await client.call_tool("ghost_complete", {"text": "hel"})).is_error


async def test_tools_follow_the_tokens_scopes(served: Served) -> None:
    async with session(served.mcp_url, token(["ghost"], sub="bob")) as client:
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == ["ghost_complete"]
        refused = await client.call_tool("music_generate", {"kind": "bassline"})
        assert refused.is_error
        assert "agent" in text_of(refused)


async def test_chat_reports_progress(served: Served) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with session(served.mcp_url, token()) as client:
        reply = await client.call_tool(
            "chat", {"message": "hello there"}, progress_callback=on_progress
        )
    assert not reply.is_error, text_of(reply)
    assert reply.structured_content is not None
    text = reply.structured_content["text"]
    assert text
    assert seen, "no progress notifications"
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
    assert text.startswith(seen[-1][1] or "")


async def test_refuses_a_request_without_a_valid_token(served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as http:
        none = await http.post(served.mcp_url, json=body, headers=headers)
        assert none.status_code == 401
        assert none.headers["WWW-Authenticate"] == 'Bearer realm="yamabiko"'
        forged = mint_token("another-secret-entirely-0123456789abcdef", sub="a", tenant="t")
        bad = await http.post(
            served.mcp_url, json=body, headers={**headers, "Authorization": f"Bearer {forged}"}
        )
        assert bad.status_code == 401
        assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
        assert "Mcp-Session-Id" not in bad.headers


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_sdks_high_level_client(served: Served, mode: str) -> None:
    """``Client`` with the initialize handshake ("legacy") and with its default probe,
    which picks the stateless per-request era when the server offers it."""
    headers = {"Authorization": f"Bearer {token()}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(served.mcp_url, http_client=http)
        async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            result = await client.call_tool("ghost_complete", {"text": "good mor"})
            assert not result.is_error, text_of(result)
            assert result.structured_content is not None
