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

Pacing. The engine renders and the codec encodes ahead of the sends, in a task of
their own, into a bounded queue of finished frames (:data:`RENDER_AHEAD_S`); the sends
never wait for a render. ``realtime`` publishes each frame no earlier than its place on
the playback clock minus one frame (:data:`LEAD_FRAMES`); the clock starts one frame
after the queue is first full (or holds the whole stream), so the first frame keeps to
it like every other and the next render is not due at once.
``fast`` publishes as fast as the sender reads: the job never gets more than
:data:`MAX_AHEAD` frames ahead of what the sender's session has taken (a slow reader
pauses the producer, and the history never has to hold more than that for it; frames
are never dropped). A sender that has gone away does not hold the job up.

Cancelling (``audio/cancel``) stops the engine and the pacing at once: no frame is
published after the one in progress; ``audio/end`` then carries ``cancelled: true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from yamabiko.engines.audio.base import AudioEngine, AudioEngineError, AudioRequest
from yamabiko.protocol import errors
from yamabiko.protocol.messages import encode_notification
from yamabiko.schema import audio as schema
from yamabiko.schema.stream import STREAM_ERROR, ErrorParams
from yamabiko.services.items import FLAG_LAST, KIND_END, KIND_ERROR, KIND_FRAME
from yamabiko.services.jobs import StreamJobs
from yamabiko.store.broker import Broker
from yamabiko.store.signals import Signals

if TYPE_CHECKING:
    from yamabiko.engines.audio.encode import Encoder

log = logging.getLogger("yamabiko.audio")

LEAD_FRAMES: Final = 1
"""How many frames ahead of the playback clock a ``realtime`` stream runs: one, so
that a cancel stops it within a frame (the client buffers for playback as it likes)."""
RENDER_AHEAD_S: Final = 0.5
"""How much audio the engine renders ahead of the sends (encoded frames, waiting):
enough to cover a render chunk of every stream on a busy node."""
MIN_RENDER_AHEAD: Final = 4
MAX_AHEAD: Final = 64
"""Frames a ``fast`` stream may run ahead of its sender's session."""


@dataclass(frozen=True, slots=True)
class _Rendered:
    """A frame ready to publish (``payload``), or the end of the engine's blocks
    (``payload`` None: ``samples`` in all, or its ``failure``)."""

    payload: bytes | None
    samples: int
    """Samples rendered up to the end of this frame."""
    failure: str | None = None


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
    speech_engine: str = "singer"
    """The engine for text when a request names none (``YAMABIKO_SPEECH_ENGINE``)."""

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
        cancelled = job.cancelled
        # The engine renders (and the codec encodes) ahead of the sends, into a queue
        # of finished frames: a send waits for its place on the clock, never for a
        # render (docs/audio.md, "Pacing").
        ahead: asyncio.Queue[_Rendered] = asyncio.Queue(
            maxsize=max(MIN_RENDER_AHEAD, math.ceil(RENDER_AHEAD_S * 1000 / job.frame_ms))
        )
        primed = asyncio.Event()
        producer = asyncio.create_task(self._produce(job, block, codec, ahead, primed))

        async def publish(payload: bytes, last: bool) -> None:
            nonlocal seq
            digest.update(payload)
            flags = FLAG_LAST if last else 0
            seq = await self._broker.publish(job.stream_id, KIND_FRAME, bytes((flags,)) + payload)

        failure: str | None = None
        samples = 0  # samples in the frames published so far
        started: float | None = None
        try:
            if job.pace == "realtime":
                # Start with the queue full (or the whole stream rendered): the next
                # render chunks are then due long after the first frame, not while
                # every other stream started at the same time renders its first.
                await self._either(primed, cancelled)
            while True:
                item = await self._next(ahead, cancelled)
                if item is None or cancelled.is_set():
                    break
                if item.failure is not None:
                    failure = item.failure
                    break
                if item.payload is None:  # the engine is done
                    samples = item.samples
                    break
                at_s = item.samples / rate - LEAD_FRAMES * job.frame_ms / 1000
                if started is None:
                    # The playback clock starts when the first frame is ready (the time
                    # it took to plan and render is not owed by the frames after it),
                    # one frame on: the first frame then waits for its turn like every
                    # other, so a busy loop delays them all alike instead of sending
                    # the first at once and the rest late.
                    started = time.monotonic() + job.frame_ms / 1000 - at_s
                if not await self._wait_turn(job, seq + 1, at_s, started):
                    break
                await publish(item.payload, last=False)
                samples = item.samples
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        stopped = cancelled.is_set() or failure is not None
        tail = b"" if stopped else codec.finish()
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
                    duration_ms=round(samples * 1000 / rate),
                    sha256=digest.hexdigest(),
                    cancelled=cancelled.is_set(),
                ),
            ),
        )

    @staticmethod
    async def _next(ahead: asyncio.Queue[_Rendered], cancelled: asyncio.Event) -> _Rendered | None:
        """The next rendered frame, or None if the job is cancelled first."""
        if not ahead.empty():
            return ahead.get_nowait()
        getter = asyncio.ensure_future(ahead.get())
        stop = asyncio.ensure_future(cancelled.wait())
        try:
            await asyncio.wait({getter, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not getter.done():
                getter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else None

    @staticmethod
    async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
        if first.is_set() or second.is_set():
            return
        waits = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _produce(
        self,
        job: SynthesisJob,
        block: int,
        codec: Encoder,
        ahead: asyncio.Queue[_Rendered],
        primed: asyncio.Event,
    ) -> None:
        """Render and encode the frames into ``ahead``; always ends with an item that
        says done (``payload`` None) or failed (``failure``). ``primed`` is set once
        the queue is full or the last item is in it."""
        try:
            await self._fill(job, block, codec, ahead, primed)
        finally:
            primed.set()

    async def _fill(
        self,
        job: SynthesisJob,
        block: int,
        codec: Encoder,
        ahead: asyncio.Queue[_Rendered],
        primed: asyncio.Event,
    ) -> None:
        blocks = job.engine.blocks(job.request, block)
        samples = 0
        try:
            async with contextlib.aclosing(blocks):
                async for samples_block in blocks:
                    samples += len(samples_block)
                    payload = codec.encode(samples_block)
                    if payload:
                        await ahead.put(_Rendered(payload, samples))
                        if ahead.full():
                            primed.set()
        except AudioEngineError as exc:
            await ahead.put(_Rendered(None, samples, failure=str(exc)))
            return
        except Exception:
            log.exception("audio engine failed", extra={"stream": job.stream_id})
            await ahead.put(_Rendered(None, samples, failure="the audio engine failed"))
            return
        await ahead.put(_Rendered(None, samples))

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
