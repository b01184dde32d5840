"""Judging a sung voice from outside: Praat (parselmouth) for formants and pitch, an
A-weighted level, clicks and clipping. Used by the singer's tests and ``make eval``.

Nothing here imports the engine's DSP: the A-weighting is applied to the rendered
samples in the frequency domain, formants are Praat's Burg LPC, pitch is Praat's
autocorrelation tracker.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import parselmouth

from yamabiko.engines.audio.base import AudioRequest, Note
from yamabiko.engines.audio.singer import SingerEngine

Floats = npt.NDArray[np.float64]
RATE = 24_000

JAPANESE_MALE: dict[str, tuple[float, float]] = {
    # F1, F2 (Hz): Japanese male averages from word utterances (LPC peak picking;
    # the table docs/decisions/0021-singer-voice-model.md names).
    "a": (753.0, 1385.0),
    "i": (315.0, 2172.0),
    "u": (367.0, 1332.0),
    "e": (500.0, 1947.0),
    "o": (520.0, 997.0),
}


def render(request: AudioRequest, block_samples: int = 4096) -> Floats:
    async def go() -> Floats:
        blocks = [b async for b in SingerEngine().blocks(request, block_samples)]
        return np.concatenate(blocks).astype(np.float64)

    return asyncio.run(go())


async def render_async(request: AudioRequest, block_samples: int = 4096) -> Floats:
    blocks = [b async for b in SingerEngine().blocks(request, block_samples)]
    return np.concatenate(blocks).astype(np.float64)


def held_notes(pitch_vowels: list[tuple[int, str]], seconds: float = 1.5) -> AudioRequest:
    """One note a (pitch, vowel), ``seconds`` long (tempo 60), half a second of rest
    after each."""
    step = seconds + 0.5
    notes = tuple(
        Note(pitch=p, start=step * i, duration=seconds, lyric=v, velocity=100)
        for i, (p, v) in enumerate(pitch_vowels)
    )
    return AudioRequest(notes=notes, tempo=60, sample_rate=RATE)


def a_weighted_db(samples: Floats, rate: int = RATE) -> float:
    """The A-weighted RMS level (dBFS) of ``samples``: the spectrum weighted by the
    IEC 61672 A curve, then Parseval."""
    spectrum = np.fft.rfft(samples)
    hz = np.fft.rfftfreq(samples.size, 1.0 / rate)
    f2 = hz * hz
    ra = (
        12194.0**2
        * f2**2
        / ((f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2))
    )
    weighted = np.fft.irfft(spectrum * ra * 10 ** (2.0 / 20), samples.size)  # +2 dB: 0 at 1 kHz
    return 20 * math.log10(math.sqrt(float(np.mean(weighted**2))) + 1e-12)


def formants(samples: Floats, rate: int = RATE, ceiling_hz: float = 5000.0) -> tuple[float, float]:
    """F1, F2 (Hz): Praat's Burg formants (a male ceiling of 5 kHz), the median over
    the sound."""
    sound = parselmouth.Sound(samples, sampling_frequency=rate)
    track = sound.to_formant_burg(max_number_of_formants=5, maximum_formant=ceiling_hz)
    times = np.arange(0.05, sound.duration - 0.05, 0.01)
    f1 = [track.get_value_at_time(1, t) for t in times]
    f2 = [track.get_value_at_time(2, t) for t in times]
    return float(np.nanmedian(f1)), float(np.nanmedian(f2))


@dataclass(frozen=True)
class PitchTrack:
    times: Floats
    hz: Floats


def pitch_track(samples: Floats, rate: int = RATE, floor: float = 60.0) -> PitchTrack:
    """Praat's autocorrelation pitch every 5 ms (unvoiced frames dropped)."""
    sound = parselmouth.Sound(samples, sampling_frequency=rate)
    pitch = sound.to_pitch_ac(time_step=0.005, pitch_floor=floor, pitch_ceiling=1200.0)
    hz = pitch.selected_array["frequency"]
    times = pitch.xs()
    voiced = hz > 0
    return PitchTrack(np.asarray(times[voiced]), np.asarray(hz[voiced]))


@dataclass(frozen=True)
class Vibrato:
    onset_s: float
    """When the pitch first strays more than 15 cents from the note."""
    rate_hz: float
    depth_cents: float
    """Half the mean peak-to-peak extent of a cycle."""
    centre_cents: float
    """The mean pitch over whole cycles against the note."""


def vibrato(track: PitchTrack, note_hz: float, note_start_s: float) -> Vibrato:
    """Vibrato of one held note from its pitch track (times from the track's start)."""
    cents = 1200 * np.log2(track.hz / note_hz)
    t = track.times - note_start_s
    away = np.nonzero((t > 0.06) & (np.abs(cents) > 15))[0]
    onset = float(t[away[0]]) if away.size else math.inf
    steady = (t > 0.6) & (t < t.max() - 0.1)
    c, ts = cents[steady], t[steady]
    centred = c - np.mean(c)
    ups = np.nonzero((centred[:-1] < 0) & (centred[1:] >= 0))[0]
    if ups.size < 3:
        return Vibrato(onset, 0.0, 0.0, float(np.mean(c)))
    first, last = int(ups[0]), int(ups[-1])
    cycles = ups.size - 1
    rate = cycles / float(ts[last] - ts[first])
    whole = c[first : last + 1]
    extents = [
        float(np.max(c[a : b + 1]) - np.min(c[a : b + 1])) for a, b in itertools.pairwise(ups)
    ]
    return Vibrato(onset, rate, 0.5 * float(np.mean(extents)), float(np.mean(whole)))


def largest_join_step(samples: Floats, joins: list[int], span: int = 240) -> tuple[float, float]:
    """The largest sample-to-sample step near ``joins``, and the largest anywhere
    else in voiced parts (a click is a step far beyond what the waveform does)."""
    steps = np.abs(np.diff(samples))
    near = max(float(steps[max(0, j - span) : j + span].max()) for j in joins)
    return near, float(np.percentile(steps, 99.9))
