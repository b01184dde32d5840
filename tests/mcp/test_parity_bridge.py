"""The MCP definition through ``yamabiko mcp-bridge``: the checks of
:mod:`tests.mcp.parity` over stdio (a bridge child process, the SDK's stdio client,
a real ``yamabiko serve``); the token renewed from a file before it expires; a lost
connection reopened with the subscriptions and log level restored."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.mcp import parity
from tests.mcp.test_http_face import SECRET, Served, clean_env, served, token
from tests.support import running_server
from yamabiko.client.client import Client
from yamabiko.server.auth import mint_token
from yamabiko.server.mcp_bridge import Bridge, TokenSource

__all__ = ["served"]  # the fixture, shared with the HTTP face's tests


@asynccontextmanager
async def bridge_face(served: Served) -> AsyncIterator[tuple[parity.SdkFace, Client]]:
    sdk = parity.SdkFace()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "yamabiko.server.cli", "mcp-bridge", "--url", served.ws_url],
        env={**clean_env(), "YAMABIKO_TOKEN": token()},
    )
    helper = await Client.connect(served.ws_url, token=token())
    try:
        async with (
            stdio_client(params) as (read, write),
            ClientSession(
                read, write, message_handler=sdk.on_message, logging_callback=sdk.on_log
            ) as session,
        ):
            await session.initialize()
            sdk.session = session
            yield sdk, helper
    finally:
        await helper.close()


async def test_resources(served: Served) -> None:
    async with bridge_face(served) as (face, helper):
        await parity.check_resources(face, helper)


async def test_subscription(served: Served) -> None:
    async with bridge_face(served) as (face, helper):
        await parity.check_subscription(face, helper)


async def test_prompts(served: Served) -> None:
    async with bridge_face(served) as (face, _):
        await parity.check_prompts(face)


async def test_completion(served: Served) -> None:
    async with bridge_face(served) as (face, helper):
        await parity.check_completion(face, helper)


async def test_logging(served: Served) -> None:
    async with bridge_face(served) as (face, _):
        await parity.check_logging(face)


async def test_progress(served: Served) -> None:
    async with bridge_face(served) as (face, _):
        await parity.check_progress(face)


class Recorder:
    """Stands in for the stdio client's session: what the bridge forwards to it."""

    def __init__(self) -> None:
        self.updated: asyncio.Queue[str] = asyncio.Queue()

    async def send_resource_updated(self, uri: str) -> None:
        await self.updated.put(uri)

    async def send_notification(self, notification: Any) -> None:
        return None


async def test_the_token_is_renewed_from_its_file_before_it_expires(
    served: Served, tmp_path: Path
) -> None:
    short = mint_token(SECRET, sub="alice", tenant="acme", scopes=["chat"], ttl_s=4)
    expires = time.time() + 4
    token_file = tmp_path / "token"
    token_file.write_text(short)
    bridge = Bridge(served.ws_url, TokenSource(file=str(token_file)))
    await bridge.open()
    try:
        token_file.write_text(token(["chat"]))  # the renewed token, as a sidecar would
        # Past the first token's expiry (the server closes an expired session with
        # 4001 within half a second): a deadline, not a wait for an event.
        await asyncio.sleep(max(expires - time.time(), 0) + 1.5)
        listed = await bridge.relay("prompts/list", {})
        assert listed["prompts"]
        assert bridge.reconnections == 0  # refreshed in place, never cut off
    finally:
        await bridge.close()


async def test_a_lost_connection_is_reopened_with_its_subscriptions(tmp_path: Path) -> None:
    async with running_server(tmp_path) as node:
        bridge = Bridge(node.url, TokenSource(token=node.token()), backoff_max_s=0.5)
        await bridge.open()
        bridges = set(node.app.registry.sessions)
        helper = await node.client()
        recorder = Recorder()
        try:
            conversation = await helper.call("conversations/create", {"title": "kept"})
            uri = f"yamabiko://conversations/{conversation['id']}"
            await bridge.relay("resources/subscribe", {"uri": uri}, stdio=recorder)  # type: ignore[arg-type]
            # The server drops the bridge's socket (a deploy, a balancer's idle cut).
            for session_id in bridges:
                await node.app.registry.sessions[session_id].close(1001, "going away")
            async with asyncio.timeout(parity.WAIT_S):
                await bridge.wait_reconnections(1)
            await helper.call(
                "chat/send", {"conversationId": conversation["id"], "message": "still there?"}
            )
            async with asyncio.timeout(parity.WAIT_S):
                assert await recorder.updated.get() == uri
        finally:
            await helper.close()
            await bridge.close()
