from __future__ import annotations

import itertools

import pytest

from yamabiko.engines.music.theory import MODES, Key, diatonic_chord, parse_chord
from yamabiko.engines.music.voicing import candidates, voice


def consecutive_fifths_and_octaves(before: tuple[int, ...], after: tuple[int, ...]) -> int:
    """Counted here, not by the engine: voice pairs a fifth or octave apart in both
    chords with both voices moving."""
    count = 0
    for i, j in itertools.combinations(range(4), 2):
        moved = before[i] != after[i] and before[j] != after[j]
        same = (before[j] - before[i]) % 12 == (after[j] - after[i]) % 12
        if moved and same and (before[j] - before[i]) % 12 in (0, 7):
            count += 1
    return count


def test_four_voices_root_in_the_bass_every_tone_present() -> None:
    for symbol in ("C", "Am", "Bdim", "G7", "Dm7", "Fmaj7", "Bm7b5", "E7", "Caug"):
        chord = parse_chord(symbol)
        assert candidates(chord)
        for voicing in candidates(chord):
            assert len(voicing) == 4
            assert voicing[0] % 12 == chord.root
            assert {p % 12 for p in voicing} == set(chord.tones)
            assert list(voicing) == sorted(voicing)
            assert 36 <= voicing[0] < 55
            assert voicing[1] >= 52
            assert voicing[-1] <= 72


@pytest.mark.parametrize("mode", ["major", "minor", "dorian", "lydian"])
def test_no_consecutive_fifths_or_octaves_between_any_two_diatonic_chords(mode: str) -> None:
    key = Key(2, mode)
    for seventh in (False, True):
        chords = [diatonic_chord(key, d, seventh=seventh) for d in range(1, 8)]
        for first, second in itertools.permutations(chords, 2):
            before, after = voice([first, second])
            assert consecutive_fifths_and_octaves(before, after) == 0, (first, second)


def test_root_motion_by_step_moves_the_upper_voices_against_the_bass() -> None:
    # F to G in C: moving every voice up a step is the textbook trap (fifths and
    # octaves with the bass); the upper voices go down instead.
    f, g = voice([parse_chord("F"), parse_chord("G")])
    assert g[0] > f[0]
    assert consecutive_fifths_and_octaves(f, g) == 0
    assert sum(b < a for a, b in zip(f[1:], g[1:], strict=True)) >= 2


def test_a_long_progression_is_smooth_and_deterministic() -> None:
    symbols = ["C", "Am", "F", "G", "Em", "Am", "Dm7", "G7", "Cmaj7", "A7", "Dm7", "G7", "C"]
    chords = [parse_chord(s) for s in symbols]
    voicings = voice(chords)
    assert voicings == voice(chords)
    for before, after in itertools.pairwise(voicings):
        assert consecutive_fifths_and_octaves(before, after) == 0
        assert max(abs(a - b) for a, b in zip(before[1:], after[1:], strict=True)) <= 7
        assert abs(after[0] - before[0]) <= 7


def test_every_mode_and_tonic_has_voicings() -> None:
    for mode, tonic, degree in itertools.product(MODES, range(12), range(1, 8)):
        assert candidates(diatonic_chord(Key(tonic, mode), degree))
