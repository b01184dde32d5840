"""What a musician hears, measured from outside the engine: the counters of
``evals.music`` (which read only the generated notes and voiced chords) and music21's
key finder as an independent judge, over styles, modes, keys and seeds.

docs/agent.md states the guarantees; ``make eval`` reports the same figures on a larger
sample."""

from __future__ import annotations

import itertools
import statistics

import pytest

from evals.music import (
    MODES,
    STYLES,
    Tally,
    bar_rhythm,
    bass_moves,
    judge_piece,
    music21_keys,
    onsets,
    quality,
    tonic_of,
)
from yamabiko.engines.music import generate

TONICS = ("C", "Eb", "F#", "A")


@pytest.fixture(scope="module")
def tally() -> Tally:
    counted = Tally()
    for style, mode, tonic in itertools.product(STYLES, MODES, TONICS):
        seed = len(counted.generate_ms)  # a different seed for every piece
        judge_piece(counted, style, f"{tonic} {mode}", seed)
    return counted


def test_no_parallel_fifths_or_octaves_between_any_two_voices(tally: Tally) -> None:
    assert tally.changes > 500
    assert 100 * tally.fifths / tally.changes <= 1
    assert 100 * tally.octaves / tally.changes <= 1


def test_pop_and_rock_loops_have_no_diminished_or_augmented_chords(tally: Tally) -> None:
    assert tally.loop_chords > 200
    assert tally.loop_dim_aug == 0


def test_a_diminished_chord_stays_when_asked_for() -> None:
    asked = generate(
        "chord_progression", key="C", tempo=100, bars=4, style="pop", prompt="I-vii-iii-vi"
    )
    assert asked.chords is not None
    assert [quality(c.pitches) for c in asked.chords].count("diminished") == 1


def test_the_dominant_in_minor_has_the_raised_leading_tone(tally: Tally) -> None:
    assert tally.fifth_degree > 20
    assert tally.leading_tone / tally.fifth_degree >= 0.9


def test_melodies_close_on_the_tonic(tally: Tally) -> None:
    assert tally.tonic_endings / tally.endings >= 0.85


def test_an_open_ending_when_asked() -> None:
    endings = []
    for style, seed in itertools.product(STYLES, range(3)):
        tune = generate(
            "melody", key="G", tempo=100, bars=4, style=style, seed=seed, prompt="open ending"
        )
        endings.append(max(tune.notes, key=lambda n: n.start).pitch % 12)
    assert endings.count(tonic_of("G")) <= len(endings) * 0.15


def test_the_melody_sits_above_the_chords(tally: Tally) -> None:
    assert tally.above / tally.melody_notes >= 0.9


def test_basslines_move_smoothly(tally: Tally) -> None:
    moves = [abs(m) for m in tally.bass_moves if m]
    assert max(moves) <= 12
    assert statistics.fmean(moves) <= 7
    assert sum(m <= 5 for m in moves) / len(moves) >= 0.5


def test_the_chords_bass_moves_by_the_nearer_octave(tally: Tally) -> None:
    moves = tally.chord_bass_moves
    assert max(moves) <= 10
    assert statistics.fmean(moves) <= 4.7
    assert sum(m >= 7 for m in moves) / len(moves) <= 0.2


def test_walking_bass_mostly_steps() -> None:
    moves = []
    for seed in range(8):
        bass = generate("bassline", key="Bb", tempo=140, bars=8, style="jazz", seed=seed)
        moves += [abs(m) for m in bass_moves(bass.notes)]
    assert max(moves) <= 12
    assert sum(m <= 2 for m in moves) / len(moves) >= 0.5


def test_jazz_and_blues_melodies_swing_like_their_drums(tally: Tally) -> None:
    assert statistics.fmean(tally.swing) >= 0.8
    drums = generate("drum_pattern", key="C", tempo=120, bars=2, style="jazz", seed=1)
    assert any(abs(n.start % 1 - 2 / 3) < 1e-3 for n in drums.notes)


def test_pop_and_house_melodies_syncopate() -> None:
    for style in ("pop", "house"):
        off = total = 0
        for seed in range(8):
            tune = generate("melody", key="C", tempo=120, bars=8, style=style, seed=seed)
            total += len(tune.notes)
            off += sum(n.start % 1 > 1e-6 for n in tune.notes)
        assert off / total >= 0.25, style


def test_pop_and_jazz_melodies_never_share_a_rhythm(tally: Tally) -> None:
    assert tally.rhythm_pairs > 10
    assert tally.same_rhythm == 0
    for seed in range(10):
        pop = generate("melody", key="D", tempo=100, bars=4, style="pop", seed=seed)
        jazz = generate("melody", key="D", tempo=100, bars=4, style="jazz", seed=seed)
        assert onsets(pop.notes) != onsets(jazz.notes)


def test_melodies_repeat_a_motif_and_vary_it() -> None:
    repeated = varied = 0
    for style, seed in itertools.product(("pop", "rock", "hip-hop", "bossa"), range(6)):
        tune = generate("melody", key="E minor", tempo=100, bars=8, style=style, seed=seed)
        bars = [bar_rhythm(tune.notes, bar) for bar in range(8)]
        repeated += bars[0] == bars[2]
        varied += len(set(bars)) >= 3
    assert repeated >= 12
    assert varied >= 20


def test_music21_recovers_the_key_asked_for() -> None:
    found = total = 0
    for style, mode, tonic in itertools.product(STYLES, ("major", "minor"), TONICS[:3]):
        key = f"{tonic} {mode}"
        seed = total
        parts = [
            generate(kind, key=key, tempo=100, bars=8, style=style, seed=seed).notes  # type: ignore[arg-type]
            for kind in ("melody", "bassline", "chord_progression")
        ]
        total += 1
        found += music21_keys(parts, ["key.krumhansl"])["key.krumhansl"] == (tonic_of(key), mode)
    assert found / total >= 0.85, f"{found}/{total}"
