"""Drum grooves by style on General MIDI drum pitches, with seeded variation.

A groove is a one-bar pattern per instrument on a step grid (sixteenths, or eighth-note
triplets for the swung styles); each step is ``X`` (accent), ``x`` (hit), ``o`` (ghost)
or ``.`` (rest). A bar of another length reads the pattern cyclically. The seed picks
among kick variants and adds ghost notes, extra kicks, open hats, fills before each
four-bar phrase and crashes after them.
"""

from __future__ import annotations

import random
from typing import Final

import msgspec

from .base import Feel, Note, clip_note, humanize

#: General MIDI percussion (channel 10) pitches used by the grooves.
GM_DRUMS: Final = {
    "kick": 36,
    "side_stick": 37,
    "snare": 38,
    "clap": 39,
    "low_floor_tom": 41,
    "closed_hat": 42,
    "high_floor_tom": 43,
    "pedal_hat": 44,
    "low_tom": 45,
    "open_hat": 46,
    "low_mid_tom": 47,
    "high_mid_tom": 48,
    "crash": 49,
    "high_tom": 50,
    "ride": 51,
    "ride_bell": 53,
    "tambourine": 54,
    "cowbell": 56,
    "shaker": 70,
}
DRUM_PITCHES: Final = frozenset(GM_DRUMS.values())

_VELOCITY: Final = {"X": 112, "x": 92, "o": 42}


class Groove(msgspec.Struct, frozen=True):
    """One style's bar: ``steps_per_beat`` (4 straight, 3 swung), kick variants, and
    the other instruments' patterns keyed by GM pitch name."""

    steps_per_beat: int
    kicks: tuple[str, ...]
    parts: dict[str, str]
    feel: str
    backbeat: str = "snare"


GROOVES: Final[dict[str, Groove]] = {
    "rock": Groove(
        4,
        ("X.......X.x.....", "X.....x.X.......", "X.......X...x..."),
        {"snare": "....X.......X...", "closed_hat": "x.x.x.x.x.x.x.x."},
        "kick on 1 and 3, snare on 2 and 4 and eighth-note hats",
    ),
    "pop": Groove(
        4,
        ("X.....x...X.....", "X..x..x.X.......", "X.......X.....x."),
        {"snare": "....X.......X...", "closed_hat": "x.x.x.x.x.x.x.x."},
        "a syncopated kick under a 2-and-4 snare and steady eighth hats",
    ),
    "hip-hop": Groove(
        4,
        ("X......x.xX.....", "X.x......X......", "X......x..x....."),
        {"snare": "....X.......X...", "closed_hat": "x.x.x.x.x.x.x.x."},
        "a boom-bap kick, a heavy backbeat and eighth hats",
    ),
    "house": Groove(
        4,
        ("X...X...X...X...",),
        {
            "clap": "....X.......X...",
            "open_hat": "..x...x...x...x.",
            "closed_hat": "xo.oxo.oxo.oxo.o",
        },
        "four on the floor, claps on 2 and 4 and off-beat open hats",
        backbeat="clap",
    ),
    "jazz": Groove(
        3,
        ("o.....o.....", "o..........."),
        {"ride": "X..x.xX..x.x", "pedal_hat": "...x.....x.."},
        "a swung ride, hi-hat foot on 2 and 4 and a feathered kick",
        backbeat="pedal_hat",
    ),
    "blues": Groove(
        3,
        ("X.....X.....", "X.....X..x.."),
        {"snare": "...X.....X..", "closed_hat": "x.xx.xx.xx.x"},
        "a shuffle: swung hats, kick on 1 and 3 and snare on 2 and 4",
    ),
    "bossa": Groove(
        4,
        ("X..xX..xX..xX..x",),
        {"side_stick": "x..x..x...x..x..", "closed_hat": "x.x.x.x.x.x.x.x."},
        "a bossa nova kick, clave on the side stick and soft eighth hats",
        backbeat="side_stick",
    ),
}

_FILL_TOMS: Final = ("snare", "high_tom", "high_mid_tom", "low_mid_tom", "low_tom")


def drum_pattern(
    style: str, bars: int, bar_beats: float, feel: Feel, rng: random.Random
) -> list[Note]:
    """``bars`` bars of the style's groove, varied by ``rng`` and shaped by ``feel``."""
    groove = GROOVES[style]
    spb = groove.steps_per_beat
    steps = max(1, round(bar_beats * spb))
    step_len = 1 / spb
    total = bars * bar_beats
    kick = rng.choice(groove.kicks)
    hits: dict[tuple[int, int], tuple[str, int]] = {}  # (step from the start, pitch)

    def put(bar: int, step: int, name: str, velocity: int) -> None:
        hits[(bar * steps + step, GM_DRUMS[name])] = (name, velocity)

    for bar in range(bars):
        phrase_end = bars > 1 and bar % 4 == 3
        fill_from = steps
        if phrase_end and rng.random() < (0.3, 0.6, 0.9)[feel.density + 1]:
            fill_from = steps - max(1, round(spb * (2 if feel.density > 0 else 1)))
        for step in range(steps):
            if step >= fill_from:
                continue
            mark = kick[step % len(kick)]
            if mark != ".":
                put(bar, step, "kick", _VELOCITY[mark])
            for name, pattern in groove.parts.items():
                mark = pattern[step % len(pattern)]
                if name in ("closed_hat", "ride"):
                    mark = _hat_mark(mark, step, spb, feel, fill="open_hat" not in groove.parts)
                if mark != ".":
                    put(bar, step, name, _VELOCITY[mark])
            on_beat = step % spb == 0
            free = kick[step % len(kick)] == "."
            backbeat = groove.parts.get(groove.backbeat, "")
            if free and backbeat and backbeat[step % len(backbeat)] == ".":
                if not on_beat and rng.random() < (0.0, 0.05, 0.14)[feel.density + 1]:
                    put(bar, step, "snare", _VELOCITY["o"])
                extra = 0.12 if feel.syncopated else 0.04
                if not on_beat and style not in ("house", "jazz") and rng.random() < extra:
                    put(bar, step, "kick", _VELOCITY["x"])
        if style not in ("house", "jazz", "bossa") and rng.random() < 0.3:
            last_off = steps - spb // 2 if spb == 4 else steps - 1
            if 0 <= last_off < fill_from:
                hits.pop((bar * steps + last_off, GM_DRUMS["closed_hat"]), None)
                put(bar, last_off, "open_hat", _VELOCITY["x"])
        if fill_from < steps:
            toms = _FILL_TOMS if style != "jazz" else ("snare",)
            for n, step in enumerate(range(fill_from, steps)):
                name = toms[min(len(toms) - 1, n * len(toms) // (steps - fill_from))]
                put(bar, step, name, 96 + 3 * n if style != "jazz" else 70)
            if fill_from % spb == 0:
                put(bar, fill_from, "kick", _VELOCITY["x"])
        after_fill = bar > 0 and bar % 4 == 0
        if (bar == 0 and rng.random() < 0.5) or after_fill:
            put(bar, 0, "crash" if style != "jazz" else "ride_bell", _VELOCITY["X"])

    notes = []
    for (index, pitch), (name, velocity) in hits.items():
        start = index * step_len
        duration = min(1.0, total - start) if name == "crash" else step_len
        note = clip_note(pitch, start, duration, humanize(rng, velocity), total)
        if note is not None:
            notes.append(note)
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def _hat_mark(mark: str, step: int, spb: int, feel: Feel, *, fill: bool) -> str:
    """Sparse keeps the hats on the beats; busier fills straight hats to sixteenths
    (``fill``: unless open hats take the gaps)."""
    if feel.density < 0 and step % spb != 0:
        return "."
    if fill and feel.density > 0 and spb == 4 and mark == ".":
        return "o"
    return mark
