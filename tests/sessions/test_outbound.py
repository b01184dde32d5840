"""The outbound queue and its policies (docs/protocol.md, Flow control), with a client that stops
reading on demand: order, replace, merge, pause, backpressure, stall detection, close."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.sessions.memory import WAIT, MemoryTransport, settle
from yamabiko.protocol.messages import encode_notification
from yamabiko.sessions.outbound import MERGE_ABOVE_BYTES, Binary, Mergeable, Outbound


class Delta:
    """A text delta of one stream: merging concatenates, keeping the first ``fromSeq``
    and the last ``seq`` (the shape of ``chat/delta``)."""

    def __init__(self, stream: str, from_seq: int, seq: int, text: str) -> None:
        self.stream = stream
        self.from_seq = from_seq
        self.seq = seq
        self.text = text
        self._encoded = encode_notification(
            "test/delta", {"stream": stream, "fromSeq": from_seq, "seq": seq, "text": text}
        )

    def merge(self, newer: Mergeable) -> Delta:
        assert isinstance(newer, Delta)
        assert newer.stream == self.stream
        return Delta(self.stream, self.from_seq, newer.seq, self.text + newer.text)

    def encode(self) -> bytes:
        return self._encoded

    @property
    def size(self) -> int:
        return len(self._encoded)


def note(name: str, pad: int = 0) -> bytes:
    return encode_notification("test/item", {"name": name, "pad": "x" * pad})


def names(transport: MemoryTransport) -> list[Any]:
    """What the client read, by name (binary frames as ``bin:<payload>``)."""
    out: list[Any] = []
    for kind, data in transport.frames:
        if kind == "binary":
            out.append(f"bin:{data.decode()}")
        else:
            params = json.loads(data)["params"]
            out.append(params.get("name", params.get("text")))
    return out


async def hold(outbound: Outbound, transport: MemoryTransport, name: str = "held") -> None:
    """Make the client stop reading with one message handed over but not drained."""
    transport.block()
    asyncio.get_running_loop().create_task(outbound.send(note(name)))
    await transport.wait_writing()


async def release(outbound: Outbound, transport: MemoryTransport) -> None:
    transport.unblock()
    await asyncio.wait_for(outbound.drain(), WAIT)


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def outbound(transport: MemoryTransport) -> Outbound:
    return Outbound(transport, max_bytes=10_000)


async def test_idle_send_goes_straight_out(outbound: Outbound, transport: MemoryTransport) -> None:
    await outbound.send(note("a"))
    assert names(transport) == ["a"]  # written by the time send returns
    assert outbound.queued_bytes == 0
    assert outbound.sent == 1


async def test_order_is_kept_across_direct_and_queued_paths(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    await outbound.send(note("1"))  # direct
    await hold(outbound, transport, "2")  # direct, held
    outbound.push(note("3"))
    outbound.replace("doc", note("4"))
    outbound.merge("stream", Delta("s", 1, 1, "5"))
    await asyncio.wait_for(outbound.push_wait(Binary(b"6")), WAIT)
    await asyncio.wait_for(outbound.send(note("7")), WAIT)  # queued: under the bound
    assert len(outbound) == 5
    assert names(transport) == ["1", "2"]
    await release(outbound, transport)
    await outbound.send(note("8"))  # idle again: direct
    outbound.push(note("9"))
    await asyncio.wait_for(outbound.drain(), WAIT)
    assert names(transport) == ["1", "2", "3", "4", "5", "bin:6", "7", "8", "9"]
    assert outbound.queued_bytes == 0
    assert outbound.sent == 9


async def test_push_while_idle_is_written_without_a_caller_waiting(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    outbound.push(note("a"))
    outbound.push(note("b"))
    await transport.wait_frames(2)
    assert names(transport) == ["a", "b"]
    # A response right after a push, before the queue's writer ran: it must not overtake.
    outbound.push(note("c"))
    async with asyncio.timeout(WAIT):  # not wait_for: its task would let the writer run
        await outbound.send(note("d"))
        await outbound.drain()
    assert names(transport) == ["a", "b", "c", "d"]


async def test_replace_keeps_the_newest_in_the_first_position(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    await hold(outbound, transport)
    outbound.replace("doc1", note("doc1 v1", pad=500))
    outbound.push(note("other"))
    outbound.replace("doc2", note("doc2 v1"))
    outbound.replace("doc1", note("doc1 v2"))
    outbound.replace("doc1", note("doc1 v3"))
    assert outbound.replaced == 2
    expected_bytes = sum(len(note(n)) for n in ("doc1 v3", "other", "doc2 v1"))
    assert outbound.queued_bytes == expected_bytes  # the replaced ones no longer count
    await release(outbound, transport)
    assert names(transport) == ["held", "doc1 v3", "other", "doc2 v1"]
    # Once written, the key is free: the next suggestion is queued again, not lost.
    outbound.replace("doc1", note("doc1 v4"))
    await asyncio.wait_for(outbound.drain(), WAIT)
    assert names(transport)[-1] == "doc1 v4"
    assert outbound.queued_bytes == 0


async def test_merge_folds_deltas_into_one_without_losing_text(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    words = [f"w{i} " for i in range(50)]
    await hold(outbound, transport)
    for seq, word in enumerate(words, start=1):
        outbound.merge("stream-a", Delta("a", seq, seq, word))
        outbound.merge("stream-b", Delta("b", seq, seq, word.upper()))
        if seq == 10:
            outbound.push(note("between"))
    assert outbound.merged == 98
    assert len(outbound) == 3
    await release(outbound, transport)
    sent = [json.loads(data)["params"] for _, data in transport.frames[1:]]
    assert [p.get("stream", p.get("name")) for p in sent] == ["a", "b", "between"]
    assert sent[0] == {"stream": "a", "fromSeq": 1, "seq": 50, "text": "".join(words)}
    assert sent[1] == {"stream": "b", "fromSeq": 1, "seq": 50, "text": "".join(words).upper()}
    assert outbound.queued_bytes == 0


async def test_a_reader_that_keeps_up_gets_every_delta_on_its_own(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    for seq in range(1, 6):  # queued within one loop iteration, before the writer runs
        outbound.merge("s", Delta("s", seq, seq, f"{seq} "))
    await asyncio.wait_for(outbound.drain(), WAIT)
    sent = [json.loads(data)["params"] for _, data in transport.frames]
    assert [(p["fromSeq"], p["seq"]) for p in sent] == [(i, i) for i in range(1, 6)]
    assert outbound.merged == 0


async def test_merge_across_stalls_is_contiguous(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    """Deltas produced while earlier ones are on the wire start a new item: the client
    can rebuild the text, and every seq is covered exactly once."""
    words = [f"{i}," for i in range(1, 61)]
    for seq, word in enumerate(words, start=1):
        if seq % 20 == 1:
            transport.block()
        outbound.merge("s", Delta("s", seq, seq, word))
        if seq % 20 == 5:
            await transport.wait_writing()
        if seq % 20 == 0:
            await release(outbound, transport)
    await asyncio.wait_for(outbound.drain(), WAIT)
    sent = [json.loads(data)["params"] for _, data in transport.frames]
    assert 3 < len(sent) < len(words)  # some were merged, not all into one
    assert "".join(p["text"] for p in sent) == "".join(words)
    expected_from = 1
    for params in sent:
        assert params["fromSeq"] == expected_from
        expected_from = params["seq"] + 1
    assert expected_from == len(words) + 1


async def test_push_wait_pauses_the_producer_over_half_the_bound(
    transport: MemoryTransport,
) -> None:
    outbound = Outbound(transport, max_bytes=1000)
    await hold(outbound, transport)
    await asyncio.wait_for(outbound.push_wait(Binary(b"under")), WAIT)  # room: no wait
    outbound.push(note("big", pad=600))
    assert outbound.queued_bytes > 500
    producer = asyncio.get_running_loop().create_task(outbound.push_wait(Binary(b"frame")))
    await settle()
    assert not producer.done()  # the producer is paused
    assert len(outbound) == 2  # and the frame is not queued yet
    transport.unblock()
    await asyncio.wait_for(producer, WAIT)  # resumes once the client reads
    await asyncio.wait_for(outbound.drain(), WAIT)
    assert names(transport) == ["held", "bin:under", "big", "bin:frame"]
    assert [kind for kind, _ in transport.frames] == ["text", "binary", "text", "binary"]


async def test_push_wait_resumes_below_half_not_only_when_empty(
    transport: MemoryTransport,
) -> None:
    outbound = Outbound(transport, max_bytes=1000)
    await hold(outbound, transport)
    for i in range(6):
        outbound.push(note(f"n{i}", pad=100))  # ~6 x 140 bytes
    producer = asyncio.get_running_loop().create_task(outbound.push_wait(Binary(b"frame")))
    await settle()
    assert not producer.done()
    # Let the client read one message at a time and watch when the producer resumes.
    queued_when_resumed = None
    for _ in range(10):
        transport.release(1)
        await settle(5)
        if producer.done():
            queued_when_resumed = outbound.queued_bytes
            break
    assert queued_when_resumed is not None
    assert 0 < queued_when_resumed <= 500
    await release(outbound, transport)
    assert names(transport)[-1] == "bin:frame"


async def test_send_waits_for_room_over_the_bound(transport: MemoryTransport) -> None:
    outbound = Outbound(transport, max_bytes=200)
    await hold(outbound, transport)
    await asyncio.wait_for(outbound.send(note("fits")), WAIT)  # under the bound: no wait
    outbound.push(note("big", pad=300))
    responder = asyncio.get_running_loop().create_task(outbound.send(note("response")))
    await settle()
    assert not responder.done()  # backpressure: the session stops reading requests
    assert names(transport) == ["held"]
    transport.unblock()
    await asyncio.wait_for(responder, WAIT)
    await asyncio.wait_for(outbound.drain(), WAIT)
    assert names(transport) == ["held", "fits", "big", "response"]


async def test_stalled_for_reports_a_write_the_client_does_not_read(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    assert outbound.stalled_for(time.monotonic() + 100) == 0.0
    before = time.monotonic()
    await hold(outbound, transport)
    stalled = outbound.stalled_for(time.monotonic() + 30)
    assert 30 <= stalled <= 30 + (time.monotonic() - before)
    await release(outbound, transport)
    assert outbound.stalled_for(time.monotonic() + 100) == 0.0


async def test_stalled_for_reports_a_queued_write_too(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    transport.block()
    outbound.push(note("queued"))  # written by the queue's own writer
    await transport.wait_writing()
    assert outbound.stalled_for(time.monotonic() + 5) >= 5
    await release(outbound, transport)
    assert outbound.stalled_for(time.monotonic() + 5) == 0.0


async def test_close_wakes_a_paused_producer_and_drops_its_frame(
    transport: MemoryTransport,
) -> None:
    outbound = Outbound(transport, max_bytes=100)
    await hold(outbound, transport)
    outbound.push(note("big", pad=200))
    producer = asyncio.get_running_loop().create_task(outbound.push_wait(Binary(b"frame")))
    await settle()
    assert not producer.done()
    outbound.close()
    await asyncio.wait_for(producer, WAIT)
    assert len(outbound) == 0
    assert outbound.queued_bytes == 0
    transport.unblock()
    await settle()
    assert names(transport) == ["held"]  # the backlog is dropped, not written


async def test_close_wakes_a_waiting_sender_with_connection_error(
    transport: MemoryTransport,
) -> None:
    outbound = Outbound(transport, max_bytes=100)
    await hold(outbound, transport)
    outbound.push(note("big", pad=200))
    responder = asyncio.get_running_loop().create_task(outbound.send(note("response")))
    await settle()
    assert not responder.done()
    outbound.close()
    try:
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(responder, WAIT)
    finally:
        transport.unblock()
        await settle()
    assert names(transport) == ["held"]


async def test_after_close_sends_fail_and_the_rest_is_ignored(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    outbound.close()
    with pytest.raises(ConnectionError):
        await outbound.send(note("a"))
    outbound.push(note("b"))
    outbound.replace("k", note("c"))
    outbound.merge("m", Delta("m", 1, 1, "d"))
    await asyncio.wait_for(outbound.push_wait(Binary(b"e")), WAIT)
    await asyncio.wait_for(outbound.drain(), WAIT)
    await settle()
    assert transport.frames == []
    assert len(outbound) == 0


async def test_a_dead_connection_closes_the_queue(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    transport.block()
    outbound.push(note("a"))
    outbound.push(note("b"))
    await transport.wait_writing()
    await transport.close(1006, "gone")  # the held write fails
    await asyncio.wait_for(outbound.drain(), WAIT)
    with pytest.raises(ConnectionError):
        await outbound.send(note("c"))
    assert names(transport) == ["a"]
    assert len(outbound) == 0


async def test_a_large_burst_merges_before_the_socket_pushes_back(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    """A replay read from history in one go: past ``MERGE_ABOVE_BYTES`` queued, the
    rest folds into one delta instead of queueing every item."""
    pad = "x" * 1000
    for seq in range(1, 201):  # ~200 KB within one loop iteration
        outbound.merge("s", Delta("s", seq, seq, f"{seq}{pad}"))
    # Separate items up to the threshold, then one growing merged item.
    each = len(Delta("s", 1, 1, f"1{pad}").encode())
    assert MERGE_ABOVE_BYTES // each <= len(outbound) <= MERGE_ABOVE_BYTES // each + 2
    assert outbound.merged == 200 - len(outbound)
    await asyncio.wait_for(outbound.drain(), WAIT)
    sent = [json.loads(data)["params"] for _, data in transport.frames]
    assert "".join(p["text"] for p in sent) == "".join(f"{i}{pad}" for i in range(1, 201))
    assert sent[0] == {"stream": "s", "fromSeq": 1, "seq": 1, "text": f"1{pad}"}
    assert sent[-1]["seq"] == 200
    assert sent[-1]["fromSeq"] < 200


async def test_discard_drops_a_waiting_item_and_keeps_the_rest(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    await hold(outbound, transport)
    transport.block()
    outbound.push(note("blocked"))
    await transport.wait_writing()
    outbound.replace("doc", note("doc v1", pad=100))
    outbound.push(note("after"))
    before = outbound.queued_bytes
    assert outbound.discard("doc") is True
    assert outbound.discard("doc") is False
    assert outbound.queued_bytes < before
    outbound.replace("doc", note("doc v2"))
    await release(outbound, transport)
    assert names(transport)[1:] == ["blocked", "after", "doc v2"]


async def test_an_item_pushed_unmerged_is_never_overtaken_by_a_later_merge(
    outbound: Outbound, transport: MemoryTransport
) -> None:
    await hold(outbound, transport)
    transport.block()
    outbound.push(note("blocked"))
    await transport.wait_writing()
    outbound.merge("s", Delta("s", 1, 1, "a"))  # waits, mergeable
    outbound.push_unmerged("s", Delta("s", 2, 2, "b").encode())
    outbound.merge("s", Delta("s", 3, 3, "c"))  # must not fold into seq 1
    await release(outbound, transport)
    sent = [json.loads(data)["params"] for _, data in transport.frames[2:]]
    assert "".join(p["text"] for p in sent) == "abc"
    assert [p["seq"] for p in sent] == [1, 2, 3]
