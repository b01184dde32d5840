from __future__ import annotations

import itertools

import msgspec
import pytest

from yamabiko.engines.music import (
    KINDS,
    STYLES,
    ChordEvent,
    Generated,
    Key,
    Kind,
    Note,
    chord_tones,
    generate,
    parse_key,
    parse_time_signature,
)
from yamabiko.engines.music.base import beats_per_bar, feel_of, strong_beats
from yamabiko.engines.music.drums import DRUM_PITCHES
from yamabiko.engines.music.theory import parse_chord

GM_PERCUSSION = range(35, 82)  # General MIDI key map, B0 (35) to open triangle (81)
KEYS = ("C major", "A minor", "F# major", "Bb dorian", "E harmonic minor", "G mixolydian")
PITCHED: tuple[Kind, ...] = ("bassline", "chord_progression", "melody", "harmony")


def make(kind: Kind, style: str = "pop", key: str = "C major", **kw: object) -> Generated:
    args: dict[str, object] = {"tempo": 120, "bars": 4, "seed": 1} | kw
    return generate(kind, key=key, style=style, **args)  # type: ignore[arg-type]


def sounding(chords: list[ChordEvent], beat: float) -> ChordEvent:
    return [c for c in chords if c.start <= beat + 1e-9][-1]


def in_key(key: Key, note: Note, chords: list[ChordEvent]) -> bool:
    """In the key's scale, a marked chromatic passing tone, or a tone of the chord
    sounding (the leading tone of a dominant V in minor, a borrowed chord's tone)."""
    chord = sounding(chords, note.start)
    return (
        key.contains(note.pitch) or note.chromatic or note.pitch % 12 in chord_tones(chord.symbol)
    )


def check_common(result: Generated, bars: int = 4, bar_beats: float = 4.0) -> None:
    total = bars * bar_beats
    assert result.notes, result.description
    for note in result.notes:
        assert 0 <= note.pitch <= 127
        assert 1 <= note.velocity <= 127
        assert note.start >= 0
        assert note.duration > 0
        assert note.end <= total + 1e-9, note
    assert result.notes == sorted(result.notes, key=lambda n: (n.start, n.pitch))
    assert result.description.endswith(".")
    assert result.description.count(". ") == 0  # one sentence
    assert 2 <= len(result.suggestions) <= 5


@pytest.mark.parametrize(("kind", "style"), list(itertools.product(KINDS, STYLES)))
def test_every_kind_and_style(kind: Kind, style: str) -> None:
    for key in KEYS:
        result = make(kind, style, key)
        check_common(result)
        assert result.kind == kind
        assert result.style == style
        if kind == "drum_pattern":
            assert result.chords is None
            assert {n.pitch for n in result.notes} <= DRUM_PITCHES
            assert all(n.pitch in GM_PERCUSSION for n in result.notes)
            continue
        the_key = parse_key(key)
        assert result.chords
        for note in result.notes:
            assert in_key(the_key, note, result.chords), (key, note)
        chromatic = sum(n.chromatic for n in result.notes)
        assert chromatic <= max(1, len(result.notes) // 8), "chromatic tones are rare"


@pytest.mark.parametrize(("kind", "style"), list(itertools.product(KINDS, STYLES)))
def test_deterministic_per_seed_and_varied_across_seeds(kind: Kind, style: str) -> None:
    first = make(kind, style, "A minor", seed=42)
    assert make(kind, style, "A minor", seed=42) == first
    others = [make(kind, style, "A minor", seed=s).notes for s in range(43, 48)]
    assert all(notes != first.notes for notes in others)
    if kind in ("melody", "drum_pattern", "bassline"):
        pitches = {tuple((n.pitch, n.start) for n in notes) for notes in [*others, first.notes]}
        assert len(pitches) >= 3, "the seed changes the notes, not only their velocities"


def test_no_seed_draws_a_fresh_one_that_reproduces() -> None:
    results = [generate("melody", key="C", tempo=100, bars=4) for _ in range(4)]
    assert len({r.seed for r in results}) > 1
    again = generate("melody", key="C", tempo=100, bars=4, seed=results[0].seed)
    assert again == results[0]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("key", KEYS)
def test_chord_progression_voicings_hold_their_symbols_tones(style: str, key: str) -> None:
    result = make("chord_progression", style, key, seed=7)
    assert result.chords is not None
    for event in result.chords:
        assert {p % 12 for p in event.pitches} == set(chord_tones(event.symbol))
        assert event.pitches[0] % 12 == parse_chord(event.symbol).root  # root in the bass
        assert list(event.pitches) == sorted(event.pitches)
    for note in result.notes:
        assert note.pitch in sounding(result.chords, note.start).pitches


def test_pop_in_c_and_a_minor() -> None:
    for seed in range(10):
        symbols = [c.symbol for c in make("chord_progression", "pop", "C", seed=seed).chords or []]
        assert set(symbols) <= {"C", "Dm", "Em", "F", "G", "Am", "Bdim"}
    am = make("chord_progression", "pop", "Am", prompt="i-VI-III-VII")
    assert [c.symbol for c in am.chords or []] == ["Am", "F", "C", "G"]
    assert set(chord_tones("Am")) == {9, 0, 4}
    c = make("chord_progression", "pop", "C", prompt="play I-V-vi-IV please")
    assert [c.symbol for c in c.chords or []] == ["C", "G", "Am", "F"]
    assert "I-V-vi-IV" in c.description


def test_jazz_ii_v_i() -> None:
    result = make("chord_progression", "jazz", "C", prompt="a ii7-V7-Imaj7 turnaround", bars=3)
    assert [c.symbol for c in result.chords or []] == ["Dm7", "G7", "Cmaj7"]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(
    "prompt",
    [None, "walking", "octave bass", "root-fifth", "driving eighths", "syncopated", "sparse"],
)
def test_bassline_plays_the_root_at_every_chord(style: str, prompt: str | None) -> None:
    for key in ("C", "A minor", "Bb dorian"):
        result = make("bassline", style, key, prompt=prompt, seed=3)
        check_common(result)
        assert result.chords is not None
        for event in result.chords:
            on = [n for n in result.notes if abs(n.start - event.start) < 1e-6]
            assert len(on) == 1, (event, on)
            assert on[0].pitch % 12 == parse_chord(event.symbol).root
            assert not on[0].chromatic
        assert all(28 <= n.pitch <= 60 for n in result.notes)


def test_bass_patterns_by_prompt_and_style() -> None:
    assert "walking" in make("bassline", "jazz").description
    assert "octave" in make("bassline", "house").description
    assert "walking" in make("bassline", "pop", prompt="a walking bass").description
    walking = make("bassline", "pop", prompt="walking", bars=8)
    assert all(n.duration <= 1.0 + 1e-9 for n in walking.notes)
    assert len(walking.notes) == 8 * 4
    octave = make("bassline", "house", seed=5)
    firsts = [n for n in octave.notes if n.start < 1]
    assert firsts[1].pitch - firsts[0].pitch == 12


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("prompt", [None, "busier", "sparse", "syncopated"])
def test_melody_lands_on_chord_tones_on_strong_beats(style: str, prompt: str | None) -> None:
    for key, seed in itertools.product(KEYS, range(3)):
        result = make("melody", style, key, prompt=prompt, seed=seed, bars=8)
        check_common(result, bars=8)
        assert result.chords is not None
        the_key = parse_key(key)
        for note in result.notes:
            if any(abs(note.start % 4 - s) < 1e-6 for s in strong_beats(4)):
                assert note.pitch % 12 in chord_tones(sounding(result.chords, note.start).symbol)
            assert in_key(the_key, note, result.chords)
            if note.chromatic:
                assert not the_key.contains(note.pitch)


def test_chromatic_passing_tones_are_marked_rare_and_between_scale_steps() -> None:
    key = parse_key("C")
    marked = total = 0
    for seed in range(40):
        notes = make("melody", "jazz", "C", seed=seed, bars=8).notes
        total += len(notes)
        for before, note, after in zip(notes, notes[1:], notes[2:], strict=False):
            if note.chromatic:
                marked += 1
                assert not key.contains(note.pitch)
                assert key.contains(before.pitch)
                assert key.contains(after.pitch)
                assert abs(before.pitch - note.pitch) == 1 == abs(after.pitch - note.pitch)
    assert 0 < marked < total * 0.1


def test_density_words_shape_the_melody() -> None:
    def count(prompt: str | None) -> int:
        return sum(
            len(make("melody", "pop", seed=s, prompt=prompt, bars=8).notes) for s in range(6)
        )

    assert count("sparse") < count(None) < count("make it busier")


def test_density_words_shape_drums() -> None:
    def count(prompt: str | None) -> int:
        return sum(len(make("drum_pattern", "rock", seed=s, prompt=prompt).notes) for s in range(6))

    assert count("sparse") < count(None) < count("busier")


@pytest.mark.parametrize("style", STYLES)
def test_drum_grooves(style: str) -> None:
    result = make("drum_pattern", style, bars=8, seed=2)
    pitches = {n.pitch for n in result.notes}
    assert pitches <= DRUM_PITCHES
    if style == "house":
        kicks = {n.start for n in result.notes if n.pitch == 36}
        assert {0.0, 1.0, 2.0, 3.0} <= kicks  # four on the floor
    if style == "jazz":
        assert 51 in pitches  # ride
    if style in ("rock", "pop", "hip-hop", "blues"):
        snares = {n.start for n in result.notes if n.pitch == 38 and n.velocity > 70}
        assert {1.0, 3.0} <= snares  # backbeat


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("prompt", [None, "in sixths", "thirds above"])
def test_harmony_is_a_third_or_sixth_above_in_the_scale(style: str, prompt: str | None) -> None:
    for key in KEYS:
        result = make("harmony", style, key, prompt=prompt, seed=4)
        check_common(result)
        the_key = parse_key(key)
        assert result.melody is not None
        by_start = {(n.start, n.duration): n for n in result.melody}
        for note in result.notes:
            under = by_start[(note.start, note.duration)]
            interval = note.pitch - under.pitch
            allowed = {"in sixths": {8, 9}, "thirds above": {3, 4}}.get(prompt or "", {3, 4, 8, 9})
            assert interval in allowed, (note, under)
            assert the_key.contains(note.pitch)
            # a diatonic third is two scale steps, a sixth five
            steps = (
                the_key.scale.index(note.pitch % 12) - the_key.scale.index(under.pitch % 12)
            ) % 7
            assert steps == (2 if interval in (3, 4) else 5)


def test_harmony_of_a_seed_harmonizes_the_melody_of_that_seed() -> None:
    tune = make("melody", "pop", "D dorian", seed=9)
    harm = make("harmony", "pop", "D dorian", seed=9)
    assert harm.melody == tune.notes


def test_harmony_of_a_given_melody() -> None:
    tune = [Note(60, 0, 1, 90), Note(62, 1, 1, 90), Note(64, 2, 1, 90), Note(61, 3, 1, 90, True)]
    result = generate("harmony", key="C", tempo=90, bars=1, melody=tune, prompt="thirds")
    assert [(n.pitch, n.start) for n in result.notes] == [(64, 0), (65, 1), (67, 2)]
    with pytest.raises(ValueError, match="out of range"):
        generate("harmony", key="C", tempo=90, bars=1, melody=[Note(130, 0, 1, 90)])


def test_following_given_chords() -> None:
    chords = make("chord_progression", "jazz", "F", seed=11).chords
    assert chords is not None
    bass = generate("bassline", key="F", tempo=120, bars=4, chords=chords, seed=2)
    assert bass.chords == chords
    for event in chords:
        first = next(n for n in bass.notes if abs(n.start - event.start) < 1e-6)
        assert first.pitch % 12 == parse_chord(event.symbol).root


def test_same_seed_parts_share_the_progression() -> None:
    symbols = {
        tuple(c.symbol for c in make(kind, "bossa", "G", seed=13).chords or []) for kind in PITCHED
    }
    assert len(symbols) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("signature", [(3, 4), (6, 8), (5, 4), (7, 8), (2, 2)])
def test_time_signatures_keep_notes_inside_the_bars(kind: Kind, signature: tuple[int, int]) -> None:
    for style in STYLES:
        result = make(kind, style, "E minor", time_signature=signature, bars=3)
        check_common(result, bars=3, bar_beats=beats_per_bar(signature))
        if result.chords:
            assert all(c.end <= 3 * beats_per_bar(signature) + 1e-9 for c in result.chords)


def test_one_bar_and_many_bars() -> None:
    for kind in KINDS:
        check_common(make(kind, bars=1), bars=1)
        check_common(make(kind, "blues", bars=64), bars=64)


def test_style_from_the_prompt_and_default() -> None:
    assert (
        generate("drum_pattern", key="C", tempo=90, bars=2, prompt="a boom bap beat").style
        == "hip-hop"
    )
    assert generate("drum_pattern", key="C", tempo=90, bars=2).style == "pop"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"key": "H minor"}, "not a key"),
        ({"key": "C wobbly"}, "unknown mode"),
        ({"tempo": 0}, "tempo must be"),
        ({"tempo": float("nan")}, "tempo must be"),
        ({"bars": 0}, "bars must be"),
        ({"bars": 65}, "bars must be"),
        ({"bars": 2.5}, "bars must be"),
        ({"time_signature": (4, 3)}, "not a time signature"),
        ({"time_signature": "four"}, "not a time signature"),
        ({"style": "polka"}, "unknown style"),
        ({"seed": "x"}, "seed must be"),
    ],
)
def test_invalid_arguments(kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"key": "C", "tempo": 120, "bars": 4} | kw
    with pytest.raises(ValueError, match=message):
        generate("melody", **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown kind"):
        generate("solo", key="C", tempo=120, bars=4)  # type: ignore[arg-type]


def test_time_signature_forms() -> None:
    assert parse_time_signature("6/8") == (6, 8)
    assert parse_time_signature([3, 4]) == (3, 4)
    assert parse_time_signature(" 7 / 8 ") == (7, 8)
    assert beats_per_bar((6, 8)) == 3.0


def test_feel_words() -> None:
    assert feel_of("make it busier and syncopated").density == 1
    assert feel_of("make it busier and syncopated").syncopated
    assert feel_of("sparse please").density == -1
    assert feel_of(None).density == 0


def test_result_encodes_to_json() -> None:
    result = make("chord_progression", "house")
    data = msgspec.json.decode(msgspec.json.encode(result))
    assert set(data["notes"][0]) == {"pitch", "start", "duration", "velocity"}
    assert set(data["chords"][0]) == {"symbol", "start", "duration", "pitches"}
    melody = make("melody", "jazz", bars=16, seed=1)
    marked = [
        n for n in msgspec.json.decode(msgspec.json.encode(melody))["notes"] if "chromatic" in n
    ]
    assert all(n["chromatic"] is True for n in marked)
