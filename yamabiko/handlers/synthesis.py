"""Syntheses: one audio rendering, from an engine's sample blocks into a broker stream.

Theory of operation. ``audio/synthesize`` (:mod:`yamabiko.handlers.audio`) prepares a
:class:`SynthesisJob` and :meth:`Syntheses.start` runs it as a task of the node (like a
generation: a client that disconnects can resume it on any node). The task renders
the engine's float32 blocks of ``frameMs``, encodes each into the requested format
(:mod:`yamabiko.engines.audio.encode`) and publishes each non-empty payload as one
``frame`` item, whose payload is one flags byte (bit 0: last) then the audio bytes;
subscribers' forwarders turn it into a binary message or an ``audio/frame``
notification. The codec's tail is the last frame (possibly empty, so that ``last`` is
always on a frame). Then ``audio/end`` (frames, duration, sha256 of every payload) ends
the stream.

Pacing. ``realtime`` publishes each frame no earlier than its place on the playback
clock minus one frame (:data:`LEAD_FRAMES`); ``fast`` publishes as fast as the sender reads:
the job never gets more than :data:`MAX_AHEAD` frames ahead of what the sender's
session has taken (a slow reader pauses the producer, and the history never has to
hold more than that for it; frames are never dropped). A sender that has gone away
does not hold the job up.

Cancelling (``audio/cancel``) stops the engine and the pacing at once: no frame is
published after the one in progress; ``audio/end`` then carries ``cancelled: true``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import Final

from yamabiko.engines.audio.base import AudioEngine, AudioEngineError, AudioRequest
from yamabiko.handlers.jobs import StreamJobs
from yamabiko.protocol import errors
from yamabiko.protocol.messages import encode_notification
from yamabiko.schema import audio as schema
from yamabiko.schema.stream import STREAM_ERROR, ErrorParams
from yamabiko.store.broker import Broker
from yamabiko.store.signals import Signals

log = logging.getLogger("yamabiko.audio")

KIND_FRAME: Final = "frame"
KIND_ERROR: Final = "error"
KIND_END: Final = "end"
LEAD_FRAMES: Final = 1
"""How many frames ahead of the playback clock a ``realtime`` stream runs: one, so
that a cancel stops it within a frame (the client buffers for playback as it likes)."""
MAX_AHEAD: Final = 64
"""Frames a ``fast`` stream may run ahead of its sender's session."""
FLAG_LAST: Final = 0x01
HEADER: Final = struct.Struct(">2sBBII")
"""``YA``, version, flags, streamNo, seq (docs/audio.md)."""
VERSION: Final = 1


def binary_frame(stream_no: int, seq: int, item_payload: bytes) -> bytes:
    """The binary WebSocket message for a frame item (``item_payload``: flags, audio)."""
    return HEADER.pack(b"YA", VERSION, item_payload[0], stream_no, seq) + item_payload[1:]


def frame_notification(stream_id: str, seq: int, item_payload: bytes) -> bytes:
    """The ``audio/frame`` notification for a frame item."""
    return encode_notification(
        schema.AUDIO_FRAME,
        schema.FrameParams(
            stream_id=stream_id,
            seq=seq,
            data=base64.b64encode(item_payload[1:]).decode("ascii"),
            last=bool(item_payload[0] & FLAG_LAST),
        ),
    )


class Progress:
    """How far the sender's session has taken the stream (its forwarder sets it)."""

    __slots__ = ("changed", "gone", "taken")

    def __init__(self) -> None:
        self.taken = 0
        self.gone = False
        self.changed = asyncio.Event()

    def advance(self, seq: int) -> None:
        self.taken = seq
        self.changed.set()

    def leave(self) -> None:
        self.gone = True
        self.changed.set()


@dataclass
class SynthesisJob:
    stream_id: str
    engine: AudioEngine
    request: AudioRequest
    format: schema.AudioFormat
    frame_ms: int
    pace: schema.Pace
    total_samples: int | None
    sender: Progress = field(default_factory=Progress)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self) -> None:
        self.cancelled.set()


@dataclass(frozen=True)
class AudioEngines:
    """The node's audio engines by name, and the longest synthesis allowed."""

    engines: dict[str, AudioEngine]
    max_seconds: float = 300.0

    async def aclose(self) -> None:
        """Close the engines' HTTP clients (``tts``), at shutdown."""
        for engine in self.engines.values():
            close = getattr(engine, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("could not close an audio engine")


class Syntheses(StreamJobs[SynthesisJob]):
    """The syntheses running on this node, by stream id."""

    def __init__(self, *, broker: Broker, signals: Signals) -> None:
        super().__init__(broker=broker, signals=signals, kind="audio")

    async def work(self, job: SynthesisJob) -> None:
        try:
            await self._render(job)
        except Exception:
            log.exception("synthesis failed", extra={"stream": job.stream_id})

    async def _render(self, job: SynthesisJob) -> None:
        # Imported on first use: soundfile loads libsndfile, which a server that never
        # renders audio does not need.
        from yamabiko.engines.audio.encode import encoder

        request = job.request
        rate = request.sample_rate
        block = max(1, rate * job.frame_ms // 1000)
        codec = encoder(job.format, rate, total_samples=job.total_samples)
        digest = hashlib.sha256()
        seq = 0
        samples = 0
        started: float | None = None
        blocks = job.engine.blocks(request, block)
        cancelled = job.cancelled

        async def publish(payload: bytes, last: bool) -> None:
            nonlocal seq
            digest.update(payload)
            flags = FLAG_LAST if last else 0
            seq = await self._broker.publish(job.stream_id, KIND_FRAME, bytes((flags,)) + payload)

        failure: str | None = None
        sent = 0  # samples in the frames published so far
        try:
            async with contextlib.aclosing(blocks):
                async for samples_block in blocks:
                    if cancelled.is_set():
                        break
                    samples += len(samples_block)
                    payload = codec.encode(samples_block)
                    if payload:
                        at_s = samples / rate - LEAD_FRAMES * job.frame_ms / 1000
                        if started is None:
                            # The playback clock starts with the first frame: the time
                            # it took to start and render it is not owed by the rest.
                            started = time.monotonic() - at_s
                        if not await self._wait_turn(job, seq + 1, at_s, started):
                            break
                        await publish(payload, last=False)
                        sent = samples
        except AudioEngineError as exc:
            failure = str(exc)
        except Exception:
            log.exception("audio engine failed", extra={"stream": job.stream_id})
            failure = "the audio engine failed"
        stopped = cancelled.is_set() or failure is not None
        tail = b"" if stopped else codec.finish()
        if not stopped:
            sent = samples
        await publish(tail, last=True)
        if failure is not None:
            await self._broker.publish(
                job.stream_id,
                KIND_ERROR,
                encode_notification(
                    STREAM_ERROR,
                    ErrorParams(
                        stream_id=job.stream_id,
                        seq=seq + 1,
                        code=errors.ENGINE_UNAVAILABLE,
                        message=failure,
                    ),
                ),
            )
            seq += 1
        frames = seq - (1 if failure is not None else 0)
        await self._broker.end(
            job.stream_id,
            KIND_END,
            encode_notification(
                schema.AUDIO_END,
                schema.EndParams(
                    stream_id=job.stream_id,
                    seq=seq + 1,
                    frames=frames,
                    duration_ms=round(sent * 1000 / rate),
                    sha256=digest.hexdigest(),
                    cancelled=cancelled.is_set(),
                ),
            ),
        )

    async def _wait_turn(self, job: SynthesisJob, seq: int, at_s: float, started: float) -> bool:
        """Wait until frame ``seq`` may go out (for ``realtime``, ``at_s`` after the
        start); False if the job was cancelled meanwhile."""
        cancelled = job.cancelled
        if job.pace == "realtime":
            delay = started + at_s - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await cancelled.wait()
        sender = job.sender
        while not sender.gone and seq - sender.taken > MAX_AHEAD and not cancelled.is_set():
            sender.changed.clear()
            waiter = asyncio.ensure_future(sender.changed.wait())
            stop = asyncio.ensure_future(cancelled.wait())
            try:
                await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stop.cancel()
        return not cancelled.is_set()
