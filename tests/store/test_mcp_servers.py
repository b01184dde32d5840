"""Tenants' MCP servers."""

from __future__ import annotations

import pytest

from tests.store.conftest import ACME
from yamabiko.protocol.errors import InvalidParams
from yamabiko.schema.objects import McpServerId
from yamabiko.store import Store
from yamabiko.store.errors import AlreadyExists


async def test_add_get_list_remove(store: Store) -> None:
    stdio = await store.mcp_servers.add(
        ACME, name="files", transport="stdio", command="mcp-files", args=["--root", "/srv"]
    )
    http = await store.mcp_servers.add(
        ACME, name="search", transport="http", url="https://mcp.example/", headers={"X-A": "b"}
    )
    assert (stdio.command, stdio.args, stdio.url, stdio.headers) == (
        "mcp-files",
        ["--root", "/srv"],
        None,
        {},
    )
    assert (http.url, http.headers, http.command, http.args) == (
        "https://mcp.example/",
        {"X-A": "b"},
        None,
        [],
    )
    assert await store.mcp_servers.get(ACME, stdio.id) == stdio
    page = await store.mcp_servers.list(ACME, limit=1)
    assert page.items == [stdio]
    rest = await store.mcp_servers.list(ACME, limit=1, cursor=page.next_cursor)
    assert (rest.items, rest.next_cursor) == ([http], None)

    assert await store.mcp_servers.remove(ACME, stdio.id) is True
    assert await store.mcp_servers.remove(ACME, stdio.id) is False
    assert await store.mcp_servers.get(ACME, stdio.id) is None
    assert await store.mcp_servers.get(ACME, McpServerId("nope")) is None


async def test_names_are_unique_per_tenant(store: Store) -> None:
    await store.mcp_servers.add(ACME, name="files", transport="stdio", command="a")
    with pytest.raises(AlreadyExists):
        await store.mcp_servers.add(ACME, name="files", transport="stdio", command="b")


async def test_a_transport_needs_its_address(store: Store) -> None:
    with pytest.raises(InvalidParams, match="command"):
        await store.mcp_servers.add(ACME, name="a", transport="stdio")
    with pytest.raises(InvalidParams, match="url"):
        await store.mcp_servers.add(ACME, name="b", transport="http")
