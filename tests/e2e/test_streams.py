"""stream/subscribe, unsubscribe and slow readers on one node, over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.fakes import FakeOpenAI, Script
from tests.support import STREAM_METHODS, Running, StreamRead, read_stream, running_server
from yamabiko.client import Client, RemoteError

MODEL = "openai/gpt-4.1-mini"


@asynccontextmanager
async def openai_server(tmp: Path, script: Script) -> AsyncIterator[tuple[FakeOpenAI, Running]]:
    async with FakeOpenAI(script) as fake:
        env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        async with running_server(tmp, env=env) as server:
            yield fake, server


async def start(client: Client, **params: Any) -> tuple[dict[str, Any], Any]:
    sub = client.subscribe(*STREAM_METHODS)
    result = await client.call("chat/send", {"message": "go", "model": MODEL, **params})
    return result, sub


async def subscribe(client: Client, stream_id: str, after_seq: int = 0) -> tuple[Any, Any]:
    sub = client.subscribe(*STREAM_METHODS)
    answer = await client.call("stream/subscribe", {"streamId": stream_id, "afterSeq": after_seq})
    return answer, sub


def assert_exactly_once(read: StreamRead, after_seq: int = 0) -> None:
    assert read.end is not None
    assert read.seqs == list(range(after_seq + 1, read.end["seq"] + 1))


async def test_a_second_session_subscribes_mid_stream_and_gets_every_item_once(
    tmp_path: Path,
) -> None:
    script = Script.count(40, delay=0.005)
    async with (
        openai_server(tmp_path, script) as (_, server),
        await server.client() as sender,
        await server.client() as watcher,
    ):
        result, sender_sub = await start(sender)
        stream_id = result["streamId"]
        sent = await read_stream(sender, sender_sub, stream_id, deltas=10)
        answer, sub = await subscribe(watcher, stream_id)
        assert answer["streamId"] == stream_id
        assert answer["status"] == "live"
        assert 10 <= answer["lastSeq"] < 41
        watched = await read_stream(watcher, sub, stream_id)
        await read_stream(sender, sender_sub, stream_id, into=sent)
        # A third reader from the middle gets only what follows.
        async with await server.client() as late:
            answer, late_sub = await subscribe(late, stream_id, after_seq=7)
            assert (answer["status"], answer["lastSeq"]) == ("ended", 41)
            tail = await read_stream(late, late_sub, stream_id)
    assert_exactly_once(sent)
    assert_exactly_once(watched)
    assert_exactly_once(tail, after_seq=7)
    assert watched.text == sent.text == script.text
    assert tail.text == "".join(script.tokens[7:])
    assert watched.end == sent.end == tail.end


async def test_a_client_that_disconnects_resumes_after_the_last_item_it_saw(
    tmp_path: Path,
) -> None:
    script = Script.count(30, delay=0.005)
    async with openai_server(tmp_path, script) as (_, server):
        client = await server.client()
        result, sub = await start(client)
        stream_id = result["streamId"]
        first = await read_stream(client, sub, stream_id, deltas=8)
        k = first.seqs[-1]
        await client.close()
        async with await server.client() as again:
            _, sub = await subscribe(again, stream_id, after_seq=k)
            rest = await read_stream(again, sub, stream_id)
    assert_exactly_once(rest, after_seq=k)
    assert first.text + rest.text == script.text


async def test_streams_are_their_owners(tmp_path: Path) -> None:
    script = Script.count(50, delay=0.01)
    async with openai_server(tmp_path, script) as (_, server), await server.client() as alice:
        result, _ = await start(alice)
        stream_id = result["streamId"]
        # Another user of the tenant, and an admin of another tenant: not found.
        for sub, tenant, scopes in [("bob", "acme", None), ("alice", "globex", ["admin"])]:
            async with await server.client(sub, tenant, scopes=scopes) as other:
                for method in ("stream/subscribe", "stream/cancel"):
                    with pytest.raises(RemoteError) as refused:
                        await other.call(method, {"streamId": stream_id})
                    assert refused.value.wire_code == -32004
                    assert refused.value.message == f"stream not found: {stream_id}"
        # An admin of the tenant reaches it.
        async with await server.client("root", "acme", scopes=["admin"]) as admin:
            answer, sub = await subscribe(admin, stream_id)
            assert answer["streamId"] == stream_id
            assert_exactly_once(await read_stream(admin, sub, stream_id))
        with pytest.raises(RemoteError) as unknown:
            await alice.call("stream/subscribe", {"streamId": "no-such-stream"})
        assert unknown.value.wire_code == -32004


async def test_subscribe_errors(tmp_path: Path) -> None:
    async with (
        openai_server(tmp_path, Script.count(3)) as (_, server),
        await server.client() as client,
    ):
        result, sub = await start(client)
        stream_id = result["streamId"]
        read = await read_stream(client, sub, stream_id)
        assert read.end is not None
        with pytest.raises(RemoteError) as beyond:
            await client.call("stream/subscribe", {"streamId": stream_id, "afterSeq": 99})
        assert beyond.value.wire_code == -32602
        assert beyond.value.data == {"afterSeq": 99, "lastSeq": 4}
        with pytest.raises(RemoteError) as negative:
            await client.call("stream/subscribe", {"streamId": stream_id, "afterSeq": -1})
        assert negative.value.wire_code == -32602


async def test_subscribing_twice_is_a_conflict_and_unsubscribe_stops_delivery(
    tmp_path: Path,
) -> None:
    script = Script.count(60, delay=0.01)
    async with openai_server(tmp_path, script) as (_, server), await server.client() as client:
        result, sub = await start(client)
        stream_id = result["streamId"]
        with pytest.raises(RemoteError) as twice:
            await client.call("stream/subscribe", {"streamId": stream_id})
        assert twice.value.wire_code == -32009
        await read_stream(client, sub, stream_id, deltas=3)
        assert await client.call("stream/unsubscribe", {"streamId": stream_id}) == {
            "unsubscribed": True
        }
        assert await client.call("stream/unsubscribe", {"streamId": stream_id}) == {
            "unsubscribed": False
        }
        # What was queued before the answer is all there is: a watcher reads the stream
        # to its end, then a ping (answered after anything queued for this client)
        # shows nothing more came, while the generation went on to be stored whole.
        _drain(sub)
        async with await server.client() as watcher:
            _, watch_sub = await subscribe(watcher, stream_id)
            watched = await read_stream(watcher, watch_sub, stream_id)
        await client.call("ping")
        assert [n for n in _drain(sub) if n.params.get("streamId") == stream_id] == []
        page = await client.call(
            "conversations/messages", {"conversationId": result["conversationId"]}
        )
        assert page["items"][-1]["content"] == script.text == watched.text
        assert page["items"][-1]["status"] == "complete"


def _drain(sub: Any) -> list[Any]:
    out = []
    while not sub.queue.empty():
        note = sub.queue.get_nowait()
        if note is not None:
            out.append(note)
    return out


async def test_subscriptions_are_bounded_per_session(tmp_path: Path) -> None:
    async with (
        FakeOpenAI(Script.count(200, delay=0.01)) as fake,
        running_server(
            tmp_path,
            env={"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"},
            max_subscriptions=2,
        ) as server,
        await server.client() as client,
    ):
        streams = [
            (await client.call("chat/send", {"message": "go", "model": MODEL}))["streamId"]
            for _ in range(2)
        ]
        with pytest.raises(RemoteError) as full:
            await client.call("chat/send", {"message": "go", "model": MODEL})
        assert full.value.wire_code == -32029
        assert full.value.data["limit"] == "maxSubscriptions"
        assert len((await client.call("conversations/list"))["items"]) == 2
        # A slot frees when a subscription goes.
        await client.call("stream/unsubscribe", {"streamId": streams[0]})
        streams.append(
            (await client.call("chat/send", {"message": "go", "model": "local/default"}))[
                "streamId"
            ]
        )
        for stream_id in streams:
            await client.call("stream/cancel", {"streamId": stream_id})


async def raw_reader(server: Running) -> ClientConnection:
    """A socket client that reads only when told: a small receive buffer, and the
    library's own queue limited to one frame, so that not reading backs up the server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.app.port))
    ws = await connect(
        server.url,
        sock=sock,
        additional_headers={"Authorization": f"Bearer {server.token()}"},
        max_queue=1,
        max_size=None,
        compression=None,
    )
    initialize = {"protocolVersion": "yamabiko/1"}
    await ws.send(
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize})
    )
    assert "result" in json.loads(await ws.recv())
    return ws


async def test_a_reader_that_stops_does_not_slow_another_and_gets_merged_deltas(
    tmp_path: Path,
) -> None:
    token = "x" * 2000
    script = Script(tokens=[f"{i:05d}{token}" for i in range(3000)])  # ~6 MB, at once
    async with openai_server(tmp_path, script) as (_fake, server), await server.client() as fast:
        slow = await raw_reader(server)
        try:
            fast_sub = fast.subscribe(*STREAM_METHODS)
            result = await fast.call(
                "chat/send",
                {"message": "go", "model": MODEL},
            )
            stream_id = result["streamId"]
            await slow.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "stream/subscribe",
                        "params": {"streamId": stream_id},
                    }
                )
            )
            # The slow reader reads nothing while the fast one takes the whole stream.
            read = await read_stream(fast, fast_sub, stream_id, timeout=20)
            assert_exactly_once(read)
            assert read.text == script.text
            # Now the slow one reads: every seq once, some merged, the same text.
            slow_read = StreamRead(stream_id)
            async with asyncio.timeout(20):
                while slow_read.end is None:
                    message = json.loads(await slow.recv())
                    if message.get("params", {}).get("streamId") == stream_id:
                        slow_read.items.append((message["method"], message["params"]))
            assert_exactly_once(slow_read)
            assert slow_read.merged > 0
            assert len(slow_read.deltas) < len(read.deltas)
            assert slow_read.text == script.text
        finally:
            await slow.close()


async def test_when_the_broker_fails_mid_stream_the_engine_stops_and_the_text_is_kept(
    tmp_path: Path,
) -> None:
    async with (
        openai_server(tmp_path, Script.count(500, delay=0.01)) as (fake, server),
        await server.client() as client,
    ):
        result, sub = await start(client)
        stream_id = result["streamId"]
        read = await read_stream(client, sub, stream_id, deltas=3)
        await server.app.services.broker.close()  # as if Redis went away
        await fake.wait_disconnect(timeout=2.0)
        # This subscription failed: the client is told where it stopped.
        note = await client.next(sub)
        while note.method == "stream/delta":
            read.items.append((note.method, note.params))
            note = await client.next(sub)
        assert note.method == "stream/error"
        assert note.params["code"] == -32603
        assert note.params["seq"] == read.seqs[-1]
        async with asyncio.timeout(5):
            while True:
                page = await client.call(
                    "conversations/messages", {"conversationId": result["conversationId"]}
                )
                stored = page["items"][-1]
                if stored["status"] != "streaming":
                    break
                await asyncio.sleep(0.02)
        assert stored["status"] == "error"
        assert stored["content"].startswith(read.text)
        assert fake.last.tokens_sent < 500
