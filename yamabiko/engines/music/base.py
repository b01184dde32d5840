"""What the music generator returns (notes, chords) and how a prompt shapes it (feel).

Time is in beats (quarter notes, as in a DAW): a bar of ``n/d`` lasts ``n * 4 / d``
beats, so 4/4 is 4 beats, 3/4 is 3 and 6/8 is 3.
"""

from __future__ import annotations

import math
import random
import re
from typing import Final, Literal

import msgspec

Kind = Literal["drum_pattern", "bassline", "chord_progression", "melody", "harmony"]
KINDS: Final[tuple[Kind, ...]] = (
    "drum_pattern",
    "bassline",
    "chord_progression",
    "melody",
    "harmony",
)


class Note(msgspec.Struct, frozen=True, omit_defaults=True):
    """A MIDI note: ``pitch`` 0-127, ``start`` and ``duration`` in beats, ``velocity``
    1-127. ``chromatic`` marks a deliberate passing tone outside the key's scale."""

    pitch: int
    start: float
    duration: float
    velocity: int
    chromatic: bool = False

    @property
    def end(self) -> float:
        return self.start + self.duration


class ChordEvent(msgspec.Struct, frozen=True):
    """A chord sounding from ``start`` for ``duration`` beats: its symbol (``"Am"``) and
    its voiced MIDI pitches from the bass up (bass root, then the upper voices)."""

    symbol: str
    start: float
    duration: float
    pitches: tuple[int, ...]

    @property
    def end(self) -> float:
        return self.start + self.duration


class Generated(msgspec.Struct, frozen=True, kw_only=True):
    """One generated part.

    ``notes`` are sorted by start then pitch and all end by ``bars`` bars. ``chords``
    is the harmony the part was written over (None for drums); ``melody`` is the melody
    a ``harmony`` part harmonizes (None for other kinds). ``seed`` reproduces the part
    (the same seed and arguments give the same notes)."""

    kind: Kind
    notes: list[Note]
    chords: list[ChordEvent] | None
    melody: list[Note] | None
    description: str
    suggestions: list[str]
    seed: int
    key: str
    style: str
    tempo: float
    bars: int
    time_signature: tuple[int, int]


Density = Literal[-1, 0, 1]


class Feel(msgspec.Struct, frozen=True):
    """How busy and how syncopated a part should be, read from the prompt."""

    density: Density = 0
    syncopated: bool = False


_BUSY: Final = re.compile(
    r"\b(busy|busier|dense|denser|driving|energetic|more notes|lots of notes|"
    r"sixteenths?|16ths?|intense|complex)\b"
)
_SPARSE: Final = re.compile(
    r"\b(sparse|sparser|simple|simpler|minimal|fewer notes|less busy|laid[ -]back|chill|"
    r"calm|gentle|spacious|whole notes?)\b"
)
_SYNCOPATED: Final = re.compile(r"\b(syncopated|syncopation|funky|funk|off-?beats?|groovy)\b")


def feel_of(prompt: str | None) -> Feel:
    """``"a busier, syncopated line"`` → ``Feel(density=1, syncopated=True)``."""
    if not prompt:
        return Feel()
    text = prompt.lower()
    density: Density = 1 if _BUSY.search(text) else -1 if _SPARSE.search(text) else 0
    return Feel(density, bool(_SYNCOPATED.search(text)))


def beats_per_bar(time_signature: tuple[int, int]) -> float:
    """Quarter-note beats in one bar: (4, 4) → 4.0, (6, 8) → 3.0, (7, 8) → 3.5."""
    numerator, denominator = time_signature
    return numerator * 4 / denominator


def strong_beats(bar_beats: float) -> tuple[float, ...]:
    """Offsets of the strong beats in a bar: the downbeat, and the middle of a bar of an
    even number of beats (beat 3 of 4/4)."""
    if bar_beats >= 4 and bar_beats == int(bar_beats) and int(bar_beats) % 2 == 0:
        return (0.0, bar_beats / 2)
    return (0.0,)


#: Styles whose eighth notes swing (their drums play on a triplet grid).
SWUNG_STYLES: Final = frozenset({"jazz", "blues"})


def swung(offset: float) -> float:
    """A straight time in beats moved to the swing grid: the off-beat eighth (x.5)
    falls on the last triplet of its beat (x + 2/3); other times stay."""
    beat = math.floor(offset + 1e-9)
    if abs(offset - beat - 0.5) < 1e-6:
        return beat + 2 / 3
    return offset


def humanize(rng: random.Random, velocity: float, spread: int = 6) -> int:
    """``velocity`` moved by up to ``spread`` either way, kept in 1-127."""
    return max(1, min(127, round(velocity) + rng.randint(-spread, spread)))


def clip_note(
    pitch: int,
    start: float,
    duration: float,
    velocity: int,
    total: float,
    *,
    chromatic: bool = False,
) -> Note | None:
    """A note with its times rounded to 6 decimals and cut at ``total`` beats; None when
    nothing of it is left."""
    start = round(start, 6)
    end = min(round(start + duration, 6), total)
    if end - start <= 1e-6 or not 0 <= pitch <= 127:
        return None
    return Note(pitch, start, round(end - start, 6), max(1, min(127, velocity)), chromatic)
