"""Music theory: keys and modes, scales, diatonic chords, progressions.

Pitches are MIDI note numbers (60 is middle C); a pitch class (``pc``) is a pitch modulo
12 (0 is C). Everything here is pure and deterministic; randomness lives in the
generators (:mod:`.generate`).

Chords are built from the key's own scale (stacked thirds on a degree), with two
exceptions that make them idiomatic (docs/agent.md): a fifth degree written upper case
is a dominant in minor keys (:data:`DOMINANT_MODES`, the raised leading tone of
harmonic minor), and the loop styles (:data:`LOOP_STYLES`) borrow a stable chord where
the mode would give a diminished or augmented one (:func:`idiomatic`). The blues uses
its 12-bar form with the key's chords rather than three dominant sevenths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

import msgspec

NOTE_NAMES_SHARP: Final = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
NOTE_NAMES_FLAT: Final = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")

_LETTERS: Final = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_LETTER_ORDER: Final = "CDEFGAB"

#: Scale intervals (semitones above the tonic) of each mode.
MODES: Final[dict[str, tuple[int, ...]]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic minor": (0, 2, 3, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}

#: Other spellings of the modes, all lower case.
MODE_ALIASES: Final[dict[str, str]] = {
    "": "major",
    "maj": "major",
    "ionian": "major",
    "m": "minor",
    "min": "minor",
    "natural minor": "minor",
    "aeolian": "minor",
    "harmonic": "harmonic minor",
    "harmonic min": "harmonic minor",
    "melodic": "melodic minor",
    "melodic min": "melodic minor",
}

# Semitones from a mode's tonic down to the tonic of the major scale sharing its key
# signature (used only to spell note names with sharps or flats).
_PARENT_OFFSET: Final = {
    "major": 0,
    "dorian": 2,
    "phrygian": 4,
    "lydian": 5,
    "mixolydian": 7,
    "minor": 9,
    "harmonic minor": 9,
    "melodic minor": 9,
    "locrian": 11,
}
_FLAT_MAJORS: Final = frozenset({5, 10, 3, 8, 1, 6})  # F Bb Eb Ab Db Gb

#: Chord qualities: intervals above the root, and the symbol suffix.
QUALITIES: Final[dict[str, tuple[tuple[int, ...], str]]] = {
    "major": ((0, 4, 7), ""),
    "minor": ((0, 3, 7), "m"),
    "diminished": ((0, 3, 6), "dim"),
    "augmented": ((0, 4, 8), "aug"),
    "major7": ((0, 4, 7, 11), "maj7"),
    "dominant7": ((0, 4, 7, 10), "7"),
    "minor7": ((0, 3, 7, 10), "m7"),
    "half-diminished7": ((0, 3, 6, 10), "m7b5"),
    "diminished7": ((0, 3, 6, 9), "dim7"),
    "minor-major7": ((0, 3, 7, 11), "mMaj7"),
    "augmented-major7": ((0, 4, 8, 11), "augMaj7"),
}
_BY_INTERVALS: Final = {intervals: quality for quality, (intervals, _) in QUALITIES.items()}
_BY_SUFFIX: Final = {suffix: quality for quality, (_, suffix) in QUALITIES.items()}
_SUFFIX_ALIASES: Final = {
    "maj": "",
    "M": "",
    "min": "m",
    "-": "m",
    "+": "aug",
    "°": "dim",
    "o": "dim",
    "M7": "maj7",
    "Δ": "maj7",
    "Δ7": "maj7",
    "min7": "m7",
    "-7": "m7",
    "ø": "m7b5",
    "ø7": "m7b5",
    "o7": "dim7",
    "°7": "dim7",
    "dom7": "7",
}


def parse_pitch_class(name: str) -> int:
    """``"C"`` → 0, ``"F#"`` → 6, ``"Bb"`` → 10 (``♯``/``♭`` too; letters in any case).

    Raises :class:`ValueError` for anything else."""
    text = name.strip().replace("♯", "#").replace("♭", "b")
    if not text or text[0].upper() not in _LETTERS or any(c not in "#b" for c in text[1:]):
        raise ValueError(f"not a note name: {name!r} (expected A-G with optional # or b)")
    return (_LETTERS[text[0].upper()] + text[1:].count("#") - text[1:].count("b")) % 12


class Key(msgspec.Struct, frozen=True):
    """A tonic pitch class and a mode (one of :data:`MODES`).

    ``flats`` says how to spell note names (``Bb`` rather than ``A#``)."""

    tonic: int
    mode: str
    flats: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known modes: {', '.join(MODES)}")
        if not 0 <= self.tonic < 12:
            raise ValueError(f"tonic must be a pitch class 0-11, not {self.tonic}")

    @property
    def name(self) -> str:
        """``"A minor"``, ``"Bb dorian"``."""
        return f"{self.note_name(self.tonic)} {self.mode}"

    @property
    def is_minor(self) -> bool:
        """True when the mode's third is minor (minor, dorian, phrygian, locrian...)."""
        return MODES[self.mode][2] == 3

    @property
    def scale(self) -> tuple[int, ...]:
        """The seven pitch classes of the scale, from the tonic up."""
        return _scale(self.tonic, self.mode)

    def contains(self, pitch: int) -> bool:
        """Whether ``pitch`` (a MIDI note or a pitch class) is in the scale."""
        return pitch % 12 in self.scale

    def note_name(self, pc: int) -> str:
        """The name of a pitch class, spelled with this key's sharps or flats."""
        return (NOTE_NAMES_FLAT if self.flats else NOTE_NAMES_SHARP)[pc % 12]

    def degree_of(self, pitch: int) -> int | None:
        """The 0-based scale degree of ``pitch``, or None when it is not in the scale."""
        pc = pitch % 12
        return self.scale.index(pc) if pc in self.scale else None


@lru_cache(maxsize=256)
def _scale(tonic: int, mode: str) -> tuple[int, ...]:
    return tuple((tonic + i) % 12 for i in MODES[mode])


_KEY_RE: Final = re.compile(r"^\s*([A-Ga-g])([#b♯♭]*)\s*(.*?)\s*$")


def parse_key(text: str) -> Key:
    """Parse a key name: ``"A minor"``, ``"Am"``, ``"F# major"``, ``"Bb dorian"``,
    ``"C"`` (major), ``"E harmonic minor"``, ``"D mixolydian"``; case-insensitive
    except that ``"M"`` alone is not taken for major.

    Raises :class:`ValueError` naming the accepted forms."""
    match = _KEY_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"not a key: {text!r} (expected a note A-G with optional # or b, then a mode: "
            f"{', '.join(MODES)}; e.g. 'A minor', 'Am', 'F# major', 'Bb dorian')"
        )
    letter, accidentals, rest = match.groups()
    mode_text = " ".join(rest.lower().split())
    mode = mode_text if mode_text in MODES else MODE_ALIASES.get(mode_text)
    if mode is None:
        raise ValueError(
            f"unknown mode {rest!r} in key {text!r}; known modes: {', '.join(MODES)} "
            f"(or m/min/aeolian, maj/ionian)"
        )
    tonic = parse_pitch_class(letter + accidentals)
    if "#" in accidentals or "♯" in accidentals:
        flats = False
    elif "b" in accidentals or "♭" in accidentals:
        flats = True
    else:
        flats = (tonic - _PARENT_OFFSET[mode]) % 12 in _FLAT_MAJORS
    return Key(tonic, mode, flats)


class Chord(msgspec.Struct, frozen=True):
    """A chord: its root pitch class, its quality (a key of :data:`QUALITIES`) and its
    symbol (``"Am"``, ``"G7"``, ``"Bm7b5"``)."""

    root: int
    quality: str
    symbol: str

    @property
    def intervals(self) -> tuple[int, ...]:
        return QUALITIES[self.quality][0]

    @property
    def tones(self) -> tuple[int, ...]:
        """Pitch classes from the root up (root, third, fifth, seventh?)."""
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def fifth(self) -> int:
        return (self.root + self.intervals[2]) % 12


def make_chord(root: int, quality: str, *, flats: bool = False) -> Chord:
    """The chord of ``quality`` on ``root`` with its symbol spelled with sharps or flats."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown chord quality {quality!r}; known: {', '.join(QUALITIES)}")
    name = (NOTE_NAMES_FLAT if flats else NOTE_NAMES_SHARP)[root % 12]
    return Chord(root % 12, quality, name + QUALITIES[quality][1])


_CHORD_RE: Final = re.compile(r"^\s*([A-Ga-g][#b♯♭]?)(.*?)\s*$")


def parse_chord(symbol: str) -> Chord:
    """Parse a chord symbol: ``"C"``, ``"Am"``, ``"F#dim"``, ``"Bbmaj7"``, ``"G7"``,
    ``"Dm7"``, ``"Bm7b5"``/``"Bø"``, ``"C+"``... Raises :class:`ValueError`."""
    match = _CHORD_RE.match(symbol)
    suffix = match.group(2) if match else None
    if suffix is not None:
        suffix = _SUFFIX_ALIASES.get(suffix, suffix)
    if match is None or suffix not in _BY_SUFFIX:
        raise ValueError(
            f"not a chord symbol: {symbol!r} (expected a root such as C, F# or Bb and one "
            f"of the suffixes {', '.join(repr(s) for s in _BY_SUFFIX)})"
        )
    root_text = match.group(1)
    root = parse_pitch_class(root_text)
    flats = "b" in root_text[1:] or "♭" in root_text
    return make_chord(root, _BY_SUFFIX[suffix], flats=flats)


def chord_tones(symbol: str) -> tuple[int, ...]:
    """The pitch classes of a chord symbol: ``chord_tones("Am") == (9, 0, 4)``."""
    return parse_chord(symbol).tones


def diatonic_chord(key: Key, degree: int, *, seventh: bool = False) -> Chord:
    """The chord built by stacking the key's thirds on ``degree`` (1-7): in C major
    degree 2 is ``Dm`` (``Dm7`` with ``seventh``), degree 5 ``G`` (``G7``)."""
    if not 1 <= degree <= 7:
        raise ValueError(f"a scale degree is 1-7, not {degree}")
    scale = key.scale
    count = 4 if seventh else 3
    pcs = [scale[(degree - 1 + 2 * i) % 7] for i in range(count)]
    intervals = tuple((pc - pcs[0]) % 12 for pc in pcs)
    quality = _BY_INTERVALS.get(intervals)
    if quality is None:  # pragma: no cover - every mode in MODES stacks to a known quality
        raise ValueError(f"no chord quality for intervals {intervals}")
    return make_chord(pcs[0], quality, flats=key.flats)


_ROMAN: Final = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7}
_NUMERAL_RE: Final = re.compile(r"^(i{1,3}|iv|vi{0,2})(maj7|m7b5|ø7?|°7?|dim7?|o|7)?$")


def parse_numeral(numeral: str) -> tuple[int, bool]:
    """``"vi"`` → (6, False), ``"V7"`` → (5, True), ``"Imaj7"`` → (1, True).

    Any quality mark is informative only: the chord's quality comes from the key
    (``"ii"`` in A minor is ``Bdim``); the case matters only on the fifth degree (see
    :func:`numeral_chord`)."""
    text = numeral.strip()
    match = _NUMERAL_RE.match(text.lower())
    if match is None:
        raise ValueError(f"not a roman numeral chord: {numeral!r} (expected I-VII, e.g. 'vi')")
    suffix = match.group(2) or ""
    return _ROMAN[match.group(1)], "7" in suffix or suffix.startswith("ø")


#: Modes whose chord on the fifth degree becomes a dominant (major third: the raised
#: leading tone of harmonic minor) where a progression writes it upper case (``V``,
#: ``V7``), so that cadences pull home.
DOMINANT_MODES: Final = frozenset({"minor", "dorian", "harmonic minor", "melodic minor"})

#: Styles built on short repeated loops, where a diminished or augmented chord sounds
#: like a mistake: one that the mode would give is replaced (see :func:`idiomatic`).
LOOP_STYLES: Final = frozenset({"pop", "rock", "hip-hop", "house"})

_UNSTABLE: Final = frozenset(
    {"diminished", "augmented", "half-diminished7", "diminished7", "augmented-major7"}
)


def numeral_chord(key: Key, numeral: str) -> Chord:
    """The key's chord for a roman numeral (see :func:`parse_numeral`), with the
    dominant rule of :data:`DOMINANT_MODES`: ``"V7"`` in A minor is ``E7``, ``"v7"``
    ``Em7``."""
    degree, seventh = parse_numeral(numeral)
    chord = diatonic_chord(key, degree, seventh=seventh)
    upper = numeral.strip()[:1] == "V"
    if degree == 5 and upper and key.mode in DOMINANT_MODES:
        chord = make_chord(chord.root, "dominant7" if seventh else "major", flats=key.flats)
    return chord


def idiomatic(key: Key, chord: Chord, degree: int) -> Chord:
    """``chord`` (on ``degree``), or where it is diminished or augmented the chord a
    loop-based song would use there: the same degree of the parallel major or natural
    minor (C lydian's F#dim becomes F, A harmonic minor's Caug becomes C); where that
    is unstable too, a borrowed bVII in major and a minor ii in minor."""
    if chord.quality not in _UNSTABLE:
        return chord
    seventh = len(chord.intervals) == 4
    parallel = Key(key.tonic, "minor" if key.is_minor else "major", key.flats)
    borrowed = diatonic_chord(parallel, degree, seventh=seventh)
    if borrowed.quality not in _UNSTABLE:
        return borrowed
    if key.is_minor:
        return make_chord(borrowed.root, "minor7" if seventh else "minor", flats=key.flats)
    root = (key.tonic + 10) % 12  # spelled with a flat: it is the lowered seventh
    return make_chord(root, "dominant7" if seventh else "major", flats=True)


def progression_chords(
    key: Key, numerals: Iterable[str], *, style: str | None = None
) -> list[Chord]:
    """The key's chords for roman numerals (see :func:`numeral_chord`); in a loop
    style (:data:`LOOP_STYLES`) each unstable chord replaced by :func:`idiomatic`."""
    chords = []
    for numeral in numerals:
        chord = numeral_chord(key, numeral)
        if style in LOOP_STYLES:
            chord = idiomatic(key, chord, parse_numeral(numeral)[0])
        chords.append(chord)
    return chords


#: Common progressions per style, for keys with a major and a minor third. A
#: progression is bars separated by ``|``; chords in one bar share it evenly.
PROGRESSIONS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "pop": {
        "major": ("I | V | vi | IV", "vi | IV | I | V", "I | vi | IV | V", "I | IV | vi | V"),
        "minor": ("i | VI | III | VII", "i | VII | VI | V", "i | iv | VI | V"),
    },
    "rock": {
        "major": ("I | IV | V | IV", "I | V | IV | IV", "vi | IV | I | V", "I | IV | I | V"),
        "minor": ("i | VII | VI | V", "i | VI | VII | i", "i | iv | VII | i"),
    },
    "hip-hop": {
        "major": ("ii7 | V7 | Imaj7 | vi7", "Imaj7 | IVmaj7 | iii7 | vi7", "vi7 | ii7 | V7 | I"),
        "minor": ("i7 | VImaj7 | i7 | VImaj7", "i7 | iv7 | VI | V7", "i | VII | VI | V"),
    },
    "house": {
        "major": ("vi7 | IVmaj7 | Imaj7 | V", "ii7 | iii7 | IVmaj7 | V", "I | vi | ii7 | V"),
        "minor": ("i7 | VImaj7 | IIImaj7 | V7", "i7 | iv7 | V7 | i7", "i | VI | III | VII"),
    },
    "jazz": {
        "major": (
            "ii7 | V7 | Imaj7 | Imaj7",
            "Imaj7 vi7 | ii7 V7 | Imaj7 vi7 | ii7 V7",
            "iii7 | vi7 | ii7 | V7",
        ),
        "minor": ("ii7 | V7 | i7 | i7", "i7 | iv7 | ii7 | V7", "i7 VImaj7 | ii7 V7"),
    },
    "blues": {
        "major": ("I | I | I | I | IV | IV | I | I | V7 | IV | I | V7", "I | IV | I | V7"),
        "minor": ("i7 | i7 | i7 | i7 | iv7 | iv7 | i7 | i7 | V7 | iv7 | i7 | V7",),
    },
    "bossa": {
        "major": (
            "Imaj7 | Imaj7 | ii7 | V7",
            "Imaj7 | vi7 | ii7 | V7",
            "ii7 | V7 | Imaj7 | IVmaj7",
        ),
        "minor": ("i7 | iv7 | ii7 | V7", "i7 | i7 | iv7 | V7", "i7 | VImaj7 | ii7 | V7"),
    },
}

STYLES: Final = tuple(PROGRESSIONS)

_STYLE_ALIASES: Final = {
    "hiphop": "hip-hop",
    "hip hop": "hip-hop",
    "rap": "hip-hop",
    "trap": "hip-hop",
    "boom bap": "hip-hop",
    "lofi": "hip-hop",
    "lo-fi": "hip-hop",
    "bossa nova": "bossa",
    "bossanova": "bossa",
    "latin": "bossa",
    "samba": "bossa",
    "edm": "house",
    "techno": "house",
    "disco": "house",
    "dance": "house",
    "swing": "jazz",
    "shuffle": "blues",
    "punk": "rock",
    "metal": "rock",
    "ballad": "pop",
}


def normalize_style(style: str) -> str:
    """A style name or alias (``"Hip Hop"``, ``"bossa nova"``, ``"edm"``) → one of
    :data:`STYLES`. Raises :class:`ValueError` for an unknown style."""
    text = " ".join(style.lower().replace("_", " ").split())
    if text in PROGRESSIONS:
        return text
    if text in _STYLE_ALIASES:
        return _STYLE_ALIASES[text]
    raise ValueError(f"unknown style {style!r}; known styles: {', '.join(STYLES)}")


def style_in(prompt: str) -> str | None:
    """The first style (or alias) named in free text, else None."""
    words = " " + " ".join(re.sub(r"[^a-z0-9#\- ]", " ", prompt.lower()).split()) + " "
    found: list[tuple[int, str]] = []
    for name in (*PROGRESSIONS, *_STYLE_ALIASES):
        at = words.find(f" {name} ")
        if at >= 0:
            found.append((at, normalize_style(name)))
    return min(found)[1] if found else None


#: Loops that show off a mode's colour (dorian's major IV, lydian's major II,
#: mixolydian's bVII, phrygian's bII), used by the loop styles in those modes.
MODAL_PROGRESSIONS: Final[dict[str, tuple[str, ...]]] = {
    "dorian": ("i | IV | i | IV", "i | III | IV | i", "i | VII | IV | i", "i | ii | III | IV"),
    "phrygian": ("i | II | i | II", "i | II | III | II", "i | VII | VI | II", "i | iv | II | i"),
    "lydian": ("I | II | I | II", "I | II | vii | I", "I | II | V | I", "I | II | iii | II"),
    "mixolydian": ("I | VII | IV | I", "I | VII | I | IV", "I | v | IV | I", "I | IV | VII | IV"),
    "harmonic minor": ("i | iv | V | i", "i | VI | iv | V", "i | iv | VI | V"),
    "melodic minor": ("i | IV | V | i", "i | ii | IV | V", "i | IV | i | V"),
}


def progressions_for(style: str, key: Key) -> tuple[str, ...]:
    """The style's progressions fitting the key: for a loop style in a mode with its
    own loops (:data:`MODAL_PROGRESSIONS`) those, else by the quality of its third."""
    name = normalize_style(style)
    if name in LOOP_STYLES and key.mode in MODAL_PROGRESSIONS:
        return MODAL_PROGRESSIONS[key.mode]
    return PROGRESSIONS[name]["minor" if key.is_minor else "major"]


def parse_progression(key: Key, text: str, *, style: str | None = None) -> list[list[Chord]]:
    """``"ii7 V7 | Imaj7"`` → one list of chords per bar (see :data:`PROGRESSIONS` and
    :func:`progression_chords`)."""
    bars = [bar.split() for bar in text.split("|")]
    if any(not bar for bar in bars):
        raise ValueError(f"empty bar in progression {text!r}")
    return [progression_chords(key, bar, style=style) for bar in bars]


def tonic_chord(key: Key, *, seventh: bool, style: str | None = None) -> Chord:
    """The chord a closed phrase ends on: I (or i), a seventh chord when ``seventh``."""
    numeral = ("i" if key.is_minor else "I") + (
        "7" if seventh and key.is_minor else "maj7" if seventh else ""
    )
    return progression_chords(key, [numeral], style=style)[0]


@lru_cache(maxsize=1024)
def chord_scale(key: Key, chord: Chord) -> tuple[int, ...]:
    """The key's scale as it sounds over ``chord``: each chord tone takes the place of
    the scale degree its letter names (over E7 in A minor, G gives way to the leading
    tone G#; over a borrowed F in C lydian, F# gives way to F). The key's own scale
    when the chord's spelling does not line up with the key's."""
    scale = list(key.scale)
    root_degree = (
        _LETTER_ORDER.index(chord.symbol[0].upper())
        - _LETTER_ORDER.index(key.note_name(key.tonic)[0])
    ) % 7
    for index, tone in enumerate(chord.tones):
        degree = (root_degree + 2 * index) % 7
        if tone in key.scale and scale[degree] != tone:
            return key.scale
        scale[degree] = tone
    return tuple(scale)


def nearest_pitch(pc: int, target: float, low: int = 0, high: int = 127) -> int:
    """The pitch of class ``pc`` within [low, high] nearest ``target`` (lower on a tie)."""
    options = [p for p in range(low, high + 1) if p % 12 == pc % 12]
    if not options:
        raise ValueError(f"no pitch of class {pc} in {low}-{high}")
    return min(options, key=lambda p: (abs(p - target), p))


_ROMAN_UPPER: Final = ("I", "II", "III", "IV", "V", "VI", "VII")
_ROMAN_MARKS: Final = {
    "major": "",
    "minor": "",
    "diminished": "°",
    "augmented": "+",
    "major7": "maj7",
    "dominant7": "7",
    "minor7": "7",
    "half-diminished7": "ø7",
    "diminished7": "°7",
    "minor-major7": "maj7",
    "augmented-major7": "+maj7",
}


def roman(key: Key, chord: Chord) -> str:
    """The roman numeral of a diatonic chord in the key, upper case for a major third:
    ``Em7`` in A minor is ``v7``, ``E7`` in A harmonic minor ``V7``, ``Bm7b5`` ``iiø7``.
    A chord whose root is not in the scale is named by its symbol."""
    degree = key.degree_of(chord.root)
    if degree is None:
        return chord.symbol
    numeral = _ROMAN_UPPER[degree]
    if chord.intervals[1] == 3:
        numeral = numeral.lower()
    return numeral + _ROMAN_MARKS[chord.quality]
