"""The ``music`` namespace (docs/agent.md): ``music/generate``, scope ``agent``.

The built-in engine is a music-theory generator, deterministic for a seed; a provider
model writes the part instead when ``model`` is given (its JSON is checked like agent
actions: notes in range and inside the bars, repaired once, else -32010).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta

from yamabiko.schema.agents import ModelName
from yamabiko.schema.base import SCOPE_AGENT, MethodSchema, Params, Result
from yamabiko.schema.daw import KeyName, Note, Tempo, TimeSignature

MUSIC_GENERATE: Final = "music/generate"

MusicKind = Literal["drum_pattern", "bassline", "chord_progression", "melody", "harmony"]


class GenerateParams(Params):
    kind: MusicKind
    prompt: Annotated[str, Meta(max_length=2000)] | None = None
    """Words shape the part: a style (rock, jazz, house...), "busier"/"sparse",
    "syncopated", bass patterns ("walking", "octave"), "sixths" for harmony, a
    progression in roman numerals ("ii-V-I")."""
    key: KeyName | None = None
    """``A minor``, ``Am``, ``F# major``, ``Bb dorian``... (default C major)."""
    tempo: Tempo | None = None
    bars: Annotated[int, Meta(ge=1, le=64)] = 4
    time_signature: TimeSignature | None = None
    """``4/4`` (the default), ``3/4``, ``6/8``..."""
    style: Annotated[str, Meta(max_length=40)] | None = None
    seed: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None
    """The same seed and arguments give the same notes; none draws one (returned)."""
    model: ModelName | None = None


class Chord(Result):
    symbol: str
    start: float
    duration: float
    pitches: list[int]
    """The voicing, bass root first."""


class GenerateResult(Result, kw_only=True):
    kind: str
    notes: list[Note]
    chords: list[Chord] | None = None
    description: str
    suggestions: list[str]
    seed: int | None = None
    """What reproduces this part (None when a model wrote it)."""
    key: str
    style: str | None = None


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        MUSIC_GENERATE, GenerateParams, GenerateResult,
        "A drum pattern, bassline, chord progression, melody or harmony, in key and bars.",
        scope=SCOPE_AGENT,
    ),
)  # fmt: skip
