from __future__ import annotations

import pytest

from yamabiko.engines.music.theory import (
    MODES,
    PROGRESSIONS,
    STYLES,
    Key,
    chord_scale,
    chord_tones,
    diatonic_chord,
    idiomatic,
    normalize_style,
    parse_chord,
    parse_key,
    parse_numeral,
    parse_pitch_class,
    progression_chords,
    progressions_for,
    roman,
    style_in,
)

C, D, E, F, G, A, B = 0, 2, 4, 5, 7, 9, 11


@pytest.mark.parametrize(
    ("text", "tonic", "mode", "flats"),
    [
        ("A minor", A, "minor", False),
        ("Am", A, "minor", False),
        ("a min", A, "minor", False),
        ("A aeolian", A, "minor", False),
        ("F# major", 6, "major", False),
        ("F#", 6, "major", False),
        ("Bb dorian", 10, "dorian", True),
        ("C", C, "major", False),
        ("c major", C, "major", False),
        ("F", F, "major", True),
        ("D minor", D, "minor", True),
        ("E harmonic minor", E, "harmonic minor", False),
        ("G mixolydian", G, "mixolydian", False),
        ("Eb  Lydian", 3, "lydian", True),
        ("C#m", 1, "minor", False),
        ("Db", 1, "major", True),
        ("F♯ minor", 6, "minor", False),
        ("  B locrian ", B, "locrian", False),
        ("A melodic minor", A, "melodic minor", False),
        ("E phrygian", E, "phrygian", False),
    ],
)
def test_parse_key(text: str, tonic: int, mode: str, flats: bool) -> None:
    assert parse_key(text) == Key(tonic, mode, flats)


@pytest.mark.parametrize(
    "text", ["", "H major", "A minorish", "major", "Am7", "C# blah", "#A", "X"]
)
def test_parse_key_rejects_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match=r"key|mode") as caught:
        parse_key(text)
    assert repr(text) in str(caught.value)


def test_parse_key_error_names_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match="dorian"):
        parse_key("Q minor")
    with pytest.raises(ValueError, match="unknown mode 'wobbly'"):
        parse_key("A wobbly")


def test_key_names() -> None:
    assert parse_key("Am").name == "A minor"
    assert parse_key("bb dorian").name == "Bb dorian"
    assert parse_key("F#").name == "F# major"


@pytest.mark.parametrize(
    ("key", "scale"),
    [
        ("C major", (C, D, E, F, G, A, B)),
        ("A minor", (A, B, C, D, E, F, G)),
        ("A harmonic minor", (A, B, C, D, E, F, 8)),
        ("D dorian", (D, E, F, G, A, B, C)),
        ("G mixolydian", (G, A, B, C, D, E, F)),
        ("F# major", (6, 8, 10, 11, 1, 3, 5)),
        ("Bb major", (10, C, D, 3, F, G, A)),
    ],
)
def test_scales(key: str, scale: tuple[int, ...]) -> None:
    assert parse_key(key).scale == scale


def test_every_mode_has_seven_ascending_degrees() -> None:
    for intervals in MODES.values():
        assert len(intervals) == 7
        assert list(intervals) == sorted(set(intervals))
        assert intervals[0] == 0


def test_pitch_classes() -> None:
    assert parse_pitch_class("C") == 0
    assert parse_pitch_class("B#") == 0
    assert parse_pitch_class("Cb") == 11
    assert parse_pitch_class("bb") == 10
    with pytest.raises(ValueError, match="not a note name"):
        parse_pitch_class("H")


@pytest.mark.parametrize(
    ("key", "degree", "seventh", "symbol", "tones"),
    [
        ("C", 1, False, "C", (C, E, G)),
        ("C", 2, False, "Dm", (D, F, A)),
        ("C", 5, True, "G7", (G, B, D, F)),
        ("C", 7, False, "Bdim", (B, D, F)),
        ("C", 7, True, "Bm7b5", (B, D, F, A)),
        ("C", 1, True, "Cmaj7", (C, E, G, B)),
        ("A minor", 1, False, "Am", (A, C, E)),
        ("A minor", 5, False, "Em", (E, G, B)),
        ("A harmonic minor", 5, True, "E7", (E, 8, B, D)),
        ("A harmonic minor", 3, False, "Caug", (C, E, 8)),
        ("A harmonic minor", 7, True, "G#dim7", (8, B, D, F)),
        ("F major", 4, False, "Bb", (10, D, F)),
        ("D dorian", 4, False, "G", (G, B, D)),
        ("G mixolydian", 7, False, "F", (F, A, C)),
    ],
)
def test_diatonic_chords(
    key: str, degree: int, seventh: bool, symbol: str, tones: tuple[int, ...]
) -> None:
    chord = diatonic_chord(parse_key(key), degree, seventh=seventh)
    assert chord.symbol == symbol
    assert chord.tones == tones
    assert chord_tones(symbol) == tones


def test_diatonic_chords_stay_in_the_scale() -> None:
    for mode in MODES:
        for tonic in range(12):
            key = Key(tonic, mode)
            for degree in range(1, 8):
                for seventh in (False, True):
                    chord = diatonic_chord(key, degree, seventh=seventh)
                    assert all(key.contains(pc) for pc in chord.tones)
    with pytest.raises(ValueError, match="1-7"):
        diatonic_chord(parse_key("C"), 8)


@pytest.mark.parametrize(
    ("symbol", "tones"),
    [
        ("Am", (A, C, E)),
        ("C", (C, E, G)),
        ("F#m", (6, A, 1)),
        ("Bbmaj7", (10, D, F, A)),
        ("Dm7", (D, F, A, C)),
        ("G7", (G, B, D, F)),
        ("Bø", (B, D, F, A)),
        ("C+", (C, E, 8)),
        ("Ebdim7", (3, 6, A, C)),
    ],
)
def test_chord_symbols(symbol: str, tones: tuple[int, ...]) -> None:
    assert chord_tones(symbol) == tones


@pytest.mark.parametrize("symbol", ["", "Hm", "Am13", "C sus"])
def test_bad_chord_symbols(symbol: str) -> None:
    with pytest.raises(ValueError, match="not a chord symbol"):
        parse_chord(symbol)


def test_numerals_take_their_quality_from_the_key() -> None:
    assert parse_numeral("vi") == (6, False)
    assert parse_numeral("V7") == (5, True)
    assert parse_numeral("IVmaj7") == (4, True)
    assert parse_numeral("iiø7") == (2, True)
    assert [c.symbol for c in progression_chords(parse_key("C"), ["I", "V", "vi", "IV"])] == [
        "C",
        "G",
        "Am",
        "F",
    ]
    assert [c.symbol for c in progression_chords(parse_key("Bb"), ["ii7", "V7", "Imaj7"])] == [
        "Cm7",
        "F7",
        "Bbmaj7",
    ]
    with pytest.raises(ValueError, match="roman numeral"):
        parse_numeral("VIII")


def test_roman_names() -> None:
    am = parse_key("A minor")
    assert roman(am, parse_chord("Em7")) == "v7"
    assert roman(parse_key("A harmonic minor"), parse_chord("E7")) == "V7"
    assert roman(am, parse_chord("Bm7b5")) == "iiø7"
    assert roman(am, parse_chord("C")) == "III"
    assert roman(parse_key("C"), parse_chord("Bdim")) == "vii°"


def test_every_style_progression_parses_in_every_mode() -> None:
    assert set(STYLES) == {"pop", "rock", "hip-hop", "house", "jazz", "blues", "bossa"}
    for style, by_third in PROGRESSIONS.items():
        assert by_third["major"], style
        assert by_third["minor"], style
        for texts in by_third.values():
            for text in texts:
                for bar in text.split("|"):
                    assert progression_chords(parse_key("C"), bar.split())


def test_styles_and_aliases() -> None:
    assert normalize_style("Hip Hop") == "hip-hop"
    assert normalize_style("bossa nova") == "bossa"
    assert normalize_style("EDM") == "house"
    with pytest.raises(ValueError, match="known styles: pop, rock"):
        normalize_style("polka")
    assert style_in("a funky hip hop beat") == "hip-hop"
    assert style_in("jazz then rock") == "jazz"
    assert style_in("something nice") is None


def test_the_fifth_degree_is_a_dominant_in_minor_where_written_upper_case() -> None:
    am = parse_key("A minor")
    assert [c.symbol for c in progression_chords(am, ["i", "iv", "V7", "i"])] == [
        "Am",
        "Dm",
        "E7",
        "Am",
    ]
    assert [c.symbol for c in progression_chords(am, ["V", "v", "v7"])] == ["E", "Em", "Em7"]
    assert progression_chords(parse_key("D dorian"), ["V7"])[0].symbol == "A7"
    assert progression_chords(parse_key("C"), ["V7"])[0].symbol == "G7"


@pytest.mark.parametrize("mode", MODES)
def test_loop_styles_get_no_diminished_or_augmented_chords(mode: str) -> None:
    for tonic in range(12):
        key = Key(tonic, mode)
        for style in ("pop", "rock", "hip-hop", "house"):
            for text in progressions_for(style, key):
                for bar in text.split("|"):
                    for chord in progression_chords(key, bar.split(), style=style):
                        assert chord.intervals[2] == 7, (key.name, style, chord.symbol)


def test_idiomatic_replacements() -> None:
    lydian, harmonic = parse_key("C lydian"), parse_key("A harmonic minor")
    assert idiomatic(lydian, parse_chord("F#dim"), 4).symbol == "F"
    assert idiomatic(harmonic, parse_chord("Caug"), 3).symbol == "C"
    assert idiomatic(harmonic, parse_chord("G#dim"), 7).symbol == "G"
    assert idiomatic(parse_key("C"), parse_chord("Bdim"), 7).symbol == "Bb"
    assert idiomatic(parse_key("A minor"), parse_chord("Bdim"), 2).symbol == "Bm"
    assert idiomatic(parse_key("C"), parse_chord("Dm"), 2).symbol == "Dm"
    # Jazz keeps the mode's own chords: a half-diminished ii is its idiom.
    assert progression_chords(parse_key("A minor"), ["ii7"], style="jazz")[0].symbol == "Bm7b5"


def test_modes_have_loops_that_show_their_colour() -> None:
    assert progressions_for("pop", parse_key("D dorian"))[0] == "i | IV | i | IV"
    chords = progression_chords(parse_key("D dorian"), ["i", "IV"], style="pop")
    assert [c.symbol for c in chords] == ["Dm", "G"]
    assert [c.symbol for c in progression_chords(parse_key("C lydian"), ["I", "II"])] == [
        "C",
        "D",
    ]


def test_chord_scale_takes_the_chords_tones() -> None:
    am = parse_key("A minor")
    assert sorted(chord_scale(am, parse_chord("E7"))) == [0, 2, 4, 5, 8, 9, 11]  # G -> G#
    assert chord_scale(am, parse_chord("Am")) == am.scale
    assert sorted(chord_scale(parse_key("C lydian"), parse_chord("F"))) == [0, 2, 4, 5, 7, 9, 11]
    assert sorted(chord_scale(parse_key("C"), parse_chord("Bb"))) == [0, 2, 4, 5, 7, 9, 10]
