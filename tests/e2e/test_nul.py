"""A NUL character in a string is refused with -32602 naming the field, alike on SQLite
and PostgreSQL (whose ``text`` cannot hold it), and nothing is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Running, postgres_schema, running_server
from yamabiko.client import RemoteError


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    if request.param == "sqlite":
        async with running_server(tmp_path) as running:
            yield running
        return
    async with (
        postgres_schema(request.getfixturevalue("postgres_url")) as database_url,
        running_server(tmp_path, database_url=database_url) as running,
    ):
        yield running


CASES = [
    ("chat/send", {"message": "hello\x00world"}, "$.message"),
    ("agents/create", {"name": "help\x00er"}, "$.name"),
    ("agents/create", {"name": "ok", "skills": ["mixing", "mas\x00tering"]}, "$.skills[1]"),
    ("conversations/create", {"title": "Chorus\x00ideas"}, "$.title"),
    ("ghost/open", {"docId": "d", "text": "verse\x00"}, "$.text"),
    ("tools/call", {"name": "chat", "arguments": {"message": "\x00"}}, "$.arguments.message"),
]


@pytest.mark.parametrize(("method", "params", "path"), CASES, ids=[c[0] + c[2] for c in CASES])
async def test_a_nul_in_a_string_is_refused_naming_the_field(
    server: Running, method: str, params: dict[str, Any], path: str
) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as refused:
            await client.call(method, params)
        assert refused.value.remote_code == -32602
        assert refused.value.message.endswith(f"NUL character - at {path}")
        # The socket goes on, and nothing was stored by the refused call.
        assert (await client.call("agents/list"))["items"] == []
        assert (await client.call("conversations/list"))["items"] == []


async def test_the_same_strings_without_nul_are_stored(server: Running) -> None:
    async with await server.client() as client:
        agent = await client.call("agents/create", {"name": "helper", "skills": ["mastering"]})
        conversation = await client.call(
            "conversations/create", {"title": "Chorus ideas", "agentId": agent["id"]}
        )
        assert conversation["title"] == "Chorus ideas"
        # An escaped backslash followed by "u0000" is six characters, not a NUL.
        odd = await client.call("agents/create", {"name": "back\\u0000slash"})
        assert odd["name"] == "back\\u0000slash"
