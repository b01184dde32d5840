"""Stream items: their kinds, and how each is encoded for the wire.

A producer (:mod:`yamabiko.services.generation`, :mod:`yamabiko.services.synthesis`)
publishes items of these kinds to the broker; the readers (``stream/subscribe``
forwarders, the MCP face, the orphan sweeper) tell them apart by kind. A ``delta``,
``error`` or ``end`` item's payload is the encoded notification itself, sent as it is
to every subscriber. A ``frame`` item's payload is one flags byte (bit 0: last), then
the audio bytes; a forwarder turns it into a binary message (:func:`binary_frame`,
header in docs/audio.md) or an ``audio/frame`` notification
(:func:`frame_notification`).
"""

from __future__ import annotations

import base64
import struct
from typing import Final

from yamabiko.engines.llm import Usage
from yamabiko.protocol.messages import encode_notification
from yamabiko.schema import audio as audio_schema
from yamabiko.schema import stream as schema

KIND_DELTA: Final = "delta"
"""A ``stream/delta`` notification: text of a generation."""
KIND_FRAME: Final = "frame"
"""A frame of synthesized audio: flags byte, then the audio bytes."""
KIND_ERROR: Final = "error"
"""A ``stream/error`` notification."""
KIND_END: Final = "end"
"""The last item: ``stream/end`` or ``audio/end``."""

FLAG_LAST: Final = 0x01
"""Bit 0 of a frame's flags: the stream's last frame."""
HEADER: Final = struct.Struct(">2sBBII")
"""A binary frame's header: ``YA``, version, flags, streamNo, seq (docs/audio.md)."""
VERSION: Final = 1


def binary_frame(stream_no: int, seq: int, item_payload: bytes) -> bytes:
    """The binary WebSocket message for a frame item (``item_payload``: flags, audio)."""
    return HEADER.pack(b"YA", VERSION, item_payload[0], stream_no, seq) + item_payload[1:]


def frame_notification(stream_id: str, seq: int, item_payload: bytes) -> bytes:
    """The ``audio/frame`` notification for a frame item."""
    return encode_notification(
        audio_schema.AUDIO_FRAME,
        audio_schema.FrameParams(
            stream_id=stream_id,
            seq=seq,
            data=base64.b64encode(item_payload[1:]).decode("ascii"),
            last=bool(item_payload[0] & FLAG_LAST),
        ),
    )


def end_notification(
    stream_id: str,
    seq: int,
    reason: schema.FinishReason,
    message_id: str,
    usage: Usage,
    cost: float,
    model: str | None,
) -> bytes:
    """A generation's last item: the encoded ``stream/end``."""
    return encode_notification(
        schema.STREAM_END,
        schema.EndParams(
            stream_id=stream_id,
            seq=seq,
            finish_reason=reason,
            message_id=message_id,
            usage=schema.Usage(
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost_usd=cost
            ),
            model=model,
        ),
    )
