"""Pitched parts over a chord timeline: chords (comped and voice-led), basslines,
melodies and harmonies.

Guarantees, relied on by the tests: every note ends by ``total`` beats; chord voicings
hold exactly their chord's tones; a bassline plays its chord's root at the start of
every chord; a melody note starting on a strong beat is a tone of the chord sounding
there; every other note is in the key's scale, or a tone of the chord sounding (the
raised leading tone of a dominant in minor, a borrowed chord's tone), or marked
``chromatic`` (a passing tone between two scale tones a whole step apart, on a weak
part of the beat). A melody sits above the top voice of the chord sounding; a bassline
never moves more than an octave between two notes.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import msgspec

from .base import (
    SWUNG_STYLES,
    ChordEvent,
    Feel,
    Note,
    clip_note,
    humanize,
    strong_beats,
    swung,
)
from .theory import Chord, Key, chord_scale, nearest_pitch, parse_chord, parse_progression
from .voicing import voice


class Span(msgspec.Struct, frozen=True):
    """A chord sounding from ``start`` for ``duration`` beats."""

    chord: Chord
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


def timeline(
    key: Key, progression: str, bars: int, bar_beats: float, *, style: str | None = None
) -> list[Span]:
    """The progression (see :func:`~.theory.parse_progression`, with the ``style``'s
    chord qualities) repeated or cut to ``bars`` bars."""
    per_bar = parse_progression(key, progression, style=style)
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
    """The span sounding at ``beat`` (the last one that started by then; the first
    when none has). ``spans`` are sorted by start."""
    at = bisect.bisect_right([span.start for span in spans], beat + 1e-9)
    return spans[max(0, at - 1)]


def voicings(spans: Sequence[Span]) -> list[tuple[int, ...]]:
    """Each span's voicing, the root in the bass then three upper voices, voice-led
    across the whole sequence (see :mod:`.voicing`)."""
    return list(_voiced(tuple(span.chord for span in spans)))


@lru_cache(maxsize=128)
def _voiced(chords: tuple[Chord, ...]) -> tuple[tuple[int, ...], ...]:
    # The parts of one seed (chords, bass, melody) voice the same progression.
    return tuple(voice(chords))


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
    spans: Sequence[Span],
    key: Key,
    pattern: str,
    rng: random.Random,
    total: float,
    *,
    swing: bool = False,
) -> list[Note]:
    """A bassline in ``pattern`` (one of :data:`BASS_PATTERNS`) over the spans.

    It moves smoothly: each root is the one nearest the previous root, fifths are taken
    below the root when that is nearer, and the note before a new chord steps into it;
    no leap inside a pattern is wider than an octave. ``swing`` moves off-beat eighths
    onto the triplet grid."""
    notes: list[Note] = []
    previous = 40.0
    for index, span in enumerate(spans):
        root = nearest_pitch(span.chord.root, previous, 31, 47)
        length = span.duration
        nxt = spans[(index + 1) % len(spans)].chord
        next_root = nearest_pitch(nxt.root, root, 31, 47)
        # The fifth above or the fifth below (a fourth down): mostly the one on the way
        # to the next root, as a bassist leads into the next chord.
        above = root + (span.chord.fifth - span.chord.root) % 12
        fifths = sorted(
            (p for p in (above, above - 12) if _BASS_LOW <= p <= _BASS_HIGH),
            key=lambda p: (abs(p - next_root), p),
        )
        fifth = fifths[0] if len(fifths) < 2 or rng.random() < 0.8 else fifths[1]
        scale = chord_scale(key, span.chord)
        approach = _approach(next_root, fifth, scale)
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
                    pickup = rng.choice((root, fifth, approach, approach))
                    hits = [*hits[:2], (2, 1.5, fifth, False), (3.5, length - 3.5, pickup, False)]
            else:
                hits = [(0, length, root, False)]
        elif pattern == "eighths":
            hits = [(i / 2, 0.5, root, False) for i in range(int(length * 2))]
            if len(hits) >= 4 and rng.random() < 0.5:
                hits[-1] = (hits[-1][0], 0.5, rng.choice((fifth, approach)), False)
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
                    pitch = rng.choice((root, root, fifth, approach if offset == 3.5 else root))
                    hits.append((offset, 0.5 if offset != 0.75 else 0.25, pitch, False))
        else:
            hits = _walk(root, next_root, span.chord, scale, key, length, rng)
        if swing and pattern != "walking":
            hits = [(swung(o), swung(o + d) - swung(o), p, c) for o, d, p, c in hits]
        for offset, dur, pitch, chromatic in hits:
            if dur <= 0 or offset >= length - 1e-9:
                continue
            dur = min(dur, length - offset)
            velocity = humanize(rng, 100 if offset == 0 else 88)
            note = clip_note(pitch, span.start + offset, dur, velocity, total, chromatic=chromatic)
            if note is not None:
                notes.append(note)
        previous = root
    return _within_an_octave(notes)


def _within_an_octave(notes: list[Note]) -> list[Note]:
    """The notes with any one more than an octave from the note before it moved an
    octave towards it (its pitch class kept), so the line never leaps over an octave."""
    smooth: list[Note] = []
    for note in notes:
        pitch = note.pitch
        if smooth:
            before = smooth[-1].pitch
            while pitch - before > 12 and pitch - 12 >= _BASS_LOW:
                pitch -= 12
            while before - pitch > 12 and pitch + 12 <= _BASS_HIGH + 12:
                pitch += 12
        smooth.append(msgspec.structs.replace(note, pitch=pitch) if pitch != note.pitch else note)
    return smooth


def _approach(target: int, current: int, scale: Sequence[int]) -> int:
    """The scale tone a step from ``target`` on the side ``current`` comes from (the
    target itself when it is the same pitch class), so the line steps into it."""
    if target == current:
        return target
    side = 1 if current > target else -1
    for distance in (1, 2):
        pitch = target + side * distance
        if pitch % 12 in scale and _BASS_LOW <= pitch <= _BASS_HIGH:
            return pitch
    return target


def _walk(
    root: int,
    target: int,
    chord: Chord,
    scale: Sequence[int],
    key: Key,
    length: float,
    rng: random.Random,
) -> list[tuple[float, float, int, bool]]:
    """A walking bar: the root, chord and scale tones heading for the next root
    (``target``), then a step into it (now and then a chromatic half step, marked)."""
    beats = max(1, int(length))
    hits = [(0.0, 1.0, root, False)]
    current = root
    for beat in range(1, beats):
        last = beat == beats - 1
        if last:
            above = target + 1 if target + 1 <= _BASS_HIGH else target - 1
            below = target - 1 if target - 1 >= _BASS_LOW else target + 1
            half = rng.choice((above, below))
            outside = not key.contains(half) and half % 12 not in scale
            if outside and abs(half - current) <= 7 and rng.random() < 0.15:
                hits.append((float(beat), length - beat, half, True))
                continue
            options = [p for p in _scale_neighbours(target, scale) if p != current]
            pitch = min(options, key=lambda p: (abs(p - current), p)) if options else target
            hits.append((float(beat), length - beat, pitch, False))
            current = pitch
            continue
        candidates = [
            p
            for p in range(current - 5, current + 6)
            if _BASS_LOW <= p <= _BASS_HIGH and p != current and p % 12 in scale
        ]
        weights = [
            (3 if p % 12 in chord.tones else 1)
            * (2 if (p - current) * (target - current) > 0 else 1)
            * (2 if abs(p - current) <= 2 else 1)
            for p in candidates
        ]
        current = rng.choices(candidates, weights)[0]
        hits.append((float(beat), 1.0, current, False))
    return hits


def _scale_neighbours(pitch: int, scale: Sequence[int]) -> list[int]:
    """The scale tones just above and just below ``pitch`` within the bass range."""
    up = next((p for p in range(pitch + 1, pitch + 3) if p % 12 in scale), None)
    down = next((p for p in range(pitch - 1, pitch - 3, -1) if p % 12 in scale), None)
    return [p for p in (up, down) if p is not None and _BASS_LOW <= p <= _BASS_HIGH]


Figure = tuple[float, tuple[tuple[float, float], ...]]
"""A rhythm figure: its length in beats and its onsets as (offset, duration)."""

_T: Final = 1 / 3

# Melody rhythm figures per rhythmic family at medium density. Sparse melodies play
# them at half speed, busy ones add the family's quick figures. Straight families
# syncopate (anticipations, off-beat starts); the swung family sits on the triplet
# grid, long-short eighths and triplets, like its drums.
_FIGURES: Final[dict[str, tuple[Figure, ...]]] = {
    "pop": (
        (1, ((0, 1),)),
        (1, ((0, 0.5), (0.5, 0.5))),
        (2, ((0, 1.5), (1.5, 0.5))),
        (2, ((0, 0.5), (0.5, 1), (1.5, 0.5))),
        (2, ((0.5, 1), (1.5, 0.5))),
        (2, ((0, 1), (1, 0.5), (1.5, 0.5))),
    ),
    "rock": (
        (1, ((0, 1),)),
        (1, ((0, 0.5), (0.5, 0.5))),
        (2, ((0, 2),)),
        (2, ((0, 1.5), (1.5, 0.5))),
        (2, ((0, 1), (1, 1))),
    ),
    "house": (
        (1, ((0, 0.75), (0.75, 0.25))),
        (1, ((0.5, 0.5),)),
        (2, ((0, 0.75), (0.75, 0.75), (1.5, 0.5))),
        (1, ((0, 0.5), (0.5, 0.5))),
        (2, ((0.25, 0.5), (0.75, 1.25))),
    ),
    "hip-hop": (
        (1, ((0, 0.75), (0.75, 0.25))),
        (2, ((0, 0.5), (0.5, 1.5))),
        (1, ((0, 1),)),
        (2, ((0, 1.25), (1.25, 0.75))),
        (2, ((0, 2),)),
    ),
    "swung": (
        (1, ((0, 2 * _T), (2 * _T, _T))),
        (1, ((0, 1),)),
        (1, ((0, _T), (_T, _T), (2 * _T, _T))),
        (2, ((0, 1), (1, 2 * _T), (1 + 2 * _T, _T))),
        (2, ((0, 2 * _T), (2 * _T, 1 + _T))),
        (2, ((0, 1.5 + _T / 2),)),
    ),
    "bossa": (
        (2, ((0, 0.5), (0.5, 1), (1.5, 0.5))),
        (1, ((0, 0.5), (0.5, 0.5))),
        (2, ((0, 1.5), (1.5, 0.5))),
        (1, ((0, 1),)),
        (2, ((0, 1), (1.5, 0.5))),
    ),
}
_BUSY_FIGURES: Final[dict[str, tuple[Figure, ...]]] = {
    "straight": (
        (1, ((0, 0.25), (0.25, 0.25), (0.5, 0.5))),
        (1, ((0, 0.5), (0.5, 0.25), (0.75, 0.25))),
        (1, ((0, 0.25), (0.25, 0.25), (0.5, 0.25), (0.75, 0.25))),
    ),
    "swung": (
        (1, ((0, _T), (_T, _T), (2 * _T, _T))),
        (1, ((0, 2 * _T), (2 * _T, _T))),
    ),
}
_SYNCOPATED_FIGURES: Final[dict[str, tuple[Figure, ...]]] = {
    "straight": (
        (1, ((0.5, 0.5),)),
        (2, ((0, 0.5), (0.5, 1), (1.5, 0.5))),
        (1, ((0, 0.75), (0.75, 0.75))),
    ),
    "swung": (
        (1, ((2 * _T, _T),)),
        (2, ((0, 2 * _T), (2 * _T, 1))),
    ),
}

MELODY_LOW: Final = 60  # C4
MELODY_HIGH: Final = 88  # E6
_MELODY_SPAN: Final = 16  # a melody's range above the accompaniment
_HOME: Final = 71  # B4: where a melody starts looking for its first note


def _family(style: str) -> str:
    return "swung" if style in SWUNG_STYLES else style if style in _FIGURES else "pop"


def _figures(style: str, feel: Feel) -> list[Figure]:
    family = _family(style)
    grid = "swung" if family == "swung" else "straight"
    figures = list(_FIGURES[family])
    if feel.density < 0:
        figures = [
            (length * 2, tuple((o * 2, d * 2) for o, d in onsets)) for length, onsets in figures
        ]
    elif feel.density > 0:
        figures += _BUSY_FIGURES[grid] * 2
    if feel.syncopated:
        figures += _SYNCOPATED_FIGURES[grid]
    return figures


def _bar_rhythm(
    bar_beats: float, figures: Sequence[Figure], rng: random.Random, *, final: bool
) -> list[tuple[float, float]]:
    """Onsets of one bar; a final bar ends on a long note from its last strong beat."""
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


def _varied(
    motif: list[tuple[float, float]],
    bar_beats: float,
    figures: Sequence[Figure],
    rng: random.Random,
) -> list[tuple[float, float]]:
    """The motif with its second half redrawn: the answer to a phrase's question."""
    half = bar_beats / 2
    kept = [(o, d) for o, d in motif if o + d <= half + 1e-9]
    if len(kept) == len(motif) or not kept or half != int(half):
        return _bar_rhythm(bar_beats, figures, rng, final=False)
    tail = _bar_rhythm(half, figures, rng, final=False)
    return kept + [(half + o, d) for o, d in tail]


def melody(
    spans: Sequence[Span],
    voiced: Sequence[ChordEvent],
    key: Key,
    bars: int,
    bar_beats: float,
    feel: Feel,
    style: str,
    rng: random.Random,
    *,
    closed: bool = True,
) -> list[Note]:
    """A melody over the chords: in the scale as it sounds over each chord, on chord
    tones at the strong beats, above the top voice of the chord sounding (``voiced``),
    in the style's rhythm (swung in swung styles) as motifs that repeat and vary (a
    bar A, a bar B, A again, a new answer), ending on a long tonic (``closed``) or a
    long chord tone other than the tonic."""
    total = bars * bar_beats
    figures = _figures(style, feel)
    motifs = [_bar_rhythm(bar_beats, figures, rng, final=False) for _ in range(2)]
    strong = strong_beats(bar_beats)
    onsets: list[tuple[float, float, bool]] = []
    for bar in range(bars):
        if bar == bars - 1:
            rhythm = _bar_rhythm(bar_beats, figures, rng, final=True)
        elif bar % 4 == 3:
            rhythm = _varied(motifs[1], bar_beats, figures, rng)
        else:
            rhythm = motifs[bar % 2]
        for offset, duration in rhythm:
            is_strong = any(abs(offset - s) < 1e-9 for s in strong)
            onsets.append((bar * bar_beats + offset, duration, is_strong))

    notes: list[Note] = []
    starts = [event.start for event in voiced]
    places: dict[int, tuple[list[int], list[int]]] = {}  # by chord: its pitches, its tones
    home = {key.scale[0], key.scale[2], key.scale[4]}
    first_floor = max(max(voiced[0].pitches) + 1, MELODY_LOW)
    current = nearest_pitch(spans[0].chord.root, max(_HOME, first_floor + 2), first_floor)
    for n, (start, duration, is_strong) in enumerate(onsets):
        here = current
        at = max(0, bisect.bisect_right(starts, start + 1e-9) - 1)
        if at not in places:
            places[at] = _place(spans[at].chord, voiced[at], key)
        pitches, chord_pitches = places[at]
        last = n == len(onsets) - 1
        before_last = n == len(onsets) - 2 and not is_strong
        if last or is_strong:
            tones = chord_pitches
            if last:
                ending = [p for p in tones if (p % 12 == key.tonic) == closed]
                tones = ending or tones
            # Tones of the tonic triad come first when they are near: they say the key.
            ranked = sorted(tones, key=lambda p: (abs(p - here) + 2 * (p % 12 not in home), p))
            pick = 0 if last or len(ranked) < 2 or rng.random() < 0.7 else 1
            current = ranked[pick]
        elif before_last and closed:
            # Step into the final tonic: from the second degree or the leading tone.
            final_span = chord_at(spans, onsets[-1][0])
            targets = [p for p in pitches if p % 12 == key.tonic]
            if key.tonic in final_span.chord.tones and targets:
                target = min(targets, key=lambda p: (abs(p - here), p))
                steps = [p for p in pitches if 0 < abs(p - target) <= 2]
                current = min(steps, key=lambda p: (abs(p - here), p)) if steps else target
        else:
            if current not in pitches:
                current = min(pitches, key=lambda p: (abs(p - here), p))
            index = pitches.index(current)
            moves = (-2, -1, 0, 1, 2, -3, 3, -4, 4)
            weights = (
                [2, 6, 1, 6, 2, 1, 1, 0.3, 0.3]
                if feel.density <= 0
                else [1, 6, 1, 6, 1, 0.3, 0.3, 0, 0]
            )
            pull = (len(pitches) / 2 - index) / len(pitches)  # lean back towards the middle
            weights = [
                w * (1.5 if m * pull > 0 else 1) for m, w in zip(moves, weights, strict=True)
            ]
            move = rng.choices(moves, weights)[0]
            current = pitches[max(0, min(len(pitches) - 1, index + move))]
        velocity = humanize(rng, 96 if is_strong else 84)
        note = clip_note(current, start, duration, velocity, total)
        if note is not None:
            notes.append(note)
    return _passing_tones(notes, key, bar_beats, style, rng)


def _place(chord: Chord, voiced: ChordEvent, key: Key) -> tuple[list[int], list[int]]:
    """The pitches a melody may use over a chord (its scale, above the voicing's top
    and within the melody's span) and those of them that are chord tones."""
    floor = max(max(voiced.pitches) + 1, MELODY_LOW)
    local = {*chord_scale(key, chord), *chord.tones}
    top = min(MELODY_HIGH, floor + _MELODY_SPAN)
    pitches = [p for p in range(floor, top + 1) if p % 12 in local]
    tones = set(chord.tones)
    return pitches, [p for p in pitches if p % 12 in tones]


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
