"""Handlers of the ``audio`` namespace: ``audio/synthesize`` and ``audio/cancel``.

Everything that can be refused is refused before anything starts: the engine (-32010),
the notes (-32602 naming the note: pitch and duration ranges come from the schema;
overlaps beyond :data:`OVERLAP_LIMIT_BEATS` and an empty request are checked here), the
duration (``YAMABIKO_MAX_AUDIO_SECONDS``, -32602), the session's audio streams
(``maxAudioStreams``, -32029) and subscription slots. Then the stream is created, the
sender subscribed (its forwarder paces the producer) and the synthesis starts on this
node (:mod:`yamabiko.services.synthesis`).
"""

from __future__ import annotations

from typing import Final

import anyio

from yamabiko.engines.audio.base import AudioEngineError, AudioRequest, Note
from yamabiko.handlers.common import tenant, user
from yamabiko.handlers.stream import readable, stream_number, subscribe_session
from yamabiko.protocol import errors
from yamabiko.schema import audio as schema
from yamabiko.schema.audio import CancelParams, CancelResult, SynthesizeParams, SynthesizeResult
from yamabiko.services.container import services
from yamabiko.services.synthesis import Progress, SynthesisJob
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context
from yamabiko.store.ids import new_id

router = Router()

OVERLAP_LIMIT_BEATS: Final = 0.25
"""A note may start this much before the previous one ends (legato); more is two voices
at once, which a singer cannot sing."""
EXACT_ENGINES: Final = frozenset({"singer", "onnx"})
"""Engines whose length is known before rendering (a WAV header can carry it)."""
ENGINE_NEEDS: Final = {
    "onnx": "a model: YAMABIKO_AUDIO_ONNX_MODEL_DIR",
    "tts": "OPENAI_API_KEY or OPENAI_BASE_URL",
    "piper": "the optional extra yamabiko[voice] (piper-tts and its voice)",
}
"""What an engine that a server may lack needs, for the -32010 message."""


class AudioSession:
    """The syntheses this session started and that still run."""

    __slots__ = ("streams",)

    def __init__(self) -> None:
        self.streams: set[str] = set()


def notes_of(params: SynthesizeParams) -> tuple[Note, ...]:
    notes = params.notes or []
    order = sorted(range(len(notes)), key=lambda i: (notes[i].start, i))
    previous: int | None = None
    for index in order:
        note = notes[index]
        if previous is not None:
            before = notes[previous]
            overlap = before.start + before.duration - note.start
            if overlap > OVERLAP_LIMIT_BEATS:
                raise errors.InvalidParams(
                    f"notes[{index}] overlaps notes[{previous}] by {overlap:g} beats"
                    f" (at most {OVERLAP_LIMIT_BEATS:g}: one voice sings one note at a time)"
                    f" - at $.notes[{index}].start",
                    {"note": index},
                )
        previous = index
    return tuple(
        Note(
            pitch=n.pitch,
            start=n.start,
            duration=n.duration,
            velocity=n.velocity,
            lyric=n.lyric,
        )
        for n in notes
    )


@router.method(schema.AUDIO_SYNTHESIZE)
async def synthesize(ctx: Context, params: SynthesizeParams) -> SynthesizeResult:
    svc = services(ctx)
    name = params.engine or ("singer" if params.notes else svc.audio.speech_engine)
    engine = svc.audio.engines.get(name)
    if engine is None:
        configured = ", ".join(sorted(svc.audio.engines))
        hint = ENGINE_NEEDS.get(name)
        raise errors.EngineUnavailable(
            f"audio engine {name!r} is not configured on this server (it has:"
            f" {configured}){f'; it needs {hint}' if hint else ''}"
        )
    notes = notes_of(params)
    if not notes and not (params.text and params.text.strip()):
        raise errors.InvalidParams("nothing to synthesize: give notes (with lyrics) or text")
    request = AudioRequest(
        text=params.text,
        lyrics=params.lyrics,
        notes=notes,
        tempo=params.tempo,
        voice=params.voice,
        sample_rate=params.sample_rate,
    )
    try:
        # In a worker thread: the singer plans the whole request (and reads kanji and
        # English through dictionaries that load on first use), which is not for the
        # event loop.
        duration = await anyio.to_thread.run_sync(engine.duration_s, request)
    except AudioEngineError as exc:
        raise errors.InvalidParams(str(exc)) from None
    if params.format == "flac" and name not in EXACT_ENGINES:
        # The FLAC header must carry the length before the first frame leaves.
        raise errors.InvalidParams(
            f"format flac needs an engine whose length is known before it renders"
            f" ({', '.join(sorted(EXACT_ENGINES))}); use pcm16, wav or ogg with"
            f" {name} - at $.format"
        )
    limit = svc.audio.max_seconds
    if duration > limit:
        raise errors.InvalidParams(
            f"the audio would last {duration:.1f} s, more than the {limit:g} s allowed",
            {"durationS": round(duration, 3), "maxS": limit},
        )
    session = ctx.session
    state = session.local("audio", AudioSession)
    state.streams = {s for s in state.streams if svc.syntheses.running(s)}
    most = session.config.max_audio_streams
    if len(state.streams) >= most:
        raise errors.RateLimited(
            1000, f"too many audio streams at once (limit {most})", limit="maxAudioStreams"
        )
    session.subscriptions.check_room()
    stream_id = new_id()
    await svc.broker.create(stream_id, owner_tenant=tenant(ctx), owner_user=user(ctx), kind="audio")
    progress = Progress()
    await subscribe_session(ctx, stream_id, 0, progress)
    total = round(duration * params.sample_rate) if name in EXACT_ENGINES else None
    svc.syntheses.start(
        SynthesisJob(
            stream_id=stream_id,
            engine=engine,
            request=request,
            format=params.format,
            frame_ms=params.frame_ms,
            pace=params.pace,
            total_samples=total,
            sender=progress,
        )
    )
    state.streams.add(stream_id)
    return SynthesizeResult(
        stream_id=stream_id,
        stream_no=stream_number(session, stream_id),
        format=params.format,
        sample_rate=params.sample_rate,
        channels=1,
        estimated_duration_ms=round(duration * 1000),
    )


@router.method(schema.AUDIO_CANCEL)
async def cancel(ctx: Context, params: CancelParams) -> CancelResult:
    svc = services(ctx)
    readable(ctx, await svc.broker.info(params.stream_id), params.stream_id)
    return CancelResult(cancelled=await svc.syntheses.cancel(params.stream_id))
