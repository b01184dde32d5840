"""``yamabiko mcp-bridge``: an MCP server over stdio (the SDK's) for stdio-only clients,
relaying ``tools/list`` and ``tools/call`` to a running server's socket.

The bridge connects with :class:`~yamabiko.client.client.Client` and the caller's token
when it starts (a refused token or an unreachable server ends it at once, the reason
on stderr). The socket's ``tools/list`` and ``tools/call`` already answer MCP-shaped
results, which are validated into the SDK's types. A call that carries
``_meta.progressToken`` is sent with a token of the bridge's own, and the socket's
progress notifications for it are forwarded as progress for the MCP request. A lost
connection is reopened on the next request; a call that fails on the way is an
``isError`` result. stdout belongs to the MCP protocol: nothing else is written there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from websockets.exceptions import ConnectionClosed

from yamabiko.client.client import Client
from yamabiko.protocol import errors
from yamabiko.schema.session import PROGRESS

log = logging.getLogger("yamabiko.mcp_bridge")


class Bridge:
    """The socket connection behind the stdio server (opened again after a loss)."""

    def __init__(self, url: str, token: str, *, timeout: float = 300.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._tokens = itertools.count(1)

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await Client.connect(self.url, token=self.token)
            return self._client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def close(self) -> None:
        await self._drop()

    async def list_tools(self) -> types.ListToolsResult:
        try:
            raw = await (await self.client()).call("tools/list", {}, timeout=self.timeout)
        except (ConnectionError, ConnectionClosed, OSError):
            await self._drop()
            raw = await (await self.client()).call("tools/list", {}, timeout=self.timeout)
        return types.ListToolsResult.model_validate(raw)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        wanted = (ctx.meta or {}).get("progress_token") is not None
        progress_token = f"bridge-{next(self._tokens)}" if wanted else None
        call: dict[str, Any] = {"name": params.name, "arguments": params.arguments or {}}
        if progress_token is not None:
            call["_meta"] = {"progressToken": progress_token}
        try:
            client = await self.client()
            raw = await self._call(client, ctx, call, progress_token)
        except errors.RemoteError as exc:
            return _error(f"the server refused the call: {exc.message}")
        except TimeoutError:
            return _error(f"no answer from the server within {self.timeout:g} s")
        except (ConnectionError, ConnectionClosed, OSError) as exc:
            await self._drop()
            return _error(f"the connection to the server was lost: {exc}")
        return types.CallToolResult.model_validate(raw)

    async def _call(
        self,
        client: Client,
        ctx: ServerRequestContext[Any, Any],
        call: dict[str, Any],
        progress_token: str | None,
    ) -> Any:
        if progress_token is None:
            return await client.call("tools/call", call, timeout=self.timeout)

        sub = client.subscribe(PROGRESS)  # before the call can report anything

        async def forward() -> None:
            async for note in client.iterate(sub):
                params = note.params if isinstance(note.params, dict) else {}
                if params.get("progressToken") == progress_token:
                    await ctx.session.report_progress(
                        params.get("progress", 0), params.get("total"), params.get("message")
                    )

        relay = asyncio.get_running_loop().create_task(forward())
        try:
            return await client.call("tools/call", call, timeout=self.timeout)
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay


def build_server(bridge: Bridge) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await bridge.list_tools()

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await bridge.call_tool(ctx, params)

    return Server("yamabiko-bridge", on_list_tools=list_tools, on_call_tool=call_tool)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


async def serve_stdio(url: str, token: str) -> None:
    """Connect to ``url`` (raises if refused or unreachable), then serve MCP on
    stdin/stdout until stdin closes."""
    bridge = Bridge(url, token)
    await bridge.client()
    server = build_server(bridge)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await bridge.close()
