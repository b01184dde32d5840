"""``yamabiko mcp-bridge`` as a child process, through the SDK's stdio client: the tools
of a real ``yamabiko serve`` subprocess listed and called over stdio, progress relayed,
failures as ``isError`` results, a refused token ending the bridge with exit 1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.mcp.test_http_face import TOOLS, Served, clean_env, served, text_of, token

__all__ = ["served"]  # the fixture, shared with the HTTP face's tests


def bridge_params(url: str, bearer: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "yamabiko.server.cli", "mcp-bridge", "--url", url, "--token", bearer],
        env=clean_env(),
    )


@asynccontextmanager
async def bridged(url: str, bearer: str) -> AsyncIterator[ClientSession]:
    async with (
        stdio_client(bridge_params(url, bearer)) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


async def test_lists_and_calls_tools_over_stdio(served: Served) -> None:
    async with bridged(served.ws_url, token()) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        assert all(t.input_schema["type"] == "object" for t in listed.tools)

        part = await client.call_tool("music_generate", {"kind": "bassline", "bars": 1})
        assert not part.is_error, text_of(part)
        assert part.structured_content is not None
        assert part.structured_content["notes"]

        bad = await client.call_tool("ghost_complete", {"text": 3})
        assert bad.is_error
        assert "$.text" in text_of(bad)


async def test_relays_progress(served: Served) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with bridged(served.ws_url, token()) as client:
        reply = await client.call_tool("chat", {"message": "hi"}, progress_callback=on_progress)
    assert not reply.is_error, text_of(reply)
    assert isinstance(reply.content[0], types.TextContent)
    assert seen
    assert seen == sorted(seen)


def test_a_refused_token_ends_the_bridge(served: Served) -> None:
    params = bridge_params(served.ws_url, "not-a-jwt")
    done = subprocess.run(
        [params.command, *params.args],
        input="",
        capture_output=True,
        text=True,
        env=params.env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "refused: HTTP 401" in done.stderr
    assert done.stdout == ""
