"""Agents' secrets: write-only values, ciphertext at rest, key rotation."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from tests.store.conftest import ACME, ALICE, BOB, KEY
from yamabiko.schema.objects import AgentId, SecretInfo
from yamabiko.store import Store, open_store
from yamabiko.store.crypto import generate_key
from yamabiko.store.errors import SecretDecryptError


def _plaintext() -> str:
    return f"sk-test-{uuid.uuid4().hex}"


async def test_set_list_get_value_delete(store: Store) -> None:
    agent = await store.agents.create(ACME, ALICE, name="bot")
    info = await store.secrets.set(ACME, agent.id, "OPENAI_API_KEY", "sk-1", owner=ALICE)
    assert info is not None
    assert (info.agent_id, info.name) == (agent.id, "OPENAI_API_KEY")
    await store.secrets.set(ACME, agent.id, "ANTHROPIC_API_KEY", "sk-2", owner=ALICE)

    listed = await store.secrets.list(ACME, agent.id, owner=ALICE)
    assert listed is not None
    assert [s.name for s in listed] == ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
    assert await store.secrets.get_value(ACME, agent.id, "OPENAI_API_KEY") == "sk-1"
    assert await store.secrets.get_value(ACME, agent.id, "ANTHROPIC_API_KEY") == "sk-2"

    assert await store.secrets.delete(ACME, agent.id, "OPENAI_API_KEY", owner=ALICE) is True
    assert await store.secrets.delete(ACME, agent.id, "OPENAI_API_KEY", owner=ALICE) is False
    assert await store.secrets.get_value(ACME, agent.id, "OPENAI_API_KEY") is None
    listed = await store.secrets.list(ACME, agent.id, owner=ALICE)
    assert listed is not None
    assert [s.name for s in listed] == ["ANTHROPIC_API_KEY"]


async def test_set_replaces_and_moves_updated_at(store: Store) -> None:
    agent = await store.agents.create(ACME, ALICE, name="bot")
    first = await store.secrets.set(ACME, agent.id, "KEY", "old", owner=ALICE)
    second = await store.secrets.set(ACME, agent.id, "KEY", "new", owner=None)
    assert first is not None
    assert second is not None
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert await store.secrets.get_value(ACME, agent.id, "KEY") == "new"
    assert len(await store.secrets.list(ACME, agent.id, owner=ALICE) or []) == 1


async def test_an_agent_not_visible_to_the_owner_has_no_secrets(store: Store) -> None:
    agent = await store.agents.create(ACME, ALICE, name="bot")
    await store.secrets.set(ACME, agent.id, "KEY", "v", owner=ALICE)
    assert await store.secrets.set(ACME, agent.id, "KEY", "evil", owner=BOB) is None
    assert await store.secrets.list(ACME, agent.id, owner=BOB) is None
    assert await store.secrets.delete(ACME, agent.id, "KEY", owner=BOB) is False
    assert await store.secrets.get_value(ACME, agent.id, "KEY") == "v"
    missing = AgentId("00000000-0000-7000-8000-000000000000")
    assert await store.secrets.set(ACME, missing, "KEY", "v", owner=None) is None
    assert await store.secrets.list(ACME, missing, owner=None) is None


async def test_what_comes_back_never_holds_the_value(store: Store) -> None:
    value = _plaintext()
    agent = await store.agents.create(ACME, ALICE, name="bot")
    info = await store.secrets.set(ACME, agent.id, "KEY", value, owner=ALICE)
    listed = await store.secrets.list(ACME, agent.id, owner=ALICE)
    assert "value" not in SecretInfo.__struct_fields__
    for shown in (repr(info), repr(listed), msgspec.json.encode(listed).decode(), repr(store)):
        assert value not in shown
    assert repr(store.secrets).count(KEY) == 0


async def _table_text(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT t::text AS row FROM agent_secrets t")
        return "\n".join(row["row"] for row in rows)
    finally:
        await conn.close()


async def test_only_ciphertext_is_stored(database_url: str) -> None:
    value = _plaintext()
    store = await open_store(database_url, encryption_keys=[KEY])
    try:
        agent = await store.agents.create(ACME, ALICE, name="bot")
        await store.secrets.set(ACME, agent.id, "KEY", value, owner=ALICE)
        await store.secrets.set(ACME, agent.id, "OTHER", value, owner=ALICE)
        assert await store.secrets.get_value(ACME, agent.id, "KEY") == value
        if database_url.startswith("postgresql"):
            stored = await _table_text(database_url)
            assert "gAAAA" in stored  # Fernet tokens are there...
            assert value not in stored  # ...and the plaintext is not.
    finally:
        await store.close()
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert path in files
        for file in files:  # the database, and its -wal / -shm if any remain
            assert value.encode() not in file.read_bytes(), file.name


async def test_rotation_to_a_new_key_then_dropping_the_old(database_url: str) -> None:
    old, new = generate_key(), generate_key()
    values = {"A": _plaintext(), "B": _plaintext()}

    store = await open_store(database_url, encryption_keys=[old])
    agent = await store.agents.create(ACME, ALICE, name="bot")
    other = await store.agents.create(ACME, ALICE, name="bot2")
    for name, value in values.items():
        await store.secrets.set(ACME, agent.id, name, value, owner=ALICE)
    await store.secrets.set(ACME, other.id, "C", values["A"], owner=ALICE)
    await store.close()

    store = await open_store(database_url, encryption_keys=[new, old])
    assert await store.secrets.reencrypt_all() == 3
    await store.close()

    store = await open_store(database_url, encryption_keys=[new])
    try:
        for name, value in values.items():
            assert await store.secrets.get_value(ACME, agent.id, name) == value
        assert await store.secrets.get_value(ACME, other.id, "C") == values["A"]
    finally:
        await store.close()

    # The old key alone no longer opens them, and the error names no value.
    store = await open_store(database_url, encryption_keys=[old])
    try:
        with pytest.raises(SecretDecryptError) as caught:
            await store.secrets.get_value(ACME, agent.id, "A")
        assert values["A"] not in str(caught.value)
        assert "'A'" in str(caught.value)
        # A rotation that cannot open a secret changes nothing.
        with pytest.raises(SecretDecryptError):
            await store.secrets.reencrypt_all()
    finally:
        await store.close()
    store = await open_store(database_url, encryption_keys=[new])
    try:
        assert await store.secrets.get_value(ACME, agent.id, "A") == values["A"]
    finally:
        await store.close()


async def test_reencrypt_all_with_nothing_stored(store: Store) -> None:
    assert await store.secrets.reencrypt_all() == 0


async def test_nothing_logged_holds_a_value_or_a_message(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    value, prompt = _plaintext(), f"prompt-{uuid.uuid4().hex}"
    store = await open_store(database_url, encryption_keys=[KEY])
    try:
        agent = await store.agents.create(ACME, ALICE, name="bot")
        await store.secrets.set(ACME, agent.id, "KEY", value, owner=ALICE)
        assert await store.secrets.get_value(ACME, agent.id, "KEY") == value
        conversation = await store.conversations.create(ACME, ALICE)
        await store.messages.append(ACME, conversation.id, role="user", content=prompt)
    finally:
        await store.close()
    assert value not in caplog.text
    assert prompt not in caplog.text
