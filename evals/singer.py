"""The singer's voice, judged from outside (Praat via parselmouth, an A-weighted level):
does one velocity give one loudness, are the vowels the vowels, is the pitch the note,
does the vibrato behave like a singer's, are kanji and English lyrics read as a singer
reads them, and is it still far faster than real time.

- **Level spread**: one velocity (100), 7 pitches (G2-A3) x 5 vowels, 1.5 s notes; the
  A-weighted RMS of each note's middle second; max - min.
- **Formants**: F1 and F2 by Praat (Burg, 5 formants under 5 kHz) of each vowel held at
  A2 and C3, against Japanese male averages (docs/decisions/0021-singer-voice-model.md);
  the worse of F1 and F2, the worse of the two pitches, per vowel.
- **Centre pitch**: Praat's pitch track of 2.5 s notes (A2-G3 and A4), the mean over
  whole vibrato cycles against the note; the worst note.
- **Vibrato**: on the same notes, the first time the pitch strays 15 cents (onset), the
  cycles a second (rate), half the mean peak-to-peak extent (depth); the extremes.
- **Kanji** and **English**: the plan of "今日は良い天気ですね" is ``kyo o wa yo i te n
  ki de su ne`` (1/0); "shot", "love", "night" are read from the CMU dictionary (1/0).
- **Real-time factor**: a 64 s melody with lyrics, rendered in 20 ms blocks; audio
  seconds per CPU second of this process (``--quick``: 16 s).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bench.figures import NO_BASELINE, Figure
from tests.engines.audio.voice import (
    JAPANESE_MALE,
    RATE,
    a_weighted_db,
    formants,
    held_notes,
    pitch_track,
    render,
    vibrato,
)
from yamabiko.engines.audio.base import AudioRequest, Note, frequency
from yamabiko.engines.audio.lyrics import syllables
from yamabiko.engines.audio.singer import SingerEngine, plan

VOWELS = "aiueo"
LEVEL_PITCHES = (43, 45, 48, 50, 52, 55, 57)
FORMANT_PITCHES = (45, 48)
VIBRATO_PITCHES = (45, 48, 52, 55, 69)
KANJI_LINE = "今日は良い天気ですね"
KANJI_READING = ["kyo", "o", "wa", "yo", "i", "te", "n", "ki", "de", "su", "ne"]
ENGLISH = {"shot": ["shat"], "love": ["lav"], "night": ["nayt"]}
MELODY_LYRICS = "ka ze no u ta wo ki ki na ga ra sing the night a way to the morn ing light"


def _value(name: str, unit: str, value: float, goal: float, higher: bool, decimals: int) -> Figure:
    return Figure(name, unit, value, NO_BASELINE, higher, goal, decimals, "-", "value")


def _part(samples: np.ndarray, index: int, step_s: float, lo_s: float, hi_s: float) -> np.ndarray:
    return samples[int((step_s * index + lo_s) * RATE) : int((step_s * index + hi_s) * RATE)]


def _level_spread() -> float:
    grid = [(p, v) for p in LEVEL_PITCHES for v in VOWELS]
    samples = render(held_notes(grid))
    levels = [a_weighted_db(_part(samples, i, 2.0, 0.3, 1.3)) for i in range(len(grid))]
    return max(levels) - min(levels)


def _formant_errors() -> dict[str, float]:
    worst = dict.fromkeys(VOWELS, 0.0)
    for pitch in FORMANT_PITCHES:
        samples = render(held_notes([(pitch, v) for v in VOWELS]))
        for i, vowel in enumerate(VOWELS):
            f1, f2 = formants(_part(samples, i, 2.0, 0.3, 1.3))
            want1, want2 = JAPANESE_MALE[vowel]
            error = max(abs(f1 / want1 - 1), abs(f2 / want2 - 1)) * 100
            worst[vowel] = max(worst[vowel], error)
    return worst


def _vibratos() -> list[tuple[float, float, float, float]]:
    """(onset s, rate Hz, depth cents, centre cents) a note."""
    samples = render(held_notes([(p, "a") for p in VIBRATO_PITCHES], seconds=2.5))
    found = []
    for i, pitch in enumerate(VIBRATO_PITCHES):
        v = vibrato(pitch_track(_part(samples, i, 3.0, 0.0, 2.5)), frequency(pitch), 0.0)
        found.append((v.onset_s, v.rate_hz, v.depth_cents, v.centre_cents))
    return found


def _real_time_factor(quick: bool) -> float:
    seconds = 16 if quick else 64
    words = MELODY_LYRICS.split()
    scale = (60, 62, 64, 65, 67, 69, 71, 72)
    notes = tuple(
        Note(pitch=scale[(3 * i) % len(scale)], start=0.5 * i, duration=0.5, lyric=None)
        for i in range(seconds * 4)
    )
    request = AudioRequest(notes=notes, tempo=120, lyrics=" ".join(words * 20))
    engine = SingerEngine()

    async def go() -> int:
        count = 0
        async for block in engine.blocks(request, RATE // 50):
            count += block.size
        return count

    asyncio.run(go())  # warm: the dictionaries, numpy's FFT plans
    started = time.process_time()
    count = asyncio.run(go())
    return count / RATE / (time.process_time() - started)


def run(quick: bool) -> list[Figure]:
    spread = _level_spread()
    errors = _formant_errors()
    vib = _vibratos()
    notes = tuple(Note(pitch=60, start=i, duration=1) for i in range(len(KANJI_READING)))
    sung = [s.spelled() for s in plan(AudioRequest(notes=notes, lyrics=KANJI_LINE)).sung]
    english = all([s.spelled() for s in syllables(w)] == want for w, want in ENGLISH.items())
    rtf = _real_time_factor(quick)
    figures = [
        _value("singer level spread, 7 pitches x 5 vowels", "dB", spread, 3.0, False, 2),
    ]
    figures += [
        _value(f"  singer formant error F1/F2, vowel {v}", "%", errors[v], 15.0, False, 1)
        for v in VOWELS
    ]
    figures += [
        _value(
            "singer centre pitch error (worst note)",
            "cents",
            max(abs(c) for *_, c in vib),
            10.0,
            False,
            1,
        ),
        _value("  vibrato onset (latest note)", "s", max(v[0] for v in vib), 0.5, False, 2),
        _value("  vibrato rate (slowest note)", "Hz", min(v[1] for v in vib), 5.0, True, 2),
        _value("  vibrato rate (fastest note)", "Hz", max(v[1] for v in vib), 6.5, False, 2),
        _value("  vibrato depth (shallowest note)", "cents", min(v[2] for v in vib), 20, True, 1),
        _value("  vibrato depth (deepest note)", "cents", max(v[2] for v in vib), 60, False, 1),
        _value(
            "kanji lyrics sung as their reading", "1/0", float(sung == KANJI_READING), 1, True, 0
        ),
        _value("English lyrics read from the CMU dictionary", "1/0", float(english), 1, True, 0),
        _value("singer real-time factor, CPU time", "x", rtf, 50.0, True, 0),
    ]
    return figures
