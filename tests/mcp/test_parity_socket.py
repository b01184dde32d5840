"""The MCP definition on the socket (subprotocol ``mcp``) of an in-process node:
resources and templates, subscriptions, prompts, completion, logging and progress (the
checks of :mod:`tests.mcp.parity`, run on every face)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.mcp import parity
from tests.support import Running, running_server
from yamabiko.client.client import Client
from yamabiko.protocol.errors import RemoteError


@asynccontextmanager
async def socket_face(tmp_path: Path) -> AsyncIterator[tuple[parity.SocketFace, Client]]:
    async with running_server(tmp_path) as node:
        client = await mcp_client(node)
        helper = await node.client()
        face = parity.SocketFace(client)
        try:
            yield face, helper
        finally:
            await face.close()
            await client.close()
            await helper.close()


async def mcp_client(node: Running) -> Client:
    return await Client.connect(
        node.url, token=node.token(), subprotocol="mcp", protocol_version="2025-11-25"
    )


async def test_initialize_declares_what_is_served(tmp_path: Path) -> None:
    async with running_server(tmp_path) as node:
        client = await mcp_client(node)
        try:
            assert client.initialize_result is not None
            capabilities = client.initialize_result["capabilities"]
            assert capabilities["resources"]["subscribe"] is True
            assert "completions" in capabilities
            assert "logging" in capabilities
        finally:
            await client.close()


async def test_resources(tmp_path: Path) -> None:
    async with socket_face(tmp_path) as (face, helper):
        await parity.check_resources(face, helper)


async def test_subscription(tmp_path: Path) -> None:
    async with socket_face(tmp_path) as (face, helper):
        await parity.check_subscription(face, helper)


async def test_prompts(tmp_path: Path) -> None:
    async with socket_face(tmp_path) as (face, _):
        await parity.check_prompts(face)


async def test_completion(tmp_path: Path) -> None:
    async with socket_face(tmp_path) as (face, helper):
        await parity.check_completion(face, helper)


async def test_logging(tmp_path: Path) -> None:
    async with socket_face(tmp_path) as (face, _):
        await parity.check_logging(face)


async def test_progress(tmp_path: Path) -> None:
    async with socket_face(tmp_path) as (face, _):
        await parity.check_progress(face)


async def test_resources_follow_the_tokens_scopes(tmp_path: Path) -> None:
    """A chat-only token lists no agents and cannot read music (-32003)."""
    async with running_server(tmp_path) as node:
        helper = await node.client()
        chat_only = await node.client(scopes=["chat"])
        try:
            agent = await helper.call("agents/create", {"name": "Hidden"})
            listed = await chat_only.call("resources/list", {})
            assert f"yamabiko://agents/{agent['id']}" not in {r["uri"] for r in listed["resources"]}
            with pytest.raises(RemoteError) as refused:
                await chat_only.call(
                    "resources/read", {"uri": "yamabiko://music/melody/C%20major/pop/1.json"}
                )
            assert refused.value.remote_code == -32003
        finally:
            await helper.close()
            await chat_only.close()
