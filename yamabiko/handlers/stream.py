"""Handlers of the ``stream`` namespace, and the forwarder that feeds a session from a
broker subscription.

Reading a stream: one :class:`~yamabiko.store.broker.Subscription` per subscribed
session, read by a forwarder task that the session keeps
(:class:`~yamabiko.sessions.subscriptions.Subscriptions`). Each item's payload is its
notification, encoded once by the producer. Deltas go into the session's queue with
the ``merge`` policy (docs/protocol.md, Flow control): while the client reads, each goes out as
it is; while it does not, the ones waiting fold into one ``stream/delta`` carrying
``fromSeq``. The forwarder never waits for the client, so one slow reader holds up
neither the producer nor any other subscriber, and its queue holds at most one merged
delta per stream.

Who may read: the user who started the stream, or an admin of its tenant; any other
stream id is "not found" (-32004), exactly like an unknown one.
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

import msgspec

from yamabiko.handlers.common import is_admin
from yamabiko.protocol import errors
from yamabiko.protocol.messages import encode_notification
from yamabiko.schema import stream as schema
from yamabiko.schema.stream import (
    CancelResult,
    DeltaParams,
    ErrorParams,
    StreamRef,
    SubscribeParams,
    SubscribeResult,
    UnsubscribeResult,
)
from yamabiko.services.container import services
from yamabiko.services.items import KIND_DELTA, KIND_FRAME, binary_frame, frame_notification
from yamabiko.services.synthesis import Progress
from yamabiko.sessions.methods import Router
from yamabiko.sessions.outbound import Mergeable
from yamabiko.sessions.session import Context, Session
from yamabiko.store.broker import StreamExpired, StreamInfo, Subscription

router = Router()

_YIELD_EVERY: Final = 256
_MERGED_OVERHEAD: Final = 96
"""Bytes a delta notification costs besides its text (ids, seqs, JSON punctuation)."""


class _DeltaNote(msgspec.Struct):
    params: DeltaParams


_decode_note = msgspec.json.Decoder(_DeltaNote).decode


class Delta:
    """A ``stream/delta`` waiting in a session's queue: the producer's encoded bytes as
    they are, or, once merged for a slow reader, the text of several (encoded when its
    turn comes)."""

    __slots__ = ("_encoded", "_text", "from_seq", "seq", "stream_id")

    def __init__(
        self,
        stream_id: str,
        seq: int,
        *,
        encoded: bytes | None = None,
        text: str | None = None,
        from_seq: int | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.seq = seq
        self.from_seq = from_seq
        self._encoded = encoded
        self._text = text

    @property
    def text(self) -> str:
        if self._text is None:
            assert self._encoded is not None
            self._text = _decode_note(self._encoded).params.text
        return self._text

    @property
    def size(self) -> int:
        if self._encoded is not None:
            return len(self._encoded)
        return len(self.text) + _MERGED_OVERHEAD

    def encode(self) -> bytes:
        if self._encoded is None:
            self._encoded = encode_notification(
                schema.STREAM_DELTA,
                DeltaParams(
                    stream_id=self.stream_id,
                    seq=self.seq,
                    text=self.text,
                    from_seq=self.from_seq,
                ),
            )
        return self._encoded

    def merge(self, newer: Mergeable) -> Delta:
        later = cast(Delta, newer)
        return Delta(
            self.stream_id,
            later.seq,
            text=self.text + later.text,
            from_seq=self.from_seq if self.from_seq is not None else self.seq,
        )


class StreamNumbers:
    """A session's numbers for the streams it reads (the ``streamNo`` of binary audio
    frame headers): 1, 2, 3... in the order it first meets them."""

    __slots__ = ("_numbers",)

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def of(self, stream_id: str) -> int:
        number = self._numbers.get(stream_id)
        if number is None:
            number = self._numbers[stream_id] = len(self._numbers) + 1
        return number


def stream_number(session: Session, stream_id: str) -> int:
    return session.local("stream-numbers", StreamNumbers).of(stream_id)


def wants_binary_audio(session: Session) -> bool:
    capabilities = session.capabilities
    audio = getattr(capabilities, "audio", None)
    return bool(getattr(audio, "binary", False))


async def forward(
    session: Session, subscription: Subscription, progress: Progress | None = None
) -> None:
    """Feed ``session`` the items of ``subscription`` until the stream ends, the
    subscription fails (the client is told with a ``stream/error`` naming the last seq
    delivered) or the session stops it. Audio frames wait for room in the session's
    queue (a slow reader pauses its forwarder, never drops a frame); ``progress``
    tells an audio producer how far its sender has read."""
    stream_id = subscription.info.stream_id
    key = (KIND_DELTA, stream_id)
    outbound = session.outbound
    binary = wants_binary_audio(session)
    number = stream_number(session, stream_id)
    try:
        async with subscription:
            async for item in subscription:
                if item.seq % _YIELD_EVERY == 0:
                    # A replay from history never waits: let the writer and the other
                    # sessions run now and then.
                    await asyncio.sleep(0)
                session.stats.stream_items_sent += 1
                if item.kind == KIND_FRAME:
                    if binary:
                        await session.send_binary(binary_frame(number, item.seq, item.payload))
                    else:
                        await outbound.push_wait(
                            frame_notification(stream_id, item.seq, item.payload)
                        )
                    if progress is not None:
                        progress.advance(item.seq)
                elif item.kind != KIND_DELTA:
                    session.notify_encoded(item.payload)
                elif outbound.keeping_up:
                    # The producer's bytes as they are: nothing made per subscriber.
                    outbound.push_unmerged(key, item.payload)
                else:
                    session.notify_merged(key, Delta(stream_id, item.seq, encoded=item.payload))
    except errors.YamabikoError as exc:
        session.notify(
            schema.STREAM_ERROR,
            ErrorParams(
                stream_id=stream_id,
                seq=subscription.last_seq,
                code=errors.wire_code(exc),
                message=exc.message,
            ),
        )
    finally:
        if progress is not None:
            progress.leave()


def readable(ctx: Context, info: StreamInfo | None, stream_id: str) -> StreamInfo:
    """``info`` if the caller may read the stream; else -32004, as for an unknown id."""
    identity = ctx.identity
    if (
        info is None
        or info.owner_tenant != identity.tid
        or (info.owner_user != identity.sub and not is_admin(ctx))
    ):
        raise errors.NotFound(f"stream not found: {stream_id}")
    return info


async def subscribe_session(
    ctx: Context, stream_id: str, after_seq: int, progress: Progress | None = None
) -> Subscription:
    """Subscribe the caller's session to a stream it may read (checked by the caller)
    and start forwarding; returns the subscription (its ``info`` is the answer)."""
    session = ctx.session
    session.subscriptions.check_room(stream_id)  # before the broker does any work
    subscription = await services(ctx).broker.subscribe(stream_id, after_seq)
    try:
        # Checked again: a concurrent subscribe of this session may have won the slot.
        session.subscriptions.start(stream_id, forward(session, subscription, progress))
    except errors.YamabikoError:
        await subscription.close()
        raise
    return subscription


async def _raise_if_expired(ctx: Context, stream_id: str) -> None:
    """A stream whose history is gone answers "expired" with its last seq, to the ones
    who could read it (docs/streams.md, "Retention"); to anyone else it stays unknown."""
    record = await services(ctx).broker.expired(stream_id)
    if record is None:
        return
    identity = ctx.identity
    if record.owner_tenant == identity.tid and (record.owner_user == identity.sub or is_admin(ctx)):
        raise StreamExpired(stream_id, record.last_seq)


@router.method(schema.STREAM_SUBSCRIBE)
async def subscribe(ctx: Context, params: SubscribeParams) -> SubscribeResult:
    svc = services(ctx)
    info = await svc.broker.info(params.stream_id)
    if info is None:
        await _raise_if_expired(ctx, params.stream_id)
    info = readable(ctx, info, params.stream_id)
    if info.producer_lost:  # ended first, so the answer is not "live" for ever
        readable(ctx, await svc.orphans.settle(info), params.stream_id)
    subscription = await subscribe_session(ctx, params.stream_id, params.after_seq)
    info = subscription.info
    return SubscribeResult(
        stream_id=info.stream_id,
        status=info.status,
        last_seq=info.last_seq,
        stream_no=stream_number(ctx.session, info.stream_id),
    )


@router.method(schema.STREAM_UNSUBSCRIBE)
async def unsubscribe(ctx: Context, params: StreamRef) -> UnsubscribeResult:
    return UnsubscribeResult(unsubscribed=ctx.session.subscriptions.stop(params.stream_id))


@router.method(schema.STREAM_CANCEL)
async def cancel(ctx: Context, params: StreamRef) -> CancelResult:
    svc = services(ctx)
    info = readable(ctx, await svc.broker.info(params.stream_id), params.stream_id)
    if info.producer_lost:
        # Nothing runs to be cancelled: the stream ends as failed, not cancelled.
        await svc.orphans.settle(info)
        return CancelResult(cancelled=False)
    return CancelResult(cancelled=await svc.generations.cancel(params.stream_id))
