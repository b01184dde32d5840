"""Handlers of the ``music`` namespace: ``music/generate``.

The built-in music-theory engine answers unless ``model`` names a provider model; then
the model writes the notes as JSON, checked like agent actions (in range, inside the
bars; repaired once, else -32010 with the problems).
"""

from __future__ import annotations

import functools
from typing import Any, Final

import anyio
import msgspec

from yamabiko.engines.llm import ChatMessage, EngineError, collect
from yamabiko.engines.music import (
    DEFAULT_KEY,
    DEFAULT_TEMPO,
    beats_per_bar,
    generate,
    parse_time_signature,
)
from yamabiko.handlers.common import tenant
from yamabiko.protocol import errors
from yamabiko.schema import music as schema
from yamabiko.schema.daw import Note, Problem
from yamabiko.schema.music import Chord, GenerateParams, GenerateResult
from yamabiko.services.container import services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()

INLINE_BARS: Final = 8
"""Parts of at most this many bars are generated on the event loop (see below)."""

_notes = msgspec.json.Decoder(list[Note])
SYSTEM: Final = (
    'You write MIDI parts. Answer with JSON only: {"notes": [{"pitch": 0-127, '
    '"start": beats, "duration": beats, "velocity": 1-127}], "description": '
    '"one sentence"}. Time is in quarter-note beats from 0.'
)


@router.method(schema.MUSIC_GENERATE)
async def generate_part(ctx: Context, params: GenerateParams) -> GenerateResult:
    key = params.key or DEFAULT_KEY
    tempo = params.tempo or DEFAULT_TEMPO
    signature = params.time_signature or "4/4"
    if params.model is not None:
        return await _with_model(ctx, params, key, tempo, signature)
    make = functools.partial(
        generate,
        params.kind,
        key=key,
        tempo=tempo,
        bars=params.bars,
        time_signature=signature,
        style=params.style,
        prompt=params.prompt,
        seed=params.seed,
    )
    try:
        # Up to INLINE_BARS a part takes about a millisecond; longer ones (up to tens
        # of milliseconds for 64 busy bars) are written in a worker thread so that
        # they never hold the event loop.
        if params.bars <= INLINE_BARS:
            part = make()
        else:
            part = await anyio.to_thread.run_sync(make)
    except ValueError as exc:
        raise errors.InvalidParams(str(exc)) from None
    return GenerateResult(
        kind=part.kind,
        notes=[
            Note(pitch=n.pitch, start=n.start, duration=n.duration, velocity=n.velocity)
            for n in part.notes
        ],
        chords=(
            [
                Chord(symbol=c.symbol, start=c.start, duration=c.duration, pitches=list(c.pitches))
                for c in part.chords
            ]
            if part.chords is not None
            else None
        ),
        description=part.description,
        suggestions=part.suggestions,
        seed=part.seed,
        key=part.key,
        style=part.style,
    )


async def _with_model(
    ctx: Context, params: GenerateParams, key: str, tempo: float, signature: str
) -> GenerateResult:
    svc = services(ctx)
    try:
        total = params.bars * beats_per_bar(parse_time_signature(signature))
        resolved = svc.engines.resolve(params.model or "")
    except ValueError as exc:
        raise errors.InvalidParams(str(exc)) from None
    except EngineError as exc:
        raise errors.EngineUnavailable(exc.message) from None
    await svc.budget.check(tenant(ctx))
    ask = (
        f"Write a {params.kind.replace('_', ' ')} in {key} at {tempo:g} BPM in {signature},"
        f" {params.bars} bars ({total:g} beats). {params.prompt or ''}"
    )
    messages = [ChatMessage("user", ask)]
    problems: list[Problem] = []
    text = ""
    for _attempt in range(2):
        if problems:
            listed = "\n".join(f"- {p.path}: {p.message}" for p in problems)
            messages += [
                ChatMessage("assistant", text),
                ChatMessage("user", f"Problems:\n{listed}\nAnswer again with JSON only."),
            ]
        try:
            text, _ = await collect(
                resolved.engine.stream(resolved.request(messages, system=SYSTEM, max_tokens=4096))
            )
        except EngineError as exc:
            raise errors.EngineUnavailable(exc.message) from None
        notes, description, problems = _checked(text, total)
        if not problems:
            return GenerateResult(
                kind=params.kind,
                notes=notes,
                description=description or f"A {params.kind.replace('_', ' ')} by {params.model}",
                suggestions=[],
                key=key,
            )
    raise errors.EngineUnavailable(
        "the model's notes were invalid twice: "
        + "; ".join(f"{p.path}: {p.message}" for p in problems[:10]),
        {"problems": [{"path": p.path, "message": p.message} for p in problems[:50]]},
    )


def _checked(text: str, total: float) -> tuple[list[Note], str, list[Problem]]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return [], "", [Problem(path="$", message="no JSON object in the answer")]
    try:
        value: Any = msgspec.json.decode(text[start : end + 1])
        notes = _notes.decode(msgspec.json.encode(value.get("notes", [])))
    except (msgspec.DecodeError, msgspec.ValidationError, AttributeError) as exc:
        return [], "", [Problem(path="$.notes", message=str(exc))]
    problems = [
        Problem(
            path=f"$.notes[{i}]", message=f"ends at beat {n.start + n.duration:g}, after {total:g}"
        )
        for i, n in enumerate(notes)
        if n.start + n.duration > total + 1e-6
    ]
    if not notes:
        problems.append(Problem(path="$.notes", message="no notes"))
    description = value.get("description") if isinstance(value, dict) else None
    return notes, description if isinstance(description, str) else "", problems
