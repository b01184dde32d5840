"""chat/send asks the provider before the turn is stored, and keeps every guarantee
(docs/decisions/0075-request-path.md): refusals never reach the provider; a turn that
cannot be stored closes the provider's stream and bills nothing; a reply that arrives
before its turn is stored is held back, then delivered whole, in order, once each."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.fakes import FakeOpenAI, Script
from tests.support import STREAM_METHODS, Running, read_stream, running_server
from yamabiko.client import RemoteError

ADMIN = ("chat", "agent", "admin")
MODEL = "openai/gpt-4.1-mini"
SLOW_ROWS = 1500
"""The turn write's trigger joins this table with itself: ~2 M row pairs, a few hundred
ms of SQLite on the store's thread, far longer than the fake provider's whole reply."""


@asynccontextmanager
async def node_with_openai(tmp: Path, fake: FakeOpenAI) -> AsyncIterator[Running]:
    env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "env-key"}
    async with running_server(tmp, env=env) as server:
        yield server


def add_trigger(server: Running, when_content: str, *, fail: bool) -> None:
    """Make the store itself slow (and maybe failing) at inserting one message: a
    trigger in the node's own SQLite file, written through a second connection."""
    with sqlite3.connect(server.data_dir / "yamabiko.db", timeout=10) as db:
        db.execute("CREATE TABLE slow_rows (x INTEGER)")
        db.executemany("INSERT INTO slow_rows VALUES (?)", [(i,) for i in range(SLOW_ROWS)])
        action = "RAISE(ABORT, 'the disk is full')" if fail else "NULL"
        db.execute(
            f"CREATE TRIGGER slow_turn BEFORE INSERT ON messages"
            f" WHEN NEW.content = '{when_content}' BEGIN"
            f" SELECT {action} WHERE"
            " (SELECT count(*) FROM slow_rows a, slow_rows b WHERE a.x + b.x >= 0) > 0;"
            " END"
        )


async def test_refusals_never_reach_the_provider(tmp_path: Path) -> None:
    async with (
        FakeOpenAI(Script.count(100, delay=0.05)) as fake,
        node_with_openai(tmp_path, fake) as server,
        await server.client(scopes=ADMIN) as client,
    ):
        sub = client.subscribe(*STREAM_METHODS)
        first = await client.call("chat/send", {"message": "one", "model": MODEL})
        await read_stream(client, sub, first["streamId"], deltas=1)
        assert len(fake.requests) == 1
        for params, code in [
            ({"message": "two", "conversationId": first["conversationId"]}, -32009),
            ({"message": "hi", "model": MODEL, "conversationId": "missing"}, -32004),
            ({"message": "hi", "model": MODEL, "agentId": "missing"}, -32004),
            ({"message": "x " * 49_000, "model": "openai/unknown", "maxTokens": 16_000}, -32602),
        ]:
            with pytest.raises(RemoteError) as refused:
                await client.call("chat/send", params)
            assert refused.value.wire_code == code, params
        await client.call("stream/cancel", {"streamId": first["streamId"]})
        await client.call("tenants/create", {"name": "Acme", "monthlyBudgetUsd": 0})
        with pytest.raises(RemoteError) as broke:
            await client.call("chat/send", {"message": "hi", "model": MODEL})
        assert broke.value.wire_code == -32011
        # Only the first send was let through to the provider.
        assert len(fake.requests) == 1


async def test_a_turn_that_cannot_be_stored_closes_the_provider_stream_and_bills_nothing(
    tmp_path: Path,
) -> None:
    async with (
        FakeOpenAI(Script.count(200, delay=0.05)) as fake,
        node_with_openai(tmp_path, fake) as server,
        await server.client(scopes=ADMIN) as client,
    ):
        created = await client.call("conversations/create", {"title": "mix"})
        add_trigger(server, "refused turn", fail=True)
        sub = client.subscribe(*STREAM_METHODS)
        params = {"message": "refused turn", "model": MODEL, "conversationId": created["id"]}
        with pytest.raises(RemoteError) as failed:
            await client.call("chat/send", params)
        assert failed.value.wire_code == -32603
        assert "disk" not in str(failed.value)  # the store's words stay in the log
        # The provider was asked while the turn was written, and hung up on at once.
        assert len(fake.requests) == 1
        await fake.wait_disconnect(timeout=5.0)
        assert fake.last.tokens_sent < 100
        report = await client.call(
            "usage/report",
            {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "groupBy": "model"},
        )
        assert report["items"] == []
        page = await client.call("conversations/messages", {"conversationId": created["id"]})
        assert page["items"] == []
        # Nothing of its reply reached the client (those answers came after anything
        # sent before them).
        assert sub.queue.empty()
        # The conversation is not left locked: the next message is answered.
        fake.reset(Script(tokens=["Fine", "."]))
        params["message"] = "stored turn"
        result = await client.call("chat/send", params)
        read = await read_stream(client, sub, result["streamId"])
        assert read.text == "Fine."


async def test_a_reply_faster_than_its_turn_write_is_held_back_then_delivered_whole(
    tmp_path: Path,
) -> None:
    script = Script.count(12)
    async with (
        FakeOpenAI(script) as fake,
        node_with_openai(tmp_path, fake) as server,
        await server.client(scopes=ADMIN) as client,
    ):
        created = await client.call("conversations/create", {"title": "mix"})
        add_trigger(server, "slow turn", fail=False)
        sub = client.subscribe(*STREAM_METHODS)
        params = {"message": "slow turn", "model": MODEL, "conversationId": created["id"]}
        result = await client.call("chat/send", params)
        answered = time.monotonic()
        read = await read_stream(client, sub, result["streamId"])
        # The provider had finished its reply before the turn was stored (the answer
        # comes after the store), and the stream still holds all of it, once, in order.
        completed = fake.last.completed_at
        assert completed is not None
        assert completed < answered
        assert read.text == script.text
        assert read.seqs == list(range(1, len(script.tokens) + 2))
        assert read.end is not None
        assert read.end["finishReason"] == "stop"
        page = await client.call("conversations/messages", {"conversationId": created["id"]})
        user, assistant = page["items"]
        assert (user["role"], user["content"]) == ("user", "slow turn")
        assert (assistant["content"], assistant["status"]) == (script.text, "complete")
