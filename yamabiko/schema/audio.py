"""The ``audio`` namespace (docs/audio.md): singing and speech, streamed in frames.

``audio/synthesize`` needs scope ``audio``. It answers at once; the audio arrives as
the items of a stream (numbered, resumable with ``stream/subscribe``, cancellable with
``audio/cancel``): frames, then ``audio/end``. A client that declared
``capabilities.audio.binary`` gets each frame as a binary WebSocket message (a 12-byte
header: ``YA``, version 1, flags with bit 0 = last, ``streamNo`` and ``seq`` as uint32
big-endian, then the payload); others get ``audio/frame`` notifications with base64.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta

from yamabiko.schema.base import SCOPE_AUDIO, MethodSchema, Params, Result
from yamabiko.schema.stream import StreamIdParam

AUDIO_SYNTHESIZE: Final = "audio/synthesize"
AUDIO_CANCEL: Final = "audio/cancel"
AUDIO_FRAME: Final = "audio/frame"
AUDIO_END: Final = "audio/end"

MAX_NOTES: Final = 10_000
AudioFormat = Literal["pcm16", "wav", "flac", "ogg"]
Pace = Literal["fast", "realtime"]
EngineName = Annotated[str, Meta(pattern="^[a-z][a-z0-9_-]{0,31}$")]
"""``singer``, ``onnx``, ``tts``, ``piper``; one this server lacks is -32010."""


class NoteParam(Params):
    """A sung note: ``start`` and ``duration`` in beats at ``tempo``."""

    pitch: Annotated[int, Meta(ge=0, le=127)]
    start: Annotated[float, Meta(ge=0.0)]
    duration: Annotated[float, Meta(gt=0.0, le=1000.0)]
    velocity: Annotated[int, Meta(ge=1, le=127)] = 100
    lyric: Annotated[str, Meta(max_length=32)] | None = None
    """The syllable sung (kana, romaji or English); none or ``-`` holds the vowel."""


class SynthesizeParams(Params):
    """``notes`` are sung (with their ``lyric``s, or ``lyrics`` spread one syllable a
    note); ``text`` without notes is spoken."""

    text: Annotated[str, Meta(max_length=10_000)] | None = None
    lyrics: Annotated[str, Meta(max_length=10_000)] | None = None
    notes: Annotated[list[NoteParam], Meta(max_length=MAX_NOTES)] | None = None
    tempo: Annotated[float, Meta(ge=20.0, le=400.0)] = 120.0
    voice: Annotated[str, Meta(max_length=64)] | None = None
    engine: EngineName | None = None
    """None: ``singer`` for notes; for text, the server's ``YAMABIKO_SPEECH_ENGINE``
    (``singer`` unless configured)."""
    format: AudioFormat = "pcm16"
    sample_rate: Annotated[int, Meta(ge=8000, le=48000)] = 24_000
    frame_ms: Annotated[int, Meta(ge=10, le=1000)] = 20
    pace: Pace = "fast"
    """``realtime``: frames at playback speed (a little ahead); ``fast``: as fast as the
    client reads them."""


class SynthesizeResult(Result):
    stream_id: str
    stream_no: int
    """The stream's number in this session's binary frame headers."""
    format: str
    sample_rate: int
    channels: int
    estimated_duration_ms: int


class CancelParams(Params):
    stream_id: StreamIdParam


class CancelResult(Result):
    cancelled: bool
    """False when the stream had already ended."""


class FrameParams(Params):
    stream_id: str
    seq: int
    data: str
    """The payload, base64."""
    last: bool


class EndParams(Params):
    stream_id: str
    seq: int
    frames: int
    duration_ms: int
    sha256: str
    """Of all frames' payloads, concatenated."""
    cancelled: bool
    """Always sent: true when `audio/cancel` stopped the stream."""


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        AUDIO_SYNTHESIZE, SynthesizeParams, SynthesizeResult,
        "Sing notes or speak text; frames stream at once, then audio/end.", scope=SCOPE_AUDIO,
    ),
    MethodSchema(
        AUDIO_CANCEL, CancelParams, CancelResult,
        "Stop a synthesis: no frame follows the next; audio/end says what was sent.",
        scope=SCOPE_AUDIO,
    ),
    MethodSchema(
        AUDIO_FRAME, FrameParams, None,
        "One frame (base64) for a client without audio.binary.", sender="server",
    ),
    MethodSchema(
        AUDIO_END, EndParams, None,
        "The last item of an audio stream: frames, duration and sha256 of the payload.",
        sender="server",
    ),
)  # fmt: skip
