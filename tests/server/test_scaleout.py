"""Two server processes sharing Redis (and PostgreSQL) share each user's rate-limit
bucket, the streams and the conversation locks."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.fakes import FakeOpenAI, Script
from tests.server.nodes import serve_node
from tests.support import STREAM_METHODS, postgres_schema, read_stream
from yamabiko.client import Client, RemoteError
from yamabiko.server.auth import mint_token


@contextmanager
def node(tmp: Path, name: str, env: dict[str, str]) -> Iterator[str]:
    """A ``yamabiko serve`` process (:func:`tests.server.nodes.serve_node`); yields its
    socket URL."""
    with serve_node(tmp, name, env) as running:
        yield running.url


async def test_two_processes_share_one_bucket_through_redis(redis_url: str, tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(48)
    tenant = f"t-{uuid.uuid4().hex}"
    env = {
        "YAMABIKO_JWT_SECRET": secret,
        "YAMABIKO_REDIS_URL": redis_url,
        "YAMABIKO_REQUEST_BURST": "6",
        "YAMABIKO_REQUESTS_PER_SECOND": "0.001",
    }
    token = mint_token(secret, sub="alice", tenant=tenant)
    with ExitStack() as stack:
        urls = [stack.enter_context(node(tmp_path, name, env)) for name in ("a", "b")]
        clients = [await Client.connect(url, token=token) for url in urls]  # 2 tokens
        try:
            for i in range(4):  # 4 tokens left, taken alternately on both nodes
                assert "items" in await clients[i % 2].call("agents/presets")
            for client in clients:  # the shared bucket is empty on each node
                with pytest.raises(RemoteError) as info:
                    await client.call("agents/presets")
                assert info.value.wire_code == -32029
                assert info.value.data["retryAfterMs"] > 0
        finally:
            for client in clients:
                await client.close()
    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(f"yamabiko:rl:*{{{tenant}}}*")]
        assert keys
        await redis.delete(*keys)
    finally:
        await redis.aclose()


async def test_two_processes_share_streams_and_locks_through_postgres_and_redis(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    secret = secrets.token_urlsafe(48)
    token = mint_token(secret, sub="alice", tenant=f"t-{uuid.uuid4().hex}")
    script = Script.count(60, delay=0.01)
    async with FakeOpenAI(script) as fake, postgres_schema(postgres_url) as database_url:
        env = {
            "YAMABIKO_JWT_SECRET": secret,
            "YAMABIKO_REDIS_URL": redis_url,
            "YAMABIKO_DATABASE_URL": database_url,
            "OPENAI_BASE_URL": fake.url,
            "OPENAI_API_KEY": "k",
        }
        with ExitStack() as stack:
            url_a, url_b = (stack.enter_context(node(tmp_path, name, env)) for name in "ab")
            async with (
                await Client.connect(url_a, token=token) as on_a,
                await Client.connect(url_b, token=token) as on_b,
            ):
                sub_a = on_a.subscribe(*STREAM_METHODS)
                started = await on_a.call(
                    "chat/send", {"message": "go", "model": "openai/gpt-4.1-mini"}
                )
                stream_id = started["streamId"]
                await read_stream(on_a, sub_a, stream_id, deltas=3)
                # The lock holds on the other process...
                with pytest.raises(RemoteError) as busy:
                    await on_b.call(
                        "chat/send",
                        {"message": "too", "conversationId": started["conversationId"]},
                    )
                assert busy.value.wire_code == -32009
                # ...which reads the whole stream, from the start, exactly once.
                sub_b = on_b.subscribe(*STREAM_METHODS)
                await on_b.call("stream/subscribe", {"streamId": stream_id})
                read = await read_stream(on_b, sub_b, stream_id)
                assert read.end is not None
                assert read.end["finishReason"] == "stop"
                assert read.seqs == list(range(1, read.end["seq"] + 1))
                assert read.text == script.text
