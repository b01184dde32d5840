"""A node that dies (``kill -9``) while it produces a stream: the other nodes end the
stream as failed within the producer's lease, and a restarted node finishes what was
left ``streaming`` (docs/streams.md, "When a node dies")."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeOpenAI, Script
from tests.server.nodes import serve_node
from tests.support import STREAM_METHODS, postgres_schema, read_stream
from yamabiko.client import Client
from yamabiko.server.auth import mint_token

pytestmark = pytest.mark.postgres

MODEL = "openai/gpt-4.1-mini"
SLOW = Script.count(3000, delay=0.02)
"""A minute of tokens: the generation is still running when its node is killed."""


def environment(secret: str, fake: FakeOpenAI, database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "YAMABIKO_JWT_SECRET": secret,
        "YAMABIKO_REDIS_URL": redis_url,
        "YAMABIKO_DATABASE_URL": database_url,
        "OPENAI_BASE_URL": fake.url,
        "OPENAI_API_KEY": "k",
    }


async def last_message(client: Client, conversation_id: str) -> dict[str, Any]:
    page = await client.call("conversations/messages", {"conversationId": conversation_id})
    message: dict[str, Any] = page["items"][-1]
    return message


async def close_quietly(client: Client) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await client.close()


async def test_a_killed_producer_s_stream_ends_as_failed_on_the_other_node(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    secret = secrets.token_urlsafe(48)
    token = mint_token(secret, sub="alice", tenant=f"t-{uuid.uuid4().hex}")
    async with FakeOpenAI(SLOW) as fake, postgres_schema(postgres_url) as database_url:
        env = environment(secret, fake, database_url, redis_url)
        with ExitStack() as stack:
            a, b = (stack.enter_context(serve_node(tmp_path, name, env)) for name in "ab")
            on_a = await Client.connect(a.url, token=token)
            on_b = await Client.connect(b.url, token=token)
            try:
                started = await on_a.call("chat/send", {"message": "go", "model": MODEL})
                stream_id = started["streamId"]
                sub = on_b.subscribe(*STREAM_METHODS)
                answer = await on_b.call("stream/subscribe", {"streamId": stream_id})
                assert answer["status"] == "live"
                read = await read_stream(on_b, sub, stream_id, deltas=5)

                a.proc.kill()  # SIGKILL: no shutdown, no stream/end, no lease release
                killed = time.monotonic()
                await read_stream(on_b, sub, stream_id, into=read, timeout=15)
                ended_after = time.monotonic() - killed
                print(f"\nkilled producer: the stream ended after {ended_after:.2f} s")

                # Within the lease (5 s) and a reader's check (2.5 s), with room for
                # a loaded machine.
                assert ended_after < 10, ended_after
                assert read.end is not None
                assert read.end["finishReason"] == "error"
                assert read.end["messageId"] == started["messageId"]
                (error,) = read.errors
                assert error["code"] == -32010
                assert error["data"] == {"reason": "producerLost"}
                # Every item once, in order, the error and the end included.
                assert read.seqs == list(range(1, read.end["seq"] + 1))
                assert error["seq"] == read.end["seq"] - 1
                assert read.text == SLOW.text[: len(read.text)]

                # The message holds what reached the broker, finished as an error.
                message = await last_message(on_b, started["conversationId"])
                assert message["status"] == "error"
                assert message["content"] == read.text

                # The stream tells the truth from then on, on any node.
                async with await Client.connect(b.url, token=token) as again:
                    answer = await again.call("stream/subscribe", {"streamId": stream_id})
                    assert answer["status"] == "ended"
                    assert answer["lastSeq"] == read.end["seq"]
                    cancel = await again.call("stream/cancel", {"streamId": stream_id})
                    assert cancel == {"cancelled": False}
            finally:
                await close_quietly(on_a)
                await close_quietly(on_b)


async def test_a_stream_nobody_watched_is_ended_by_the_first_subscribe_after_its_lease(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    secret = secrets.token_urlsafe(48)
    token = mint_token(secret, sub="alice", tenant=f"t-{uuid.uuid4().hex}")
    async with FakeOpenAI(SLOW) as fake, postgres_schema(postgres_url) as database_url:
        env = {**environment(secret, fake, database_url, redis_url), "YAMABIKO_STREAM_LEASE_S": "1"}
        with ExitStack() as stack:
            a, b = (stack.enter_context(serve_node(tmp_path, name, env)) for name in "ab")
            on_a = await Client.connect(a.url, token=token)
            try:
                sub_a = on_a.subscribe(*STREAM_METHODS)
                started = await on_a.call("chat/send", {"message": "go", "model": MODEL})
                stream_id = started["streamId"]
                first = await read_stream(on_a, sub_a, stream_id, deltas=3)
                a.proc.kill()
                a.proc.wait(10)
            finally:
                await close_quietly(on_a)
            async with await Client.connect(b.url, token=token) as on_b:
                # Until the lease lapses the stream is live; then the subscribe itself
                # ends it and answers what it now is.
                async with asyncio.timeout(10):
                    while True:
                        answer = await on_b.call("stream/subscribe", {"streamId": stream_id})
                        await on_b.call("stream/unsubscribe", {"streamId": stream_id})
                        if answer["status"] == "ended":
                            break
                        await asyncio.sleep(0.2)  # the lease's own clock, not a race
                sub = on_b.subscribe(*STREAM_METHODS)
                answer = await on_b.call("stream/subscribe", {"streamId": stream_id})
                assert answer["status"] == "ended"
                read = await read_stream(on_b, sub, stream_id)
                assert read.end is not None
                assert read.end["finishReason"] == "error"
                assert read.text.startswith(first.text)
                message = await last_message(on_b, started["conversationId"])
                assert (message["status"], message["content"]) == ("error", read.text)


async def test_a_restarted_node_finishes_the_messages_its_death_left_streaming(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    secret = secrets.token_urlsafe(48)
    token = mint_token(secret, sub="alice", tenant=f"t-{uuid.uuid4().hex}")
    async with FakeOpenAI(SLOW) as fake, postgres_schema(postgres_url) as database_url:
        env = {**environment(secret, fake, database_url, redis_url), "YAMABIKO_STREAM_LEASE_S": "1"}
        with serve_node(tmp_path, "a", env) as a:
            on_a = await Client.connect(a.url, token=token)
            try:
                sub = on_a.subscribe(*STREAM_METHODS)
                started = await on_a.call("chat/send", {"message": "go", "model": MODEL})
                first = await read_stream(on_a, sub, started["streamId"], deltas=4)
                a.proc.kill()
                a.proc.wait(10)
            finally:
                await close_quietly(on_a)
        # Nobody reads the stream: only the restarted node's sweep can finish it, once
        # the dead node's lease has lapsed.
        with serve_node(tmp_path, "a", env) as again:
            async with await Client.connect(again.url, token=token) as client:
                async with asyncio.timeout(10):
                    while (message := await last_message(client, started["conversationId"]))[
                        "status"
                    ] == "streaming":
                        await asyncio.sleep(0.1)  # the sweep runs on its own timer
                assert message["status"] == "error"
                assert message["content"].startswith(first.text)
                info = await client.call("stream/subscribe", {"streamId": started["streamId"]})
                assert info["status"] == "ended"


async def test_one_node_without_redis_finishes_what_it_left_streaming_before_serving(
    tmp_path: Path,
) -> None:
    secret = secrets.token_urlsafe(48)
    token = mint_token(secret, sub="alice", tenant="acme")
    async with FakeOpenAI(SLOW) as fake:
        env = {"YAMABIKO_JWT_SECRET": secret, "OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        with serve_node(tmp_path, "solo", env) as node:
            client = await Client.connect(node.url, token=token)
            try:
                sub = client.subscribe(*STREAM_METHODS)
                started = await client.call("chat/send", {"message": "go", "model": MODEL})
                await read_stream(client, sub, started["streamId"], deltas=3)
                node.proc.kill()
                node.proc.wait(10)
            finally:
                await close_quietly(client)
        with serve_node(tmp_path, "solo", env) as node:
            async with await Client.connect(node.url, token=token) as client:
                message = await last_message(client, started["conversationId"])
                assert message["status"] == "error"
