"""The ``stream`` namespace (docs/streams.md): subscribing to token and audio streams.

A stream is an ordered sequence of items numbered ``seq`` = 1, 2, 3... under a
``streamId``. A token stream's items are ``stream/delta`` notifications, then at most one
``stream/error``, then exactly one ``stream/end``; each item has its own seq. A reader
that falls behind may get several deltas merged into one, which then carries
``fromSeq`` (the first seq merged) besides ``seq`` (the last): the text is the same, no
item is skipped.

``stream/subscribe`` replays the items after ``afterSeq`` from history, then delivers
live ones, with no gap and no duplicate, on any node. A stream is readable by the user
who started it and by admins of its tenant; any other id is -32004.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from msgspec import Meta

from yamabiko.schema.base import MethodSchema, Params, Result

STREAM_SUBSCRIBE: Final = "stream/subscribe"
STREAM_UNSUBSCRIBE: Final = "stream/unsubscribe"
STREAM_CANCEL: Final = "stream/cancel"
STREAM_DELTA: Final = "stream/delta"
STREAM_END: Final = "stream/end"
STREAM_ERROR: Final = "stream/error"

StreamIdParam = Annotated[str, Meta(min_length=1, max_length=64)]
FinishReason = Literal["stop", "length", "cancelled", "error"]
StreamStatus = Literal["live", "ended"]


class StreamRef(Params):
    stream_id: StreamIdParam


class SubscribeParams(StreamRef):
    after_seq: Annotated[int, Meta(ge=0)] = 0
    """The last seq already received: 0 (the default) replays the whole stream."""


class SubscribeResult(Result):
    stream_id: str
    status: StreamStatus
    last_seq: int
    """The newest seq when subscribed: items up to it are replayed, later ones are live."""
    stream_no: int
    """The stream's number in this session's binary audio frame headers."""


class UnsubscribeResult(Result):
    unsubscribed: bool
    """False when this session was not subscribed."""


class CancelResult(Result):
    cancelled: bool
    """True when a running generation was told to stop (it then ends with
    ``cancelled``); false when the stream had already ended."""


class Usage(Result):
    input_tokens: int
    output_tokens: int
    cost_usd: float


class DeltaParams(Params):
    stream_id: str
    seq: int
    text: str
    from_seq: int | None = None
    """Present when several deltas were merged for a slow reader: the first seq merged."""


class EndParams(Params):
    stream_id: str
    seq: int
    finish_reason: FinishReason
    message_id: str
    usage: Usage
    model: str | None = None
    """The model that answered (a fallback, maybe); None if none answered."""


class ErrorParams(Params):
    stream_id: str
    seq: int
    """The item's own seq when the generation failed. When a subscription itself fails
    (the reader fell behind the history, or the broker went away) no item is added: seq
    is then the last one delivered, no ``stream/end`` follows, and resubscribing with
    ``afterSeq: seq`` continues where it stopped."""
    code: int
    message: str
    data: dict[str, Any] | None = None
    """Details: ``{"reason": "producerLost"}`` when the node producing the stream stopped
    (a ``stream/end`` with ``finishReason: error`` follows)."""


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        STREAM_SUBSCRIBE, SubscribeParams, SubscribeResult,
        "Read a stream from afterSeq on: history first, then live, exactly once.",
    ),
    MethodSchema(
        STREAM_UNSUBSCRIBE, StreamRef, UnsubscribeResult,
        "Stop receiving a stream's items (the generation goes on).",
    ),
    MethodSchema(
        STREAM_CANCEL, StreamRef, CancelResult,
        "Stop the generation upstream; the stream ends with finishReason cancelled.",
    ),
    MethodSchema(
        STREAM_DELTA, DeltaParams, None,
        "The next text of a stream (fromSeq..seq when merged for a slow reader).",
        sender="server",
    ),
    MethodSchema(
        STREAM_ERROR, ErrorParams, None,
        "The generation failed (or this subscription did); stream/end follows a failure.",
        sender="server",
    ),
    MethodSchema(
        STREAM_END, EndParams, None,
        "The last item of a stream: why it ended, the stored message, usage and cost.",
        sender="server",
    ),
)  # fmt: skip
