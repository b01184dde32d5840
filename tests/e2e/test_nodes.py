"""Two nodes sharing PostgreSQL and Redis: a stream produced on one is read, resumed and
cancelled on the other, and a conversation's lock holds across both. (The nodes run in
this process; tests/server/test_scaleout.py runs them as two ``yamabiko serve``.)"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from tests.fakes import FakeOpenAI, Script
from tests.support import (
    STREAM_METHODS,
    Running,
    postgres_schema,
    read_stream,
    running_server,
)
from yamabiko.client import RemoteError

pytestmark = pytest.mark.postgres

MODEL = "openai/gpt-4.1-mini"


@asynccontextmanager
async def two_nodes(
    tmp: Path, fake: FakeOpenAI, postgres_url: str, redis_url: str
) -> AsyncIterator[tuple[Running, Running]]:
    secret = secrets.token_urlsafe(48)
    env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
    async with postgres_schema(postgres_url) as database_url, AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(
                running_server(
                    tmp / name,
                    env=env,
                    secret=secret,
                    database_url=database_url,
                    redis_url=redis_url,
                )
            )
            for name in ("a", "b")
        ]
        yield nodes[0], nodes[1]


async def test_a_stream_started_on_one_node_resumes_on_the_other(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    script = Script.count(40, delay=0.005)
    async with (
        FakeOpenAI(script) as fake,
        two_nodes(tmp_path, fake, postgres_url, redis_url) as (
            a,
            b,
        ),
    ):
        client = await a.client()
        sub = client.subscribe(*STREAM_METHODS)
        result = await client.call("chat/send", {"message": "go", "model": MODEL})
        stream_id = result["streamId"]
        first = await read_stream(client, sub, stream_id, deltas=6)
        k = first.seqs[-1]
        await client.close()
        async with await b.client() as again:
            sub = again.subscribe(*STREAM_METHODS)
            answer = await again.call("stream/subscribe", {"streamId": stream_id, "afterSeq": k})
            assert answer["status"] in ("live", "ended")
            rest = await read_stream(again, sub, stream_id)
            assert rest.end is not None
            assert rest.seqs == list(range(k + 1, rest.end["seq"] + 1))
            assert first.text + rest.text == script.text
            # Node b reads the message node a stored.
            page = await again.call(
                "conversations/messages", {"conversationId": result["conversationId"]}
            )
            assert page["items"][-1]["content"] == script.text


async def test_the_conversation_lock_and_cancel_reach_across_nodes(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    async with (
        FakeOpenAI(Script.count(500, delay=0.01)) as fake,
        two_nodes(tmp_path, fake, postgres_url, redis_url) as (a, b),
        await a.client() as on_a,
        await b.client() as on_b,
    ):
        sub = on_a.subscribe(*STREAM_METHODS)
        result = await on_a.call("chat/send", {"message": "go", "model": MODEL})
        stream_id = result["streamId"]
        read = await read_stream(on_a, sub, stream_id, deltas=2)
        with pytest.raises(RemoteError) as busy:
            await on_b.call(
                "chat/send", {"message": "too", "conversationId": result["conversationId"]}
            )
        assert busy.value.wire_code == -32009
        asked = time.monotonic()
        assert await on_b.call("stream/cancel", {"streamId": stream_id}) == {"cancelled": True}
        gone = await fake.wait_disconnect(timeout=1.0)
        assert gone - asked < 0.1
        await read_stream(on_a, sub, stream_id, into=read)
        assert read.end is not None
        assert read.end["finishReason"] == "cancelled"
        # The lock went with the generation: node b may now send.
        fake.reset(Script(tokens=["next"]))
        sub_b = on_b.subscribe(*STREAM_METHODS)
        again = await on_b.call(
            "chat/send", {"message": "now", "conversationId": result["conversationId"]}
        )
        answer = await read_stream(on_b, sub_b, again["streamId"])
        assert answer.text == "next"
