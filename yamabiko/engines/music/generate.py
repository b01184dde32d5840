"""The built-in music engine: ``generate(kind, ...)`` (docs/agent.md, ``music/generate``).

Deterministic for a seed: the same arguments and seed give the same notes, and a new
seed gives new ones. Each part draws from its own random stream derived from the seed,
so parts generated with the same seed, key, style and bars fit together: the bassline,
the melody and the chords of seed 7 share one progression, and the ``harmony`` of seed 7
harmonizes the ``melody`` of seed 7.
"""

from __future__ import annotations

import math
import random
import re
import secrets
from collections.abc import Sequence
from typing import Final, get_args

from .base import (
    KINDS,
    SWUNG_STYLES,
    ChordEvent,
    Feel,
    Generated,
    Kind,
    Note,
    beats_per_bar,
    clip_note,
    feel_of,
)
from .drums import GROOVES, drum_pattern
from .lines import (
    Span,
    bass_pattern_for,
    bassline,
    chord_part,
    events,
    harmony,
    harmony_interval_for,
    spans_of,
    timeline,
)
from .lines import melody as melody_line
from .theory import (
    DOMINANT_MODES,
    Key,
    normalize_style,
    parse_key,
    parse_numeral,
    parse_progression,
    progression_chords,
    progressions_for,
    roman,
    style_in,
    tonic_chord,
)

DEFAULT_KEY: Final = "C major"
DEFAULT_TEMPO: Final = 120.0
DEFAULT_BARS: Final = 4
DEFAULT_STYLE: Final = "pop"
MAX_BARS: Final = 64
MIN_TEMPO: Final = 20.0
MAX_TEMPO: Final = 400.0
DENOMINATORS: Final = (1, 2, 4, 8, 16)

_NUMERALS_RE: Final = re.compile(
    r"(?<![A-Za-z])((?:[iIvV]{1,3}(?:maj7|7)?)(?:\s*[-\u2013]\s*[iIvV]{1,3}(?:maj7|7)?)+)(?![A-Za-z])"
)


_OPEN_ENDING: Final = re.compile(
    r"\b(open[ -]end(ed|ing)?|unresolved|half cadence|ends? open|"
    r"without resolving|no resolution)\b",
    re.IGNORECASE,
)
_UNSTABLE_ASKED: Final = re.compile(
    r"\b(diminished|augmented|dim|aug|dim7|half[ -]diminished)\b", re.IGNORECASE
)


def parse_time_signature(value: str | Sequence[int]) -> tuple[int, int]:
    """``"6/8"``, ``[6, 8]`` or ``(6, 8)`` → ``(6, 8)``; raises :class:`ValueError`
    unless the numerator is 1-16 and the denominator one of 1, 2, 4, 8, 16."""
    parts: list[object] = []
    parts += value.replace(" ", "").split("/") if isinstance(value, str) else value
    numbers = [
        int(p) if isinstance(p, str) and p.isdigit() else p
        for p in parts
        if not isinstance(p, bool)
    ]
    if len(parts) == 2 and len(numbers) == 2:
        numerator, denominator = numbers
        if (
            isinstance(numerator, int)
            and isinstance(denominator, int)
            and 1 <= numerator <= 16
            and denominator in DENOMINATORS
        ):
            return numerator, denominator
    raise ValueError(
        f"not a time signature: {value!r} (expected numerator/denominator such as "
        f"'4/4' or [6, 8], numerator 1-16, denominator 1, 2, 4, 8 or 16)"
    )


def generate(
    kind: Kind,
    *,
    key: str | Key,
    tempo: float,
    bars: int,
    time_signature: Sequence[int] | str = (4, 4),
    style: str | None = None,
    prompt: str | None = None,
    seed: int | None = None,
    melody: Sequence[Note] | None = None,
    chords: Sequence[ChordEvent] | None = None,
) -> Generated:
    """Generate one part.

    ``kind``: ``drum_pattern``, ``bassline``, ``chord_progression``, ``melody`` or
    ``harmony``. ``key``: a :class:`~.theory.Key` or a name (``"A minor"``, ``"Am"``).
    ``tempo`` in BPM (20-400, used in the description); ``bars`` 1-64;
    ``time_signature`` ``(4, 4)``, ``[6, 8]`` or ``"6/8"``. ``style``: one of
    :data:`~.theory.STYLES` or an alias; None reads it from the prompt, else pop.
    ``prompt`` words shape the part: ``busier``/``sparse``, ``syncopated``, bass
    patterns (``walking``, ``octave``...), ``third``/``sixth`` for harmony, and a
    progression in roman numerals (``"ii-V-I"``). ``seed``: None draws a fresh one
    (returned in :attr:`Generated.seed`). ``melody``: the tune a ``harmony`` part
    harmonizes (default: the ``melody`` of this seed). ``chords``: the harmony to
    follow (for example a previous result's ``chords``) instead of a generated one.

    Raises :class:`ValueError` with a message safe to show a client for any invalid
    argument."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(get_args(Kind))}")
    the_key = key if isinstance(key, Key) else parse_key(key)
    if isinstance(tempo, bool) or not isinstance(tempo, int | float) or not math.isfinite(tempo):
        raise ValueError(f"tempo must be a number of beats per minute, not {tempo!r}")
    if not MIN_TEMPO <= tempo <= MAX_TEMPO:
        raise ValueError(f"tempo must be {MIN_TEMPO:g}-{MAX_TEMPO:g} BPM, not {tempo:g}")
    if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
        raise ValueError(f"bars must be a whole number 1-{MAX_BARS}, not {bars!r}")
    signature = parse_time_signature(time_signature)
    the_style = normalize_style(style) if style else style_in(prompt or "") or DEFAULT_STYLE
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, not {seed!r}")
    feel = feel_of(prompt)
    bar_beats = beats_per_bar(signature)
    total = round(bars * bar_beats, 6)

    def rng(part: str) -> random.Random:
        return random.Random(f"{seed}:{part}")  # noqa: S311 - reproducible, not secret

    where = f"{bars}-bar"
    at = f"at {tempo:g} BPM in {signature[0]}/{signature[1]}"

    def result(
        notes: list[Note],
        chords: list[ChordEvent] | None,
        tune: list[Note] | None,
        description: str,
    ) -> Generated:
        return Generated(
            kind=kind,
            notes=sorted(notes, key=lambda n: (n.start, n.pitch)),
            chords=chords,
            melody=tune,
            description=description,
            suggestions=_suggestions(kind, the_style, feel),
            seed=seed,
            key=the_key.name,
            style=the_style,
            tempo=float(tempo),
            bars=bars,
            time_signature=signature,
        )

    if kind == "drum_pattern":
        notes = drum_pattern(the_style, bars, bar_beats, feel, rng("drums"))
        groove = GROOVES[the_style].feel
        return result(notes, None, None, f"A {where} {the_style} drum groove {at}: {groove}.")

    closed = not _OPEN_ENDING.search(prompt or "")
    if chords:
        spans = _given_spans(chords, total)
        progression = None
    else:
        progression, asked = _progression(the_key, the_style, prompt, bars, rng("progression"))
        keep = asked or bool(_UNSTABLE_ASKED.search(prompt or ""))
        spans = timeline(the_key, progression, bars, bar_beats, style=None if keep else the_style)
        if closed and not asked:
            spans = _cadence(spans, the_key, None if keep else the_style)
    symbols = _symbols(spans)
    context = events(spans)
    tune: list[Note] | None = None

    if kind == "chord_progression":
        notes, context = chord_part(spans, the_style, feel, rng("chords"), total)
        numerals = f" ({_numerals(the_key, spans)})" if progression else ""
        text = f"A {where} {the_style} progression in {the_key.name} {at}: {symbols}{numerals}."
    elif kind == "bassline":
        pattern = bass_pattern_for(the_style, feel, prompt)
        swing = the_style in SWUNG_STYLES
        notes = bassline(spans, the_key, pattern, rng("bass"), total, swing=swing)
        text = f"A {where} {pattern} bassline in {the_key.name} {at}, on the roots of {symbols}."
    elif kind == "melody":
        notes = melody_line(
            spans, context, the_key, bars, bar_beats, feel, the_style, rng("melody"), closed=closed
        )
        text = (
            f"A {where} melody in {the_key.name} {at} over {symbols}, "
            f"landing on chord tones on the strong beats."
        )
    else:
        if melody is not None:
            tune = [_checked(n, total) for n in melody]
        else:
            tune = melody_line(
                spans,
                context,
                the_key,
                bars,
                bar_beats,
                feel,
                the_style,
                rng("melody"),
                closed=closed,
            )
        interval = harmony_interval_for(prompt)
        notes = harmony(tune, spans, the_key, bar_beats, interval, total)
        what = (
            f"a diatonic {interval}"
            if interval
            else "diatonic thirds (sixths where they fit the chord)"
        )
        text = f"A {where} harmony in {the_key.name} {at}: {what} above the melody, over {symbols}."
    return result(notes, context, tune, text)


def _progression(
    key: Key, style: str, prompt: str | None, bars: int, rng: random.Random
) -> tuple[str, bool]:
    """A progression named in the prompt (``"ii-V-I"``: a chord a bar; True: asked
    for), else one of the style's for the key, preferring those that fit in ``bars``."""
    match = _NUMERALS_RE.search(prompt or "")
    if match:
        numerals = re.split(r"\s*[-\u2013]\s*", match.group(1))
        try:
            for numeral in numerals:
                parse_numeral(numeral)
        except ValueError:
            pass
        else:
            return " | ".join(numerals), True
    options = progressions_for(style, key)
    fitting = [p for p in options if len(parse_progression(key, p)) <= bars]
    return rng.choice(fitting or list(options)), False


def _cadence(spans: list[Span], key: Key, style: str | None) -> list[Span]:
    """The spans ending on the tonic chord, so that the phrase closes. A last chord of
    four beats or more on another root gives the second half of its time to I, or i (a
    seventh chord after one), and in a minor key the first half to the dominant V
    (V7), whose leading tone pulls home; a shorter last chord gives all its time to
    the tonic."""
    last = spans[-1]
    if last.chord.root == key.tonic:
        return spans
    seventh = len(last.chord.tones) == 4
    home = tonic_chord(key, seventh=seventh, style=style)
    if last.duration < 4 - 1e-9:
        return [*spans[:-1], Span(home, last.start, last.duration)]
    before = last.chord
    if key.mode in DOMINANT_MODES:
        before = progression_chords(key, ["V7" if seventh else "V"], style=style)[0]
    half = round(last.duration / 2, 6)
    return [
        *spans[:-1],
        Span(before, last.start, half),
        Span(home, round(last.start + half, 6), round(last.duration - half, 6)),
    ]


def _given_spans(chords: Sequence[ChordEvent], total: float) -> list[Span]:
    spans = sorted(spans_of(chords), key=lambda s: s.start)
    kept = [s for s in spans if 0 <= s.start < total and s.duration > 0]
    if not kept:
        raise ValueError("chords: none starts inside the bars with a positive duration")
    return kept


def _checked(note: Note, total: float) -> Note:
    if not 0 <= note.pitch <= 127 or not 1 <= note.velocity <= 127:
        raise ValueError(f"melody note out of range: {note!r} (pitch 0-127, velocity 1-127)")
    made = clip_note(note.pitch, note.start, note.duration, note.velocity, total)
    if made is None or note.start < 0:
        raise ValueError(f"melody note outside the bars: {note!r}")
    return Note(made.pitch, made.start, made.duration, made.velocity, note.chromatic)


def _symbols(spans: Sequence[Span]) -> str:
    """The chord symbols of the first pass of the progression, ``"C - G - Am - F"``."""
    return _first_pass([span.chord.symbol for span in spans], " - ")


def _first_pass(names: list[str], sep: str) -> str:
    """The names up to where they start repeating (at most 12)."""
    names = names[:12]
    for size in range(1, len(names)):
        if all(names[i] == names[i % size] for i in range(len(names))):
            names = names[:size]
            break
    return sep.join(names)


def _numerals(key: Key, spans: Sequence[Span]) -> str:
    """The roman numerals of the first pass of the progression, ``"i-iv-iiø7-v7"``."""
    return _first_pass([roman(key, span.chord) for span in spans], "-")


def _suggestions(kind: Kind, style: str, feel: Feel) -> list[str]:
    denser = "Make it sparser" if feel.density > 0 else "Make it busier"
    by_kind: dict[str, list[str]] = {
        "drum_pattern": [
            f"Add a {style} bassline locked to this kick",
            "Add a fill at the end of every fourth bar",
            f"{denser}",
            "Try a half-time feel",
        ],
        "bassline": [
            "Add drums that lock with this bassline",
            "Make it a walking bass" if style not in ("jazz", "blues") else "Try a two-feel",
            f"{denser}",
            "Write chords over these roots",
        ],
        "chord_progression": [
            "Add a bassline that follows these chords",
            "Write a melody over this progression",
            "Try it with seventh chords",
            f"{denser}",
        ],
        "melody": [
            "Harmonize this melody a third above",
            "Add chords under this melody",
            f"{denser}",
            "Make it more syncopated",
        ],
        "harmony": [
            "Try the harmony a sixth above instead",
            "Add a counter-melody",
            "Double the melody an octave below",
            "Add a bassline under it",
        ],
    }
    return by_kind[kind]
