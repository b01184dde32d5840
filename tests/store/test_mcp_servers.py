"""Tenants' MCP servers."""

from __future__ import annotations

import msgspec
import pytest

from tests.store.conftest import ACME, ALICE, KEY
from yamabiko.protocol.errors import InvalidParams
from yamabiko.schema.objects import McpServerId
from yamabiko.store import Store, open_store
from yamabiko.store.crypto import SecretBox, generate_key
from yamabiko.store.errors import AlreadyExists, SecretDecryptError
from yamabiko.store.ids import utc_now
from yamabiko.store.migrations import apply_migrations
from yamabiko.store.sql.database import connect


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


async def test_header_values_are_encrypted_at_rest(database_url: str) -> None:
    store = await open_store(database_url, encryption_keys=[KEY])
    try:
        added = await store.mcp_servers.add(
            ACME, name="search", transport="http", url="https://mcp.example/",
            headers={"X-Api-Key": "plain-value-1", "Authorization": "Bearer ${secret:T}"},
            created_by=ALICE,
        )  # fmt: skip
        assert added.created_by == ALICE
        assert (await store.mcp_servers.get(ACME, added.id)) == added
    finally:
        await store.close()
    raw = await _raw_headers(database_url)
    assert set(raw) == {"X-Api-Key", "Authorization"}
    assert "plain-value-1" not in str(raw)
    assert "secret:T" not in str(raw)
    assert SecretBox([KEY]).decrypt(raw["X-Api-Key"]) == "plain-value-1"


async def test_migrating_encrypts_header_values_stored_in_plaintext(database_url: str) -> None:
    db = await connect(database_url)
    try:
        await apply_migrations(db, target=4)
        for number in range(3):  # rows as the old code wrote them
            await db.execute(
                "INSERT INTO mcp_servers (id, tenant_id, name, transport, command, args, url,"
                " headers, created_at, updated_at) VALUES ($1, $2, $3, 'http', NULL, $4, $5,"
                " $6, $7, $7)",
                f"old{number}", ACME, f"old{number}", [], "https://mcp.example/",
                {"X-Api-Key": f"legacy-{number}"}, utc_now(),
            )  # fmt: skip
    finally:
        await db.close()
    store = await open_store(database_url, encryption_keys=[KEY])
    try:
        listed = await store.mcp_servers.list(ACME)
        assert [s.headers for s in listed.items] == [{"X-Api-Key": f"legacy-{n}"} for n in range(3)]
        assert [s.created_by for s in listed.items] == [None] * 3
        assert await store.mcp_servers.seal_plaintext_headers() == 0  # done on open
    finally:
        await store.close()
    assert "legacy-" not in str(await _raw_headers(database_url))


async def test_rotating_keys_re_encrypts_header_values(database_url: str) -> None:
    store = await open_store(database_url, encryption_keys=[KEY])
    try:
        added = await store.mcp_servers.add(
            ACME, name="s", transport="http", url="https://x.example/", headers={"K": "v"}
        )
    finally:
        await store.close()
    new_key = generate_key()
    rotated = await open_store(database_url, encryption_keys=[new_key, KEY])
    try:
        assert await rotated.mcp_servers.reencrypt_all() == 1
    finally:
        await rotated.close()
    only_new = await open_store(database_url, encryption_keys=[new_key])
    try:
        server = await only_new.mcp_servers.get(ACME, added.id)
        assert server is not None
        assert server.headers == {"K": "v"}
    finally:
        await only_new.close()
    wrong = await open_store(database_url, encryption_keys=[generate_key()])
    try:
        with pytest.raises(SecretDecryptError):
            await wrong.mcp_servers.get(ACME, added.id)
    finally:
        await wrong.close()


async def _raw_headers(database_url: str) -> dict[str, str]:
    """The stored ``headers`` of the only sealed server, as the database holds them."""
    db = await connect(database_url)
    try:
        rows = await db.fetch("SELECT headers FROM mcp_servers")
    finally:
        await db.close()
    merged: dict[str, str] = {}
    for row in rows:
        value = row["headers"]
        merged.update(msgspec.json.decode(value) if isinstance(value, str) else value)
    return merged
