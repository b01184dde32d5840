"""Retained stream history as a client sees it (docs/streams.md, "Retention"): the node's
byte budget evicts the streams that ended first, a resume past eviction answers
"expired" with the last seq, and audio has a retention of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_audio import AUDIO, receive, synthesize
from tests.e2e.test_streams import MODEL, subscribe
from tests.fakes import FakeOpenAI, Script
from tests.support import STREAM_METHODS, Running, read_stream, running_server
from yamabiko.client import Client, RemoteError

BUDGET = 256 * 1024
"""Small enough that a few 600-token replies overflow it."""
TOKENS = 600
STREAMS = 6
WAIT_S = 10.0


@asynccontextmanager
async def node(tmp: Path, script: Script, **settings: Any) -> AsyncIterator[Running]:
    """A node whose ``openai/...`` models reach a fake serving ``script``."""
    async with FakeOpenAI(script) as fake:
        env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        async with running_server(tmp, env=env, **settings) as server:
            yield server


async def chat(client: Client, message: str = "go") -> str:
    """One reply read to its end; its stream id."""
    sub = client.subscribe(*STREAM_METHODS)
    result = await client.call("chat/send", {"message": message, "model": MODEL})
    read = await read_stream(client, sub, result["streamId"])
    assert read.end is not None
    return str(result["streamId"])


async def resume(client: Client, stream_id: str) -> dict[str, Any] | RemoteError:
    """``stream/subscribe`` from the start: its answer, or the error it got."""
    try:
        answer, _ = await subscribe(client, stream_id, after_seq=0)
    except RemoteError as exc:
        return exc
    await client.call("stream/unsubscribe", {"streamId": stream_id})
    return dict(answer)


async def test_the_byte_budget_evicts_the_streams_that_ended_first(tmp_path: Path) -> None:
    script = Script.count(TOKENS)
    async with (
        node(tmp_path, script, stream_history_bytes=BUDGET) as server,
        await server.client() as alice,
    ):
        ids = [await chat(alice) for _ in range(STREAMS)]
        answers = [await resume(alice, stream_id) for stream_id in ids]
    expired = [i for i, a in enumerate(answers) if isinstance(a, RemoteError)]
    kept = [i for i, a in enumerate(answers) if not isinstance(a, RemoteError)]
    # The oldest went first: every evicted stream ended before every kept one.
    assert expired, "six replies should not fit a 256 KiB budget"
    assert kept, "the newest reply must still be there"
    assert expired == list(range(len(expired)))
    for i in expired:
        error = answers[i]
        assert isinstance(error, RemoteError)
        assert error.wire_code == -32004
        # The last seq there was: every delta and the stream/end.
        assert error.data == {"reason": "expired", "lastSeq": TOKENS + 1}
    for i in kept:
        answer = answers[i]
        assert isinstance(answer, dict)
        assert (answer["status"], answer["lastSeq"]) == ("ended", TOKENS + 1)


async def test_a_kept_stream_replays_whole_and_an_evicted_one_is_never_a_silent_gap(
    tmp_path: Path,
) -> None:
    script = Script.count(TOKENS)
    async with node(tmp_path, script, stream_history_bytes=BUDGET) as server:
        async with await server.client() as alice:
            ids = [await chat(alice) for _ in range(STREAMS)]
        # A reconnecting client resumes the newest from the middle...
        async with await server.client() as again:
            _, sub = await subscribe(again, ids[-1], after_seq=100)
            rest = await read_stream(again, sub, ids[-1])
            assert rest.seqs == list(range(101, TOKENS + 2))
            assert rest.text == "".join(script.tokens[100:])
            # ...and the oldest, evicted, from anywhere: expired, with no item sent.
            oldest = again.subscribe(*STREAM_METHODS)
            with pytest.raises(RemoteError) as caught:
                await again.call("stream/subscribe", {"streamId": ids[0], "afterSeq": 100})
            assert caught.value.data == {"reason": "expired", "lastSeq": TOKENS + 1}
            with pytest.raises(TimeoutError):
                await again.next(oldest, 0.2)


async def test_an_expired_stream_is_still_unknown_to_anyone_else(tmp_path: Path) -> None:
    script = Script.count(TOKENS)
    async with node(tmp_path, script, stream_history_bytes=BUDGET) as server:
        async with await server.client() as alice:
            ids = [await chat(alice) for _ in range(STREAMS)]
            mine = await resume(alice, ids[0])
        async with await server.client("mallory") as mallory:
            theirs = await resume(mallory, ids[0])
    assert isinstance(mine, RemoteError)
    assert mine.data["reason"] == "expired"
    assert isinstance(theirs, RemoteError)
    assert theirs.wire_code == -32004
    assert theirs.data is None or "lastSeq" not in theirs.data


async def test_audio_has_its_own_retention_shorter_than_text(tmp_path: Path) -> None:
    script = Script.count(20)
    async with (
        node(tmp_path, script, stream_audio_retention_s=1.0) as server,
        await server.client() as alice,
    ):
        text_id = await chat(alice)
        result, first = await synthesize(alice, format="pcm16", frameMs=100)
        assert first.end is not None
        audio_id = result["streamId"]
        ended_at = time.monotonic()
        # Within its retention a reconnecting client gets every frame again.
        async with await server.client() as again:
            sub = again.subscribe(*AUDIO)
            answer = await again.call("stream/subscribe", {"streamId": audio_id, "afterSeq": 0})
            assert answer["status"] == "ended"
            replay = await receive(again, sub, audio_id, binary=False)
        assert replay.payload == first.payload
        assert replay.seqs == first.seqs
        # After it, "expired" (polled: expiry has no event to wait on)...
        async with asyncio.timeout(WAIT_S):
            while not isinstance(gone := await resume(alice, audio_id), RemoteError):
                await asyncio.sleep(0.05)
        assert time.monotonic() - ended_at >= 1.0
        assert gone.wire_code == -32004
        assert gone.data == {"reason": "expired", "lastSeq": first.end["seq"]}
        # ...while the text stream that ended before it is still there.
        kept = await resume(alice, text_id)
        assert isinstance(kept, dict)
        assert kept["status"] == "ended"
