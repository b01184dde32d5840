"""The singer judged from outside (Praat, an A-weighted level): vowels, level, vibrato,
glides, the voice's noise, clicks and clipping; lyrics read as a singer reads them."""

from __future__ import annotations

import itertools

import numpy as np
import parselmouth
import pytest
from parselmouth.praat import call

from tests.engines.audio.voice import (
    JAPANESE_MALE,
    RATE,
    a_weighted_db,
    formants,
    held_notes,
    largest_join_step,
    pitch_track,
    render,
    vibrato,
)
from yamabiko.engines.audio import kana
from yamabiko.engines.audio.base import AudioRequest, Note, frequency
from yamabiko.engines.audio.lyrics import syllables
from yamabiko.engines.audio.onnx import romanize
from yamabiko.engines.audio.singer import plan

VOWELS = "aiueo"
LEVEL_PITCHES = [43, 45, 48, 50, 52, 55, 57]
"""G2 to A3: seven pitches of the default (male) voice's range."""


def note_part(
    samples: np.ndarray, index: int, step_s: float, lo_s: float, hi_s: float
) -> np.ndarray:
    return samples[int((step_s * index + lo_s) * RATE) : int((step_s * index + hi_s) * RATE)]


@pytest.mark.parametrize("pitch", [45, 48])
def test_vowel_formants_are_within_15_percent_of_japanese_male_averages(pitch: int) -> None:
    samples = render(held_notes([(pitch, v) for v in VOWELS]))
    for i, vowel in enumerate(VOWELS):
        f1, f2 = formants(note_part(samples, i, 2.0, 0.3, 1.3))
        want1, want2 = JAPANESE_MALE[vowel]
        assert f1 == pytest.approx(want1, rel=0.15), (vowel, f1, f2)
        assert f2 == pytest.approx(want2, rel=0.15), (vowel, f1, f2)


def test_one_velocity_gives_one_level_across_vowels_and_pitches() -> None:
    grid = [(p, v) for p in LEVEL_PITCHES for v in VOWELS]
    samples = render(held_notes(grid))
    levels = [a_weighted_db(note_part(samples, i, 2.0, 0.3, 1.3)) for i in range(len(grid))]
    assert max(levels) - min(levels) <= 3.0, dict(zip(grid, levels, strict=True))


def test_level_rises_with_velocity() -> None:
    velocities = [1, 20, 40, 64, 80, 100, 127]
    notes = tuple(
        Note(pitch=50, start=1.5 * i, duration=1.0, lyric="a", velocity=v)
        for i, v in enumerate(velocities)
    )
    samples = render(AudioRequest(notes=notes, tempo=60))
    levels = [a_weighted_db(note_part(samples, i, 1.5, 0.3, 0.8)) for i in range(len(notes))]
    assert all(b > a + 0.5 for a, b in itertools.pairwise(levels)), levels
    assert levels[-1] - levels[0] > 20.0  # pianissimo to fortissimo is heard


def test_the_loudest_notes_do_not_clip() -> None:
    notes = tuple(
        Note(pitch=p, start=1.2 * i, duration=1.0, lyric=v, velocity=127)
        for i, (p, v) in enumerate((p, v) for p in (36, 43, 50, 57, 64, 71, 76) for v in VOWELS)
    )
    samples = render(AudioRequest(notes=notes, tempo=60))
    assert np.abs(samples).max() < 0.95


def test_joins_between_vowels_notes_and_consonants_do_not_click() -> None:
    lyrics = ["a", "i", "ka", "u", "sa", "e", "n", "o", "ta", "ra"]
    notes = tuple(
        Note(pitch=48 + (5 * i) % 12, start=0.5 * i, duration=0.5, lyric=x, velocity=110)
        for i, x in enumerate(lyrics)
    )
    samples = render(AudioRequest(notes=notes, tempo=60))
    joins = [round(0.5 * i * RATE) for i in range(1, len(lyrics))]
    near, typical = largest_join_step(samples, joins)
    # A click is a step far beyond what the voice does anyway (its sharpest 0.1%).
    assert near <= 1.5 * typical, (near, typical)
    # The phrase starts and ends without a jump out of (or into) silence.
    start, stop = np.flatnonzero(samples)[[0, -1]]
    assert abs(samples[start]) < 0.01
    assert abs(samples[stop]) < 0.01


def test_vibrato_sets_in_late_in_range_and_keeps_the_centre() -> None:
    pitches = [45, 48, 52, 55]
    samples = render(held_notes([(p, "a") for p in pitches], seconds=2.5))
    rates = []
    for i, pitch in enumerate(pitches):
        note = note_part(samples, i, 3.0, 0.0, 2.5)
        found = vibrato(pitch_track(note), frequency(pitch), 0.0)
        assert 0.15 <= found.onset_s <= 0.5, found
        assert 5.0 <= found.rate_hz <= 6.5, found
        assert 20.0 <= found.depth_cents <= 60.0, found
        assert abs(found.centre_cents) <= 10.0, found
        rates.append(found.rate_hz)
    # Each note's vibrato is its own (a singer is not a metronome).
    assert max(rates) - min(rates) > 0.05, rates


def test_the_voice_has_human_jitter_shimmer_and_breath() -> None:
    samples = render(held_notes([(48, "a"), (53, "o")], seconds=2.0))
    for i in range(2):
        sound = parselmouth.Sound(note_part(samples, i, 2.5, 0.1, 1.9), sampling_frequency=RATE)
        points = call(sound, "To PointProcess (periodic, cc)", 75, 600)
        jitter = call(points, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)
        shimmer = call([sound, points], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6)
        hnr = call(sound.to_harmonicity_cc(), "Get mean", 0, 0)
        # Not a machine (perfectly periodic: jitter, shimmer 0, HNR over 40 dB), not a
        # pathology (Praat's thresholds: jitter 1.04%, shimmer 3.81%; HNR under 20 dB).
        assert 0.001 <= jitter <= 0.0104, jitter
        assert 0.005 <= shimmer <= 0.0381, shimmer
        assert 20.0 <= hnr <= 38.0, hnr


def test_formants_glide_from_one_vowel_into_the_next() -> None:
    notes = (
        Note(pitch=48, start=0, duration=1, lyric="a"),
        Note(pitch=48, start=1, duration=1, lyric="i"),
    )
    samples = render(AudioRequest(notes=notes, tempo=60))
    sound = parselmouth.Sound(samples, sampling_frequency=RATE)
    track = sound.to_formant_burg(time_step=0.002, max_number_of_formants=5, maximum_formant=5000)
    times = np.arange(0.9, 1.15, 0.002)
    f2 = np.array([track.get_value_at_time(2, t) for t in times])
    before, after = np.median(f2[times < 0.98]), np.median(f2[times > 1.1])
    progress = (f2 - before) / (after - before)
    t10 = times[np.argmax(progress > 0.1)]
    t90 = times[np.argmax(progress > 0.9)]
    # A glide through the F2s between (a cross-fade jumps from one to the other).
    assert 0.02 <= t90 - t10 <= 0.09, (t10, t90)
    assert np.any((progress > 0.3) & (progress < 0.7))


def test_kanji_lyrics_are_sung_as_their_reading() -> None:
    line = "今日は良い天気ですね"
    notes = tuple(Note(pitch=60, start=i, duration=1) for i in range(11))
    laid_out = plan(AudioRequest(notes=notes, lyrics=line))
    # きょう-は: the particle は is sung "wa"; the long vowel of きょう holds its o.
    assert [s.spelled() for s in laid_out.sung] == [
        "kyo", "o", "wa", "yo", "i", "te", "n", "ki", "de", "su", "ne",
    ]  # fmt: skip
    assert [s.spelled() for s in syllables("東京へ行こう")] == [
        "to", "-", "kyo", "-", "e", "i", "ko", "-",
    ]  # fmt: skip
    # Kana are sung as written: the writer chose them.
    assert [s.spelled() for s in syllables("はな")] == ["ha", "na"]


def test_english_lyrics_are_read_through_the_pronouncing_dictionary() -> None:
    def spelled(text: str) -> list[str]:
        return [s.spelled() for s in syllables(text)]

    assert spelled("shot") == ["shat"]  # not "sho-t": the CMU dictionary's SH AA1 T
    assert spelled("love") == ["lav"]
    assert spelled("night") == ["nayt"]  # a diphthong sings its vowel and glides out
    assert spelled("singing") == ["sing", "ing"]
    assert spelled("tonight we sing") == ["ta", "nayt", "wi", "sing"]
    # A word the dictionary lacks is still sung, by its spelling.
    assert spelled("zorbleflux") != []
    laid_out = plan(
        AudioRequest(
            notes=tuple(Note(pitch=60, start=i, duration=1) for i in range(2)), lyrics="hello"
        )
    )
    assert [s.spelled() for s in laid_out.sung] == ["ha", "low"]


def test_the_singer_and_the_onnx_front_end_read_kana_alike() -> None:
    for char in kana.ROMAJI:
        if char in kana.SMALL or char in "っッ":
            continue
        read = syllables(char)
        assert len(read) == 1, char
        assert read[0].spelled() == romanize(char), char


@pytest.mark.parametrize(
    ("lyric", "band_hz", "length_s"),
    [("sa", (5000, 8500), (0.07, 0.14)), ("sha", (2500, 4500), (0.07, 0.14)),
     ("ha", (1000, 2500), (0.04, 0.11)), ("ta", None, (0.04, 0.09))],
)  # fmt: skip
def test_consonants_have_their_own_spectra_and_durations(
    lyric: str, band_hz: tuple[float, float] | None, length_s: tuple[float, float]
) -> None:
    notes = (Note(pitch=48, start=0, duration=1, lyric=lyric),)
    samples = render(AudioRequest(notes=notes, tempo=60))
    voiced = pitch_track(samples).times
    onset = float(voiced[0])  # where Praat first hears the vowel's pitch
    assert length_s[0] <= onset <= length_s[1], onset
    if band_hz is not None:
        noise = samples[: int(0.05 * RATE)]
        power = np.abs(np.fft.rfft(noise * np.hanning(noise.size))) ** 2
        hz = np.fft.rfftfreq(noise.size, 1 / RATE)
        centroid = float((power * hz).sum() / power.sum())
        assert band_hz[0] <= centroid <= band_hz[1], centroid
