"""Pitched parts over a chord timeline: chords (comped and voice-led), basslines,
melodies and harmonies.

Guarantees, relied on by the tests: every note ends by ``total`` beats; chord voicings
hold exactly their chord's tones; a bassline plays its chord's root at the start of
every chord; a melody note starting on a strong beat is a tone of the chord sounding
there; every other note is in the key's scale unless it is marked ``chromatic`` (a
passing tone between two scale tones a whole step apart, on a weak part of the beat).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

import msgspec

from .base import ChordEvent, Feel, Note, clip_note, humanize, strong_beats
from .theory import Chord, Key, nearest_pitch, parse_chord, parse_progression, voice_lead


class Span(msgspec.Struct, frozen=True):
    """A chord sounding from ``start`` for ``duration`` beats."""

    chord: Chord
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


def timeline(key: Key, progression: str, bars: int, bar_beats: float) -> list[Span]:
    """The progression (see :func:`~.theory.parse_progression`) repeated or cut to
    ``bars`` bars."""
    per_bar = parse_progression(key, progression)
    spans = []
    for bar in range(bars):
        chords = per_bar[bar % len(per_bar)]
        length = bar_beats / len(chords)
        for i, chord in enumerate(chords):
            spans.append(Span(chord, round(bar * bar_beats + i * length, 6), length))
    return spans


def spans_of(events: Sequence[ChordEvent]) -> list[Span]:
    """Spans from chord events given by a caller (their symbols are parsed)."""
    return [Span(parse_chord(e.symbol), e.start, e.duration) for e in events]


def chord_at(spans: Sequence[Span], beat: float) -> Span:
    """The span sounding at ``beat`` (the last one that started by then)."""
    current = spans[0]
    for span in spans:
        if span.start <= beat + 1e-9:
            current = span
    return current


def voicings(spans: Sequence[Span]) -> list[tuple[int, ...]]:
    """Each span's voicing: the root in the bass (E2-Eb3), then the upper voices
    (G3-G5) voice-led from the previous chord."""
    result = []
    previous: tuple[int, ...] | None = None
    for span in spans:
        upper = voice_lead(previous, span.chord)
        bass = nearest_pitch(span.chord.root, 45.5, 40, 51)
        result.append((bass, *upper))
        previous = upper
    return result


def events(spans: Sequence[Span]) -> list[ChordEvent]:
    return [
        ChordEvent(span.chord.symbol, span.start, round(span.duration, 6), voicing)
        for span, voicing in zip(spans, voicings(spans), strict=True)
    ]


# Comping rhythms per style for a 4-beat chord, from sparse to busy: (offset, length).
# A chord of another length scales its rhythm.
_TRIPLET: Final = 1 / 3
COMPS: Final[dict[str, tuple[tuple[tuple[float, float], ...], ...]]] = {
    "pop": (((0, 4),), ((0, 2.5), (2.5, 1.5)), ((0, 1), (1, 1), (2, 1), (3, 0.5), (3.5, 0.5))),
    "rock": (((0, 4),), ((0, 1.5), (1.5, 0.5), (2, 2)), tuple((i / 2, 0.5) for i in range(8))),
    "hip-hop": (((0, 4),), ((0, 1.5), (1.5, 2.5)), ((0, 0.75), (0.75, 0.75), (2.5, 1.5))),
    "house": (
        ((0, 4),),
        ((0.5, 0.25), (1.5, 0.25), (2.5, 0.25), (3.5, 0.25)),
        ((0.5, 0.25), (1.5, 0.25), (1.75, 0.25), (2.5, 0.25), (3.5, 0.25)),
    ),
    "jazz": (((0, 4),), ((0, 1), (1.5, 1.5)), ((0, 0.5), (1.5, 1), (2.5 + _TRIPLET, 1 - _TRIPLET))),
    "blues": (
        ((0, 4),),
        ((0, 1), (1, 1), (2, 1), (3, 1)),
        tuple(
            (b + o, d) for b in range(4) for o, d in ((0, 2 * _TRIPLET), (2 * _TRIPLET, _TRIPLET))
        ),
    ),
    "bossa": (
        ((0, 4),),
        ((0, 1), (1.5, 1), (3, 1)),
        ((0, 0.5), (1, 0.5), (1.5, 1), (3, 0.5), (3.5, 0.5)),
    ),
}


def chord_part(
    spans: Sequence[Span], style: str, feel: Feel, rng: random.Random, total: float
) -> tuple[list[Note], list[ChordEvent]]:
    """The chords comped in the style's rhythm, each hit sounding the whole voicing."""
    chords = events(spans)
    level = min(2, max(0, 1 + feel.density + (1 if feel.syncopated else 0)))
    rhythm = COMPS[style][level]
    notes = []
    for event in chords:
        scale = event.duration / 4
        for offset, length in rhythm:
            start = event.start + offset * scale
            if start >= event.end - 1e-9:
                continue
            accent = 84 if offset == 0 else 74
            for pitch in event.pitches:
                note = clip_note(pitch, start, length * scale, humanize(rng, accent), total)
                if note is not None:
                    notes.append(note)
    return sorted(notes, key=lambda n: (n.start, n.pitch)), chords


#: Bass patterns, and each style's patterns from sparse to busy.
BASS_PATTERNS: Final = ("root", "root-fifth", "eighths", "octave", "walking", "syncopated")
BASS_BY_STYLE: Final[dict[str, tuple[str, str, str]]] = {
    "pop": ("root", "root-fifth", "eighths"),
    "rock": ("root", "eighths", "eighths"),
    "hip-hop": ("root", "syncopated", "syncopated"),
    "house": ("root", "octave", "octave"),
    "jazz": ("root-fifth", "walking", "walking"),
    "blues": ("root-fifth", "walking", "walking"),
    "bossa": ("root", "root-fifth", "walking"),
}

_BASS_LOW: Final = 28  # E1
_BASS_HIGH: Final = 52  # E3


def bass_pattern_for(style: str, feel: Feel, prompt: str | None) -> str:
    """The pattern a prompt names (``walking``, ``octave``, ``root-fifth``/``fifths``,
    ``eighths``/``driving``, ``syncopated``/``funky``, ``root``/``whole notes``), else
    the style's pattern for the feel."""
    text = (prompt or "").lower()
    for words, pattern in (
        (("walking", "walk"), "walking"),
        (("octave",), "octave"),
        (("root-fifth", "root fifth", "fifth"), "root-fifth"),
        (("eighth", "8th", "driving", "pumping"), "eighths"),
        (("syncopat", "funky", "funk"), "syncopated"),
        (("whole note", "roots only", "just the root", "root note"), "root"),
    ):
        if any(word in text for word in words):
            return pattern
    if feel.syncopated and feel.density >= 0 and style not in ("jazz", "blues"):
        return "syncopated"
    return BASS_BY_STYLE[style][feel.density + 1]


def bassline(
    spans: Sequence[Span], key: Key, pattern: str, rng: random.Random, total: float
) -> list[Note]:
    """A bassline in ``pattern`` (one of :data:`BASS_PATTERNS`) over the spans."""
    notes: list[Note] = []
    previous = 40.0
    for index, span in enumerate(spans):
        root = nearest_pitch(span.chord.root, previous, 31, 47)
        fifth = root + (span.chord.fifth - span.chord.root) % 12
        length = span.duration
        nxt = spans[(index + 1) % len(spans)].chord.root
        hits: list[tuple[float, float, int, bool]]  # offset, length, pitch, chromatic
        if pattern == "root":
            half = length / 2 if length >= 4 else length
            second = root + 12 if rng.random() < 0.3 else root
            hits = [(0, half, root, False)] + (
                [(half, half, second, False)] if half < length else []
            )
        elif pattern == "root-fifth":
            if length >= 2:
                hits = [
                    (0, 1.5, root, False),
                    (1.5, 0.5, fifth, False),
                    (2, length - 2, fifth, False),
                ]
                if length >= 4:
                    pickup = rng.choice((root, root, root + 12, fifth))
                    hits = [*hits[:2], (2, 1.5, fifth, False), (3.5, length - 3.5, pickup, False)]
            else:
                hits = [(0, length, root, False)]
        elif pattern == "eighths":
            hits = [(i / 2, 0.5, root, False) for i in range(int(length * 2))]
            if len(hits) >= 4 and rng.random() < 0.5:
                octave = root + 12 if root + 12 <= _BASS_HIGH else fifth
                hits[-1] = (hits[-1][0], 0.5, rng.choice((octave, fifth)), False)
        elif pattern == "octave":
            high = root + 12
            hits = [
                (i / 2, 0.5, root if i % 2 == 0 else high, False) for i in range(int(length * 2))
            ]
            if len(hits) >= 4 and rng.random() < 0.5:  # a fifth in place of the last octave
                up = fifth + 12 if fifth + 12 <= high and rng.random() < 0.5 else fifth
                hits[-1] = (hits[-1][0], 0.5, up, False)
        elif pattern == "syncopated":
            hits = [(0, 0.75, root, False)]
            for offset in (0.75, 1.5, 2.5, 3.0, 3.5):
                if offset < length and rng.random() < 0.55:
                    pitch = rng.choice((root, root, fifth, root + 12))
                    hits.append((offset, 0.5 if offset != 0.75 else 0.25, pitch, False))
        else:
            hits = _walk(root, nxt, span.chord, key, length, rng)
        for offset, dur, pitch, chromatic in hits:
            if dur <= 0 or offset >= length - 1e-9:
                continue
            dur = min(dur, length - offset)
            velocity = humanize(rng, 100 if offset == 0 else 88)
            note = clip_note(pitch, span.start + offset, dur, velocity, total, chromatic=chromatic)
            if note is not None:
                notes.append(note)
        previous = root
    return notes


def _walk(
    root: int, next_root: int, chord: Chord, key: Key, length: float, rng: random.Random
) -> list[tuple[float, float, int, bool]]:
    """A walking bar: the root, chord and scale tones, then a step into the next root
    (now and then a chromatic half step, marked)."""
    beats = max(1, int(length))
    target = nearest_pitch(next_root, root, _BASS_LOW, _BASS_HIGH)
    hits = [(0.0, 1.0, root, False)]
    current = root
    for beat in range(1, beats):
        last = beat == beats - 1
        if last:
            above = target + 1 if target + 1 <= _BASS_HIGH else target - 1
            below = target - 1 if target - 1 >= _BASS_LOW else target + 1
            half = rng.choice((above, below))
            if not key.contains(half) and rng.random() < 0.15:
                hits.append((float(beat), length - beat, half, True))
                continue
            options = [p for p in _scale_neighbours(target, key) if p != current]
            pitch = min(options, key=lambda p: (abs(p - current), p)) if options else target
            hits.append((float(beat), length - beat, pitch, False))
            current = pitch
            continue
        candidates = [
            p
            for p in range(current - 5, current + 6)
            if _BASS_LOW <= p <= _BASS_HIGH and p != current and key.contains(p)
        ]
        weights = [
            (3 if p % 12 in chord.tones else 1)
            * (2 if (p - current) * (target - current) > 0 else 1)
            for p in candidates
        ]
        current = rng.choices(candidates, weights)[0]
        hits.append((float(beat), 1.0, current, False))
    return hits


def _scale_neighbours(pitch: int, key: Key) -> list[int]:
    """The scale tones just above and just below ``pitch`` within the bass range."""
    up = next((p for p in range(pitch + 1, pitch + 3) if key.contains(p)), None)
    down = next((p for p in range(pitch - 1, pitch - 3, -1) if key.contains(p)), None)
    return [p for p in (up, down) if p is not None and _BASS_LOW <= p <= _BASS_HIGH]


# Melody rhythm figures: (length in beats, onsets as (offset, duration)), by density.
_FIGURES: Final[dict[int, tuple[tuple[float, tuple[tuple[float, float], ...]], ...]]] = {
    -1: (
        (4, ((0, 4),)),
        (2, ((0, 2),)),
        (2, ((0, 1.5), (1.5, 0.5))),
        (1, ((0, 1),)),
        (1, ()),
    ),
    0: (
        (1, ((0, 1),)),
        (1, ((0, 0.5), (0.5, 0.5))),
        (2, ((0, 1.5), (1.5, 0.5))),
        (2, ((0, 2),)),
        (1, ((0, 0.75), (0.75, 0.25))),
        (1, ((0, 0.5),)),
    ),
    1: (
        (1, ((0, 0.5), (0.5, 0.5))),
        (1, ((0, 0.25), (0.25, 0.25), (0.5, 0.5))),
        (1, ((0, 0.5), (0.5, 0.25), (0.75, 0.25))),
        (1, ((0, 0.25), (0.25, 0.25), (0.5, 0.25), (0.75, 0.25))),
        (1, ((0, 1),)),
    ),
}
_SYNCOPATED_FIGURES: Final = (
    (1, ((0.5, 0.5),)),
    (2, ((0, 0.5), (0.5, 1), (1.5, 0.5))),
    (1, ((0, 0.75), (0.75, 0.75))),
)

MELODY_LOW: Final = 60  # C4
MELODY_HIGH: Final = 84  # C6


def _bar_rhythm(
    bar_beats: float, feel: Feel, rng: random.Random, *, final: bool
) -> list[tuple[float, float]]:
    """Onsets of one bar; a final bar ends on a long note from its last strong beat."""
    figures = list(_FIGURES[feel.density])
    if feel.syncopated:
        figures += _SYNCOPATED_FIGURES
    end = strong_beats(bar_beats)[-1] if final else bar_beats
    onsets: list[tuple[float, float]] = []
    at = 0.0
    while at < end - 1e-9:
        fitting = [f for f in figures if f[0] <= end - at + 1e-9]
        if not fitting:
            onsets.append((at, end - at))
            break
        length, figure = rng.choice(fitting)
        onsets += [(at + offset, duration) for offset, duration in figure]
        at += length
    if final:
        onsets.append((end, bar_beats - end))
    return onsets


def melody(
    spans: Sequence[Span],
    key: Key,
    bars: int,
    bar_beats: float,
    feel: Feel,
    style: str,
    rng: random.Random,
) -> list[Note]:
    """A melody in the key's scale, on chord tones at the strong beats, in phrases of
    two-bar rhythmic motifs; it ends on a long chord tone (the tonic when it fits)."""
    total = bars * bar_beats
    motifs = [_bar_rhythm(bar_beats, feel, rng, final=False) for _ in range(2)]
    scale_pitches = [p for p in range(MELODY_LOW, MELODY_HIGH + 1) if key.contains(p)]
    strong = strong_beats(bar_beats)
    current = nearest_pitch(spans[0].chord.root, 67, MELODY_LOW, MELODY_HIGH)
    onsets: list[tuple[float, float, bool]] = []
    for bar in range(bars):
        final = bar == bars - 1
        if final:
            rhythm = _bar_rhythm(bar_beats, feel, rng, final=True)
        elif bar % 4 == 3:
            rhythm = _bar_rhythm(bar_beats, feel, rng, final=False)
        else:
            rhythm = motifs[bar % 2]
        for offset, duration in rhythm:
            is_strong = any(abs(offset - s) < 1e-9 for s in strong)
            onsets.append((bar * bar_beats + offset, duration, is_strong))

    notes: list[Note] = []
    for n, (start, duration, is_strong) in enumerate(onsets):
        span = chord_at(spans, start)
        last = n == len(onsets) - 1
        if is_strong or last:
            tones = [p for p in scale_pitches if p % 12 in span.chord.tones] or scale_pitches
            if last and key.tonic in span.chord.tones:
                tones = [p for p in tones if p % 12 == key.tonic]
            ranked = sorted(tones, key=lambda p: (abs(p - current), p))
            current = ranked[0] if len(ranked) < 2 or rng.random() < 0.7 else ranked[1]
        else:
            index = scale_pitches.index(current) if current in scale_pitches else 0
            moves = (-2, -1, 0, 1, 2, -3, 3, -4, 4)
            weights = (
                [2, 5, 1, 5, 2, 1, 1, 0.5, 0.5]
                if feel.density <= 0
                else [1, 6, 1, 6, 1, 0.3, 0.3, 0, 0]
            )
            middle = len(scale_pitches) // 2
            pull = (middle - index) / len(scale_pitches)  # lean back towards the middle
            weights = [
                w * (1.5 if m * pull > 0 else 1) for m, w in zip(moves, weights, strict=True)
            ]
            move = rng.choices(moves, weights)[0]
            current = scale_pitches[max(0, min(len(scale_pitches) - 1, index + move))]
        velocity = humanize(rng, 96 if is_strong else 84)
        note = clip_note(current, start, duration, velocity, total)
        if note is not None:
            notes.append(note)
    return _passing_tones(notes, key, bar_beats, style, rng)


def _passing_tones(
    notes: list[Note], key: Key, bar_beats: float, style: str, rng: random.Random
) -> list[Note]:
    """Now and then split a note a whole step from the next into itself and the
    chromatic tone between (marked); never on a strong beat."""
    chance = 0.15 if style in ("jazz", "blues", "bossa") else 0.05
    strong = strong_beats(bar_beats)
    result: list[Note] = []
    for note, nxt in zip(notes, [*notes[1:], None], strict=True):
        between = (note.pitch + nxt.pitch) // 2 if nxt is not None else None
        split = round(note.start + note.duration / 2, 6)
        offset = split % bar_beats
        if (
            nxt is not None
            and between is not None
            and abs(nxt.pitch - note.pitch) == 2
            and abs(note.end - nxt.start) < 1e-6
            and note.duration >= 0.5
            and not key.contains(between)
            and not any(abs(offset - s) < 1e-6 for s in strong)
            and rng.random() < chance
        ):
            half = round(split - note.start, 6)
            result.append(Note(note.pitch, note.start, half, note.velocity))
            soft = max(1, note.velocity - 8)
            result.append(Note(between, split, round(note.end - split, 6), soft, True))
        else:
            result.append(note)
    return result


HARMONY_INTERVALS: Final = {"third": 2, "sixth": 5}  # scale steps above


def harmony_interval_for(prompt: str | None) -> str | None:
    """``"third"`` or ``"sixth"`` when the prompt names one, else None (choose freely)."""
    text = (prompt or "").lower()
    if "sixth" in text or "6th" in text:
        return "sixth"
    if "third" in text or "3rd" in text:
        return "third"
    return None


def harmony(
    tune: Sequence[Note],
    spans: Sequence[Span],
    key: Key,
    bar_beats: float,
    interval: str | None,
    total: float,
) -> list[Note]:
    """A diatonic third (or sixth) above each melody note in the key's scale. With no
    ``interval`` it is a third, but a sixth on a strong beat where only the sixth is a
    chord tone. Melody notes outside the scale (passing tones) are left unharmonized,
    and so are notes whose harmony would pass pitch 127."""
    strong = strong_beats(bar_beats)
    scale = key.scale
    notes = []
    for note in tune:
        degree = key.degree_of(note.pitch)
        if degree is None or note.chromatic:
            continue

        def above(steps: int, pitch: int = note.pitch, degree: int = degree) -> int:
            target = scale[(degree + steps) % 7]
            return pitch + (target - pitch) % 12

        choice = interval or "third"
        if interval is None and any(abs(note.start % bar_beats - s) < 1e-6 for s in strong):
            tones = chord_at(spans, note.start).chord.tones
            third, sixth = above(2) % 12, above(5) % 12
            if third not in tones and sixth in tones:
                choice = "sixth"
        pitch = above(HARMONY_INTERVALS[choice])
        made = clip_note(pitch, note.start, note.duration, max(1, note.velocity - 10), total)
        if made is not None:
            notes.append(made)
    return notes
