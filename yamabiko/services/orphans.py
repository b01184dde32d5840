"""Streams whose producer was lost: a node died (``kill -9``, a crash, a lost host)
while it produced them. See docs/streams.md, "When a node dies".

Theory of operation. A producing node holds a lease on each of its live streams
(:mod:`yamabiko.store.redis_broker`). When a lease lapses, the first node to notice
(a reader of the stream, a ``stream/subscribe`` or ``stream/cancel`` of it, or the
startup sweep) claims the stream (:meth:`~yamabiko.store.broker.Broker.claim`: one
winner across nodes) and ends it exactly as a failed generation ends: it reads the text that
reached the broker, stores the assistant message with that text and status ``error``,
then publishes a ``stream/error`` (code -32010, ``data: {"reason": "producerLost"}``)
and the ``stream/end`` with ``finishReason: "error"``. Every subscriber, on every node,
reads those two items like any others; later subscribers find the stream ended.

A generation's stream id is its assistant message's id (``chat/send``), so the message
is found from the stream and the stream from the message. A stream with no message
behind it is an audio synthesis: it gets the ``stream/error`` and an ``audio/end``.

The startup sweep covers what no stream recalls any more: messages left ``streaming``
whose stream is gone (expired, or an in-process broker that died with its node) are
stored as ``error`` with the text they had.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime
from typing import Final

import msgspec

from yamabiko.engines.llm import Usage
from yamabiko.protocol import errors
from yamabiko.protocol.messages import encode_notification
from yamabiko.schema import audio as audio_schema
from yamabiko.schema import stream as schema
from yamabiko.schema.objects import Message, MessageId, TenantId
from yamabiko.services.items import KIND_DELTA, KIND_END, KIND_ERROR, KIND_FRAME, end_notification
from yamabiko.store import Store
from yamabiko.store.broker import Broker, BrokerUnavailable, StreamInfo, StreamNotFound

log = logging.getLogger("yamabiko.orphans")

PRODUCER_LOST: Final = "producerLost"
"""``data.reason`` of the ``stream/error`` that ends a stream whose producer was lost."""
LOST_MESSAGE: Final = "the node producing this stream stopped; the stream ends here"
SETTLE_WAIT_S: Final = 2.0
"""How long a request waits for another node that is ending a lost stream."""
_SWEEP_PAGE: Final = 500


class _Delta(msgspec.Struct):
    text: str


class _DeltaNote(msgspec.Struct):
    params: _Delta


_decode_delta = msgspec.json.Decoder(_DeltaNote).decode


class Orphans:
    """Ends streams whose producer was lost, and finishes their messages."""

    def __init__(self, *, store: Store, broker: Broker) -> None:
        self._store = store
        self._broker = broker

    async def settle(self, info: StreamInfo) -> StreamInfo | None:
        """``info`` as it stands once a lost producer's stream has been ended (by this
        node, or by another that claimed it first; waited for up to
        :data:`SETTLE_WAIT_S`); ``info`` itself when its producer is not lost. For
        handlers, so that they answer what the stream really is."""
        if not info.producer_lost:
            return info
        await self.end(info.stream_id)
        deadline = asyncio.get_running_loop().time() + SETTLE_WAIT_S
        while True:
            fresh = await self._broker.info(info.stream_id)
            if fresh is None or fresh.status == "ended":
                return fresh
            if asyncio.get_running_loop().time() >= deadline:
                # The claimant is slow: the subscriber reads the end when it comes.
                return fresh
            await asyncio.sleep(0.05)  # another node's claim: no event reaches here

    async def end(self, stream_id: str) -> bool:
        """End the stream if its producer was lost and no other node claimed it
        first; True if this node ended it."""
        if not await self._broker.claim(stream_id):
            return False
        info = await self._broker.info(stream_id)
        if info is None:
            return False
        log.warning("a stream's producer was lost: ending it", extra={"stream": stream_id})
        text, frames, digest = await self._read(info)
        message = None
        if frames == 0:
            try:
                message = await self._store_error(TenantId(info.owner_tenant), stream_id, text)
            except Exception:
                # The subscribers must still hear the end, store or no store.
                log.exception(
                    "could not store a lost stream's message", extra={"stream": stream_id}
                )
        seq = info.last_seq + 1
        await self._broker.publish(
            stream_id,
            KIND_ERROR,
            encode_notification(
                schema.STREAM_ERROR,
                schema.ErrorParams(
                    stream_id=stream_id,
                    seq=seq,
                    code=errors.ENGINE_UNAVAILABLE,
                    message=LOST_MESSAGE,
                    data={"reason": PRODUCER_LOST},
                ),
            ),
        )
        if message is not None:
            usage = Usage(0, message.output_tokens, estimated=True)
            end = end_notification(
                stream_id, seq + 1, "error", stream_id, usage, 0.0, message.model if text else None
            )
        else:
            end = encode_notification(
                audio_schema.AUDIO_END,
                audio_schema.EndParams(
                    stream_id=stream_id,
                    seq=seq + 1,
                    frames=frames,
                    duration_ms=0,
                    sha256=digest,
                    cancelled=False,
                ),
            )
        await self._broker.end(stream_id, KIND_END, end)
        return True

    async def _store_error(self, tenant: TenantId, message_id: str, text: str) -> Message | None:
        return await self._store.messages.update(
            tenant,
            MessageId(message_id),
            content=text,
            status="error",
            # Four characters a token, as for any estimate (docs/streams.md).
            output_tokens=(len(text) + 3) // 4,
        )

    async def _read(self, info: StreamInfo) -> tuple[str, int, str]:
        """The text of the deltas still in the stream's history, how many audio frames
        it holds and the sha256 of their payloads."""
        parts: list[str] = []
        frames = 0
        digest = hashlib.sha256()
        if info.last_seq == 0:
            return "", 0, digest.hexdigest()
        subscription = await self._broker.subscribe(info.stream_id, info.first_seq - 1)
        async with subscription:
            async for item in subscription:
                if item.kind == KIND_DELTA:
                    try:
                        parts.append(_decode_delta(item.payload).params.text)
                    except msgspec.DecodeError:
                        log.warning("a stream delta did not decode", extra={"stream": item.seq})
                elif item.kind == KIND_FRAME:
                    frames += 1
                    digest.update(item.payload[1:])
                if item.seq >= info.last_seq:
                    break
        return "".join(parts), frames, digest.hexdigest()

    async def sweep(self, *, before: datetime) -> int:
        """Finish the messages a dead node left ``streaming`` (created before
        ``before``): end their stream if its producer was lost, or store them as
        ``error`` if their stream is gone. Messages whose stream still has its producer
        (another node, alive) are left alone. Returns how many were finished."""
        finished = 0
        seen: set[str] = set()
        while True:
            page = await self._store.messages.streaming(before=before, limit=_SWEEP_PAGE)
            fresh = [(tenant, message) for tenant, message in page if message not in seen]
            if not fresh:
                return finished
            for tenant, message_id in fresh:
                seen.add(message_id)
                try:
                    finished += await self._finish(tenant, message_id)
                except (BrokerUnavailable, StreamNotFound):
                    log.warning(
                        "could not finish a message left streaming",
                        extra={"message": message_id},
                        exc_info=True,
                    )

    async def _finish(self, tenant: TenantId, message_id: MessageId) -> int:
        info = await self._broker.info(message_id)
        if info is None:
            await self._store.messages.update(tenant, message_id, status="error")
            return 1
        if info.producer_lost:
            return int(await self.end(message_id))
        # Live with its producer, or ended (its producer stored the message first; one
        # that is still listed is being stored right now): not ours to touch.
        return 0
