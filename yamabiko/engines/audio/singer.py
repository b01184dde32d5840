"""The ``singer`` engine: a small deterministic singing (and speaking) voice in numpy.

Theory of operation. A request becomes a *plan* (:func:`plan`): validated, every note
(or spoken syllable) placed on the sample grid, and cut into *segments* (a consonant,
a vowel, a nasal coda...) grouped in *phrases* (runs of notes each starting where the
previous one ends: sung legato). Between phrases is exact silence (zeros). The plan
is small (a few numbers a segment); :class:`_Renderer` then renders it chunk by chunk
(:data:`RENDER_CHUNK` samples, fixed, so the samples do not depend on the block size).

Sound. A voiced segment reads a one-period wavetable (:func:`_wavetable`): harmonics
of a glottal-like source (amplitudes falling as ``k ** -tilt``, up to Nyquist) shaped
by the vowel's formants (:data:`FORMANTS`), at a phase accumulated from the pitch
curve, so the pitch moves (vibrato, glides) without a phase jump. Adjacent segments
cross-fade over a few milliseconds with the same phase (no click); the pitch glides
into a legato note over the same span. Consonants are short bursts of band-passed
noise (plosives, fricatives, affricates) or voiced murmurs (nasals, liquids, glides)
at the start of the note; a nasal coda (``n``, ``m``) hums at its end. Vibrato
(:data:`VIBRATO_CENTS` either way, a sine in log-frequency, so the average pitch
stays put) sets in after :data:`VIBRATO_DELAY_S` of a held note. A note at MIDI 69
is heard at 440 Hz; a note too high for the rate (from about MIDI 119 at 16 kHz)
is silent.

Lyrics. A note sings its ``lyric``: kana (hiragana or katakana, one mora), romaji
(``ka``, ``shi``, ``n``) or an English syllable; ``None`` takes the next syllable of
``AudioRequest.lyrics`` (or of ``text``, when notes and text come without lyrics);
``-``, ``ー``, an empty or unreadable lyric (emoji...) holds the previous vowel
(``a`` at first). ``text`` without notes is spoken: syllables on a declining pitch
(about 180 to 120 Hz for the default voice), rising at the end of a question, with
pauses at commas and full stops. Digits are read as English number words; letters of
other scripts (kanji...) get a neutral syllable each.

Voices: ``default`` (None), ``high`` and ``low`` (formants and speaking pitch moved).
"""

from __future__ import annotations

import asyncio
import math
import re
import unicodedata
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from yamabiko.engines.audio.base import (
    AudioEngineError,
    AudioRequest,
    Note,
    Samples,
    frequency,
    seconds_per_beat,
)

Floats = npt.NDArray[np.float64]

NAME: Final = "singer"
MIN_SAMPLE_RATE: Final = 8_000
MAX_SAMPLE_RATE: Final = 48_000
MAX_DURATION_S: Final = 3_600.0
"""The longest render the engine accepts (a song or a speech)."""
RENDER_CHUNK: Final = 8_192
"""Samples rendered at a time: the event loop gets control back at least this often."""

VIBRATO_CENTS: Final = 12.0
"""Vibrato depth either way: under 1% (17 cents), so a note is never more than 1% off."""
VIBRATO_RATE_HZ: Final = 5.5
VIBRATO_DELAY_S: Final = 0.2
VIBRATO_RAMP_S: Final = 0.3

ATTACK_S: Final = 0.03
RELEASE_S: Final = 0.06
LEGATO_S: Final = 0.04
"""The cross-fade and pitch glide from one sung vowel into the next."""

# ---------------------------------------------------------------------------------
# Phonetics: syllables, vowels, consonants.

Vowel = Literal["a", "i", "u", "e", "o", "N"]
"""The five vowels, and ``N``: the nasal mora (``ん``) and nasal codas."""


@dataclass(frozen=True, slots=True)
class Syllable:
    """Consonant phones before the vowel, the vowel (None: hold the previous one),
    consonant phones after it."""

    onset: tuple[str, ...] = ()
    vowel: Vowel | None = None
    coda: tuple[str, ...] = ()


HOLD: Final = Syllable()

FORMANTS: Final[dict[str, tuple[tuple[float, float, float], ...]]] = {
    # (centre Hz, bandwidth Hz, gain) for F1..F4; a neutral adult voice.
    "a": ((750, 90, 1.0), (1250, 110, 0.7), (2700, 170, 0.35), (3600, 250, 0.2)),
    "i": ((300, 70, 1.0), (2250, 120, 0.8), (3000, 170, 0.5), (3700, 250, 0.2)),
    "u": ((350, 80, 1.0), (1300, 110, 0.45), (2450, 160, 0.25), (3500, 250, 0.15)),
    "e": ((480, 80, 1.0), (1900, 120, 0.75), (2600, 170, 0.35), (3600, 250, 0.2)),
    "o": ((480, 80, 1.0), (850, 100, 0.75), (2600, 170, 0.25), (3500, 250, 0.15)),
    # Murmurs: the nasal (m, n, ng), the liquids (l, r).
    "N": ((270, 80, 1.0), (1100, 150, 0.15), (2500, 200, 0.1), (3500, 300, 0.05)),
    "L": ((360, 80, 1.0), (1300, 120, 0.4), (2700, 170, 0.3), (3500, 250, 0.15)),
    "R": ((400, 80, 1.0), (1400, 120, 0.4), (2000, 170, 0.3), (3300, 250, 0.15)),
}
_FORMANT_FLOOR: Final = 0.02

PhoneKind = Literal["stop", "fricative", "affricate", "murmur", "silence"]


@dataclass(frozen=True, slots=True)
class Phone:
    """A consonant: how long, voiced or not, its noise band, its murmur timbre."""

    kind: PhoneKind
    duration_s: float
    voiced: bool = False
    noise_hz: float = 0.0
    noise_width_hz: float = 0.0
    noise_gain: float = 0.0
    timbre: str = "N"
    level: float = 0.0
    """The voicing level during the phone (a murmur's loudness, a voice bar)."""


def _stop(ms: float, hz: float, width: float, gain: float, voiced: bool = False) -> Phone:
    return Phone("stop", ms / 1000, voiced, hz, width, gain, level=0.12 if voiced else 0.0)


def _fricative(ms: float, hz: float, width: float, gain: float, voiced: bool = False) -> Phone:
    return Phone("fricative", ms / 1000, voiced, hz, width, gain, level=0.18 if voiced else 0.0)


def _affricate(ms: float, hz: float, width: float, gain: float, voiced: bool = False) -> Phone:
    return Phone("affricate", ms / 1000, voiced, hz, width, gain, level=0.12 if voiced else 0.0)


def _murmur(ms: float, timbre: str, level: float) -> Phone:
    return Phone("murmur", ms / 1000, True, timbre=timbre, level=level)


PHONES: Final[dict[str, Phone]] = {
    "p": _stop(60, 1000, 1500, 0.25),
    "b": _stop(50, 900, 1200, 0.15, voiced=True),
    "t": _stop(60, 4000, 2500, 0.3),
    "d": _stop(50, 3500, 2500, 0.18, voiced=True),
    "k": _stop(70, 2200, 1500, 0.3),
    "g": _stop(55, 2000, 1500, 0.18, voiced=True),
    "s": _fricative(100, 7000, 3000, 0.12),
    "z": _fricative(80, 6500, 3000, 0.07, voiced=True),
    "sh": _fricative(100, 3300, 1600, 0.14),
    "f": _fricative(80, 4500, 5000, 0.1),
    "v": _fricative(60, 4000, 5000, 0.06, voiced=True),
    "th": _fricative(80, 5500, 5000, 0.08),
    "h": _fricative(70, 1600, 2400, 0.1),
    "ch": _affricate(90, 3400, 1600, 0.14),
    "ts": _affricate(80, 6500, 3000, 0.12),
    "j": _affricate(80, 3000, 1600, 0.09, voiced=True),
    "m": _murmur(60, "N", 0.45),
    "n": _murmur(55, "N", 0.45),
    "ng": _murmur(60, "N", 0.45),
    "r": _murmur(30, "R", 0.4),
    "l": _murmur(50, "L", 0.5),
    "w": _murmur(50, "u", 0.6),
    "y": _murmur(50, "i", 0.6),
    "q": Phone("silence", 0.05),  # a geminate's closure (っ, "kk")
}

_VOWELS: Final = "aiueo"

# Kana: the gojūon rows as romaji onsets, then the exceptions.
_KANA_ROWS: Final = (
    ("あいうえお", ""),
    ("かきくけこ", "k"),
    ("がぎぐげご", "g"),
    ("さしすせそ", "s"),
    ("ざじずぜぞ", "z"),
    ("たちつてと", "t"),
    ("だぢづでど", "d"),
    ("なにぬねの", "n"),
    ("はひふへほ", "h"),
    ("ばびぶべぼ", "b"),
    ("ぱぴぷぺぽ", "p"),
    ("まみむめも", "m"),
    ("らりるれろ", "r"),
)
_KANA: Final[dict[str, tuple[str, Vowel]]] = {
    kana: (onset, vowel)  # type: ignore[misc]
    for row, onset in _KANA_ROWS
    for kana, vowel in zip(row, _VOWELS, strict=True)
}
_KANA.update(
    {
        "し": ("sh", "i"),
        "じ": ("j", "i"),
        "ち": ("ch", "i"),
        "ぢ": ("j", "i"),
        "つ": ("ts", "u"),
        "づ": ("z", "u"),
        "ふ": ("f", "u"),
        "や": ("y", "a"),
        "ゆ": ("y", "u"),
        "よ": ("y", "o"),
        "わ": ("w", "a"),
        "ゐ": ("", "i"),
        "ゑ": ("", "e"),
        "を": ("", "o"),
        "ゔ": ("v", "u"),
        "ん": ("", "N"),
    }
)
_SMALL_Y: Final[dict[str, Vowel]] = {"ゃ": "a", "ゅ": "u", "ょ": "o"}
_SMALL_VOWEL: Final[dict[str, Vowel]] = {"ぁ": "a", "ぃ": "i", "ぅ": "u", "ぇ": "e", "ぉ": "o"}
_SOKUON: Final = "っ"
_LONG: Final = "ー〜"
_HOLD_MARKS: Final = "-_ー〜"

_ROMAJI_MORA: Final = re.compile(
    r"(ky|gy|sh|ch|ts|ny|hy|by|py|my|ry|dy|ty|j|k|g|s|z|t|d|n|h|b|p|m|y|r|w|f|v)?([aiueo])"
)
_ENGLISH_UNITS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("tch", ("ch",)),
    ("sch", ("s", "k")),
    ("sh", ("sh",)),
    ("ch", ("ch",)),
    ("th", ("th",)),
    ("ph", ("f",)),
    ("wh", ("w",)),
    ("ck", ("k",)),
    ("ng", ("ng",)),
    ("qu", ("k", "w")),
    ("kn", ("n",)),
    ("wr", ("r",)),
    ("gh", ()),
    ("x", ("k", "s")),
    ("q", ("k",)),
)
_ENGLISH_NUCLEI: Final[dict[str, Vowel]] = {
    "ee": "i",
    "ea": "i",
    "ie": "i",
    "ei": "e",
    "ey": "e",
    "ai": "e",
    "ay": "e",
    "oo": "u",
    "ou": "a",
    "ow": "o",
    "oa": "o",
    "oi": "o",
    "oy": "o",
    "au": "o",
    "aw": "o",
    "ue": "u",
    "ew": "u",
    "ui": "u",
    "eu": "u",
}
_QUESTION: Final = "?\uff1f"  # and the full-width one
_FULL_STOP: Final = ".!\u3002\uff01\u2026\n"  # and the ideographic full stop...
_COMMA: Final = ",;:\u3001\uff0c\uff1b\uff1a"  # and the ideographic comma...
_DIGITS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_BABBLE_ONSETS: Final = ("", "k", "s", "t", "n", "h", "m", "r")


def _hiragana(char: str) -> str:
    code = ord(char)
    return chr(code - 0x60) if 0x30A1 <= code <= 0x30F6 else char


def _is_kana(char: str) -> bool:
    return "\u3041" <= char <= "\u309f" or "\u30a0" <= char <= "\u30ff"


def _onset_phones(onset: str) -> tuple[str, ...]:
    if not onset:
        return ()
    if len(onset) == 2 and onset.endswith("y"):
        return (onset[0], "y")
    return (onset,)


def _kana_syllables(run: str) -> list[Syllable]:
    """Kana, one syllable a mora: small ゃゅょ and ぁぃぅぇぉ join the mora before,
    っ closes it, ー holds its vowel."""
    out: list[Syllable] = []
    for raw in run:
        char = _hiragana(raw)
        if char in _LONG:
            out.append(HOLD)
        elif char == _SOKUON:
            if out and out[-1].vowel is not None:
                out[-1] = Syllable(out[-1].onset, out[-1].vowel, (*out[-1].coda, "q"))
        elif char in _SMALL_Y and out and out[-1].vowel == "i" and out[-1].onset:
            onset = out[-1].onset
            if onset[0] not in ("sh", "ch", "j"):
                onset = (onset[0], "y")
            out[-1] = Syllable(onset, _SMALL_Y[char])
        elif char in _SMALL_VOWEL and out and out[-1].vowel is not None and out[-1].onset:
            out[-1] = Syllable(out[-1].onset, _SMALL_VOWEL[char])
        elif char in _SMALL_Y:
            out.append(Syllable(("y",), _SMALL_Y[char]))
        elif char in _SMALL_VOWEL:
            out.append(Syllable((), _SMALL_VOWEL[char]))
        elif char in _KANA:
            spelled, vowel = _KANA[char]
            out.append(Syllable(_onset_phones(spelled), vowel))
        # Anything else (ゝ, ・...): nothing to sing.
    return out


def _romaji_syllables(word: str) -> list[Syllable] | None:
    """Romaji morae (``sakura``, ``konnichiwa``, ``kitte``), or None when the word is
    not romaji."""
    out: list[Syllable] = []
    i = 0
    while i < len(word):
        match = _ROMAJI_MORA.match(word, i)
        if match:
            out.append(Syllable(_onset_phones(match.group(1) or ""), match.group(2)))  # type: ignore[arg-type]
            i = match.end()
        elif word[i] == "n":
            out.append(Syllable((), "N"))
            i += 1
        elif i + 1 < len(word) and word[i] == word[i + 1] and word[i] not in _VOWELS:
            if not out:
                return None
            out[-1] = Syllable(out[-1].onset, out[-1].vowel, (*out[-1].coda, "q"))
            i += 1
        elif word.startswith("tch", i) and out:  # matcha
            out[-1] = Syllable(out[-1].onset, out[-1].vowel, (*out[-1].coda, "q"))
            i += 1
        else:
            return None
    return out


def _english_units(word: str) -> list[tuple[str, tuple[str, ...] | Vowel]]:
    """The word as ("c", phones) consonant units and ("v", vowel) nuclei."""
    units: list[tuple[str, tuple[str, ...] | Vowel]] = []
    i = 0
    while i < len(word):
        char = word[i]
        is_vowel = char in _VOWELS or (
            char == "y" and i > 0 and (i + 1 == len(word) or word[i + 1] not in _VOWELS)
        )
        if is_vowel:
            pair = word[i : i + 2]
            if pair in _ENGLISH_NUCLEI:
                units.append(("v", _ENGLISH_NUCLEI[pair]))
                i += 2
            else:
                units.append(("v", "i" if char == "y" else char))  # type: ignore[arg-type]
                i += 1
            while i < len(word) and word[i] in _VOWELS:
                i += 1  # a longer vowel run: one nucleus
            continue
        for spelling, phones in _ENGLISH_UNITS:
            if word.startswith(spelling, i):
                units.append(("c", phones))
                i += len(spelling)
                break
        else:
            if char == "c":
                soft = i + 1 < len(word) and word[i + 1] in "eiy"
                units.append(("c", ("s",) if soft else ("k",)))
            elif char in PHONES:
                units.append(("c", (char,)))
            i += 1
            while i < len(word) and word[i] == char:
                i += 1  # "ll", "ss": one consonant
    return units


def _english_syllables(word: str) -> list[Syllable]:
    """A rough English syllabification: one syllable per vowel nucleus; one consonant
    between nuclei opens the next syllable, of two or more the first closes the
    previous one; a final silent ``e`` after one consonant is dropped (``time``)."""
    units = _english_units(word)
    nuclei = [i for i, (kind, _) in enumerate(units) if kind == "v"]
    if not nuclei:
        return []
    if (
        len(nuclei) >= 2
        and units[-1] == ("v", "e")
        and nuclei[-1] == len(units) - 1
        and nuclei[-2] == len(units) - 3
    ):
        units.pop()
        nuclei.pop()
    out: list[Syllable] = []
    onset: list[str] = [p for _, ps in units[: nuclei[0]] for p in ps]
    for n, index in enumerate(nuclei):
        end = nuclei[n + 1] if n + 1 < len(nuclei) else len(units)
        between = [units[j][1] for j in range(index + 1, end)]
        if n + 1 == len(nuclei):
            coda_units, next_onset = between, []
        elif len(between) <= 1:
            coda_units, next_onset = [], between
        else:
            coda_units, next_onset = between[:1], between[1:]
        coda = tuple(p for ps in coda_units for p in ps if p != "r")  # non-rhotic
        vowel: Vowel = units[index][1]  # type: ignore[assignment]
        if vowel == "u" and coda:
            vowel = "a"  # "sun", "up": a closed u is /ʌ/
        out.append(Syllable(tuple(onset), vowel, coda))
        onset = [p for ps in next_onset for p in ps]
    return out


def _latin_syllables(word: str) -> list[Syllable]:
    romaji = _romaji_syllables(word)
    return romaji if romaji is not None else _english_syllables(word)


def _babble(char: str) -> Syllable:
    code = ord(char)
    onset = _BABBLE_ONSETS[code % len(_BABBLE_ONSETS)]
    return Syllable(_onset_phones(onset), _VOWELS[code % 5])  # type: ignore[arg-type]


def _latin_letter(char: str) -> str:
    base = unicodedata.normalize("NFKD", char)
    letters = "".join(c for c in base if not unicodedata.combining(c)).lower()
    return letters if letters.isascii() and letters.isalpha() else ""


TokenKind = Literal["word", "clause", "sentence", "question"]


def _tokens(text: str) -> Iterator[tuple[TokenKind, list[Syllable]]]:
    """Words (as syllables) and pauses (``clause``: a comma; ``sentence``,
    ``question``: a full stop, a question mark)."""
    text = unicodedata.normalize("NFKC", text)
    i = 0
    while i < len(text):
        char = text[i]
        if _is_kana(char):
            j = i
            while j < len(text) and _is_kana(text[j]):
                j += 1
            yield "word", _kana_syllables(text[i:j])
            i = j
        elif _latin_letter(char) or char == "'":
            word = []
            while i < len(text) and (_latin_letter(text[i]) or text[i] == "'"):
                word.append(_latin_letter(text[i]))
                i += 1
            yield "word", _latin_syllables("".join(word))
        elif char in _HOLD_MARKS:
            j = i
            while j < len(text) and text[j] in _HOLD_MARKS:
                j += 1
            if (i == 0 or text[i - 1].isspace()) and (j == len(text) or text[j].isspace()):
                yield "word", [HOLD] * (j - i)  # "la - la": a held note
            i = j
        else:
            if char.isdigit() and unicodedata.digit(char, -1) >= 0:
                yield "word", _latin_syllables(_DIGITS[unicodedata.digit(char)])
            elif char in _QUESTION:
                yield "question", []
            elif char in _FULL_STOP:
                yield "sentence", []
            elif char in _COMMA:
                yield "clause", []
            elif char.isalpha():
                yield "word", [_babble(char)]
            i += 1  # spaces, emoji, symbols: nothing


def syllables(text: str) -> list[Syllable]:
    """The syllables of a lyric line, in order (``HOLD`` for ``-`` and ``ー``)."""
    return [s for kind, word in _tokens(text) if kind == "word" for s in word]


def syllable(lyric: str | None) -> Syllable:
    """The syllable a note sings for its ``lyric`` (the first one, for a longer lyric;
    HOLD for None, ``-`` or nothing readable)."""
    if lyric is None:
        return HOLD
    found = syllables(lyric)
    return found[0] if found else HOLD


# ---------------------------------------------------------------------------------
# The plan: events on the sample grid, segments, phrases.

Shape = Literal["burst", "hiss", "affricate"]


_NOISE_SHAPES: Final[dict[str, Shape]] = {
    "stop": "burst",
    "fricative": "hiss",
    "affricate": "affricate",
}


@dataclass(slots=True)
class _Noise:
    start: int
    stop: int
    center_hz: float
    width_hz: float
    gain: float
    seed: int
    shape: Shape


@dataclass(slots=True)
class _Segment:
    start: int
    stop: int
    lf_start: float
    """log2 of the pitch in Hz at ``start``; it moves linearly to ``lf_end``."""
    lf_end: float
    level: float
    timbre: str | None
    """A FORMANTS key; None: unvoiced (a closure, a voiceless fricative)."""
    fade: int
    """Samples of cross-fade (and pitch glide) from the previous segment, or of attack."""
    note_start: int
    vibrato: bool
    tilt: float
    release: int = 0
    table: Floats | None = None


@dataclass(slots=True)
class _Phrase:
    start: int
    stop: int
    segments: list[_Segment] = field(default_factory=list)
    noises: list[_Noise] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Voice:
    formant_scale: float
    speech_hz: tuple[float, float]
    """Speaking pitch: the start and the end of a sentence."""


VOICES: Final[dict[str, Voice]] = {
    "default": Voice(1.0, (180.0, 120.0)),
    "high": Voice(1.15, (300.0, 200.0)),
    "low": Voice(0.9, (130.0, 90.0)),
}


@dataclass(frozen=True, slots=True)
class Plan:
    sample_rate: int
    total_samples: int
    duration_s: float
    phrases: tuple[_Phrase, ...]
    voice: Voice


@dataclass(slots=True)
class _Event:
    """One sung note or spoken syllable, placed."""

    start: int
    stop: int
    lf_start: float
    lf_end: float
    syllable: Syllable  # vowel resolved
    level: float
    tilt: float
    vibrato: bool
    fit: bool
    """Squeeze the consonants into the note (sung); spoken syllables are sized for them."""


def _fail(message: str) -> AudioEngineError:
    return AudioEngineError(message)


def _validate(request: AudioRequest) -> Voice:
    rate = request.sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise _fail("sampleRate must be an integer")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise _fail(f"sampleRate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, not {rate}")
    voice = VOICES.get(request.voice or "default")
    if voice is None:
        raise _fail(f"the singer has no voice {request.voice!r} (voices: {', '.join(VOICES)})")
    if request.notes:
        tempo = request.tempo
        if not isinstance(tempo, int | float) or not math.isfinite(tempo) or tempo <= 0:
            raise _fail("tempo must be a positive number of beats a minute")
        for i, note in enumerate(request.notes):
            _validate_note(i, note)
    return voice


def _validate_note(i: int, note: Note) -> None:
    def number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if not isinstance(note.pitch, int) or isinstance(note.pitch, bool):
        raise _fail(f"note {i}: pitch must be an integer MIDI note 0..127")
    if not 0 <= note.pitch <= 127:
        raise _fail(f"note {i}: pitch must be 0..127, not {note.pitch}")
    if not number(note.start) or not math.isfinite(note.start) or note.start < 0:
        raise _fail(f"note {i}: start must be a number of beats >= 0")
    if not number(note.duration) or not math.isfinite(note.duration) or note.duration <= 0:
        raise _fail(f"note {i}: duration must be a number of beats > 0")
    if not isinstance(note.velocity, int) or not 1 <= note.velocity <= 127:
        raise _fail(f"note {i}: velocity must be 1..127")
    if note.lyric is not None and not isinstance(note.lyric, str):
        raise _fail(f"note {i}: lyric must be a string")


def _level(velocity: int) -> tuple[float, float]:
    """Loudness and spectral tilt for a velocity: louder is brighter."""
    v = velocity / 127
    return 0.7 * v**0.8, 1.45 - 0.45 * v


def _song_events(request: AudioRequest) -> tuple[list[_Event], float]:
    rate = request.sample_rate
    beat = seconds_per_beat(request.tempo)
    order = sorted(range(len(request.notes)), key=lambda i: (request.notes[i].start, i))
    spread = request.lyrics if request.lyrics is not None else request.text
    pending = iter(syllables(spread) if spread else ())
    vowel: Vowel = "a"
    events: list[_Event] = []
    end_s = 0.0
    for i in order:
        note = request.notes[i]
        start_s, stop_s = note.start * beat, (note.start + note.duration) * beat
        end_s = max(end_s, stop_s)
        if note.lyric is None:
            sung = next(pending, HOLD)
        elif note.lyric.strip() in ("-", "ー"):
            sung = HOLD
        else:
            sung = syllable(note.lyric)
        if sung.vowel is None:
            sung = Syllable((), vowel)  # held: no new consonant
        vowel = sung.vowel or vowel
        lf = math.log2(frequency(note.pitch))
        level, tilt = _level(note.velocity)
        start, stop = round(start_s * rate), round(stop_s * rate)
        if stop > start:
            events.append(_Event(start, stop, lf, lf, sung, level, tilt, True, True))
    return events, end_s


_SYLLABLE_S: Final = {"kana": 0.13, "latin": 0.15}
_PAUSE_S: Final = {"clause": 0.2, "sentence": 0.4, "question": 0.4}


def _speech_events(text: str, voice: Voice, rate: int) -> tuple[list[_Event], float]:
    """Syllables one after another, sentence by sentence, on a declining pitch."""
    sentences: list[tuple[list[list[tuple[Syllable, str | None]]], str]] = []
    clauses: list[list[tuple[Syllable, str | None]]] = [[]]
    for kind, word in _tokens(text):
        if kind == "word":
            for n, s in enumerate(word):
                clauses[-1].append((s, "word" if n == 0 else None))
        elif kind == "clause":
            if clauses[-1]:
                clauses.append([])
        elif any(clauses):
            sentences.append(([c for c in clauses if c], kind))
            clauses = [[]]
    if any(clauses):
        sentences.append(([c for c in clauses if c], "sentence"))

    events: list[_Event] = []
    position = 0
    level, tilt = _level(90)
    hi, lo = (math.log2(f) for f in voice.speech_hz)
    vowel: Vowel = "a"
    for s_index, (sentence, ending) in enumerate(sentences):
        count = sum(len(c) for c in sentence)
        done = 0
        top = hi + (0.1 if ending == "question" else 0.0)
        for c_index, clause in enumerate(sentence):
            for w_index, (sung, word_start) in enumerate(clause):
                last = done == count - 1
                x0, x1 = done / count, (done + 1) / count
                lf0, lf1 = top + (lo - top) * x0, top + (lo - top) * x1
                if word_start and w_index:
                    lf0 += 0.06  # a small accent at each word
                if last and ending == "question":
                    lf1 = lf0 + 0.55  # the rise of a question
                if sung.vowel is None:
                    sung = Syllable((), vowel)
                vowel = sung.vowel or vowel
                core = 0.09 if sung.vowel == "N" else _SYLLABLE_S["latin"]
                consonants = sum(
                    PHONES[p].duration_s for p in (*sung.onset, *sung.coda) if p in PHONES
                )
                length = round((core * (1.35 if last else 1.0) + consonants) * rate)
                events.append(
                    _Event(
                        position,
                        position + length,
                        lf0,
                        lf1,
                        sung,
                        level * (0.85 if last else 1.0),
                        tilt,
                        vibrato=False,
                        fit=False,
                    )
                )
                position += length
                done += 1
            if c_index + 1 < len(sentence):
                position += round(_PAUSE_S["clause"] * rate)
        if s_index + 1 < len(sentences):
            position += round(_PAUSE_S[ending] * rate)
    return events, position / rate


def _phrases(events: list[_Event], rate: int) -> list[_Phrase]:
    """Events chained into legato phrases: a note starting where (or, a little legato
    overlap, before) the last one stops continues its phrase, and cuts the last one
    short; notes starting together are sung by voices of their own, mixed."""
    chains: list[list[_Event]] = []
    sounding: list[list[_Event]] = []  # the chains a later note may still continue
    for event in sorted(events, key=lambda e: e.start):
        sounding = [chain for chain in sounding if chain[-1].stop >= event.start]
        for chain in sounding:
            last = chain[-1]
            if last.start < event.start <= last.stop:
                last.stop = event.start
                chain.append(event)
                break
        else:
            chains.append([event])
            sounding.append(chains[-1])
    phrases: list[_Phrase] = []
    seed = 0
    for chain in chains:
        phrase = _Phrase(chain[0].start, chain[-1].stop)
        for event in chain:
            seed = _segments(phrase, event, rate, seed)
        last_segment = phrase.segments[-1]
        span = last_segment.stop - last_segment.start
        last_segment.release = min(round(RELEASE_S * rate), span // 2)
        phrases.append(phrase)
    return phrases


def _segments(phrase: _Phrase, event: _Event, rate: int, seed: int) -> int:
    """Cut one event into segments (onset consonants, the vowel, the coda) appended to
    its phrase; returns the next noise seed."""
    length = event.stop - event.start
    onset = [PHONES[p] for p in event.syllable.onset if p in PHONES]
    coda = [PHONES[p] for p in event.syllable.coda if p in PHONES]
    onset_s = sum(p.duration_s for p in onset)
    coda_s = sum(p.duration_s for p in coda)
    scale_on = scale_co = 1.0
    if event.fit:
        if onset_s * rate > 0.35 * length:
            scale_on = 0.35 * length / (onset_s * rate)
        if coda_s * rate > 0.2 * length:
            scale_co = 0.2 * length / (coda_s * rate)
    onset_n = [round(p.duration_s * scale_on * rate) for p in onset]
    coda_n = [round(p.duration_s * scale_co * rate) for p in coda]
    vowel_n = length - sum(onset_n) - sum(coda_n)
    if vowel_n < 1:  # a note too short for its consonants: sing the vowel only
        onset, coda, onset_n, coda_n, vowel_n = [], [], [], [], length
    parts: list[tuple[Phone | None, int]] = [
        *zip(onset, onset_n, strict=True),
        (None, vowel_n),
        *zip(coda, coda_n, strict=True),
    ]
    span = event.lf_end - event.lf_start
    position = event.start
    for phone, count in parts:
        if count <= 0:
            continue
        start, stop = position, position + count
        position = stop
        lf0 = event.lf_start + span * (start - event.start) / length
        lf1 = event.lf_start + span * (stop - event.start) / length
        previous = phrase.segments[-1] if phrase.segments else None
        if phone is None:
            timbre: str | None = event.syllable.vowel
            level = event.level
            if previous is None:
                fade_s = ATTACK_S
            elif previous.timbre is None or previous.level < 0.15:
                fade_s = 0.01  # out of a closure or a hiss: quick
            elif previous.note_start == event.start:
                fade_s = 0.025  # out of a murmur of the same note
            else:
                fade_s = LEGATO_S
        else:
            voiced = phone.kind == "murmur" or phone.voiced
            timbre = phone.timbre if voiced else None
            level = phone.level * event.level / 0.6 if voiced else 0.0
            fade_s = 0.012
            if phone.kind != "murmur" and phone.kind != "silence":
                noise_start = {"stop": 0.6, "fricative": 0.0, "affricate": 0.35}[phone.kind]
                shape = _NOISE_SHAPES[phone.kind]
                phrase.noises.append(
                    _Noise(
                        start + int(noise_start * count),
                        stop,
                        phone.noise_hz,
                        phone.noise_width_hz,
                        phone.noise_gain * (0.4 + 0.6 * event.level / 0.7),
                        seed,
                        shape,
                    )
                )
                seed += 1
        fade = max(1, min(round(fade_s * rate), count // 2))
        phrase.segments.append(
            _Segment(
                start,
                stop,
                lf0,
                lf1,
                level,
                timbre if level > 0 else None,
                fade,
                event.start,
                event.vibrato,
                event.tilt,
            )
        )
    return seed


def plan(request: AudioRequest) -> Plan:
    """Validate and lay out a request (raises :class:`AudioEngineError`)."""
    voice = _validate(request)
    rate = request.sample_rate
    if request.notes:
        events, duration_s = _song_events(request)
    elif request.text is not None and request.text.strip():
        if len(request.text) > 100_000:
            raise _fail("the text is too long to speak")
        events, duration_s = _speech_events(request.text, voice, rate)
        if not events:
            raise _fail("the text has nothing the singer can pronounce")
    else:
        raise _fail("nothing to sing or say: give notes or text")
    if duration_s > MAX_DURATION_S:
        raise _fail(f"the audio would last {duration_s:.0f} s; at most {MAX_DURATION_S:.0f} s")
    phrases = _phrases(events, rate)
    total = round(duration_s * rate)
    return Plan(rate, total, duration_s, tuple(phrases), voice)


# ---------------------------------------------------------------------------------
# Rendering.


def _wavetable(timbre: str, f0: float, rate: int, tilt: float, formant_scale: float) -> Floats:
    """One period of the voice at about ``f0``: every harmonic under Nyquist, falling
    as ``k ** -tilt`` and shaped by the formants, peak-normalized; one sample longer
    than its period for interpolation."""
    top = f0 * 2 ** (VIBRATO_CENTS / 1200) * 1.01
    harmonics = int(0.5 * rate / top)
    if harmonics < 1:  # the note itself is above Nyquist: it cannot sound at this rate
        return np.zeros(2, dtype=np.float64)
    size = 256
    while size < 8 * harmonics and size < 1 << 16:
        size *= 2
    harmonics = min(harmonics, size // 2 - 1)
    k = np.arange(1, harmonics + 1, dtype=np.float64)
    hz = k * f0
    gain = np.full_like(hz, _FORMANT_FLOOR)
    for centre, width, amplitude in FORMANTS[timbre]:
        x = (hz - centre * formant_scale) / (0.5 * width * formant_scale)
        gain += amplitude / np.sqrt(1.0 + x * x)
    spectrum = np.zeros(size // 2 + 1, dtype=np.complex128)
    spectrum[1 : harmonics + 1] = -1j * k**-tilt * gain  # sines, phase 0
    period = np.fft.irfft(spectrum, size)
    period /= np.max(np.abs(period))
    return np.append(period, period[0])


def _ramp(count: int, offset: Floats) -> Floats:
    """A raised-cosine rise over ``count`` samples, at sample offsets ``offset``."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip((offset + 0.5) / count, 0.0, 1.0))


def _noise(noise: _Noise, rate: int) -> Floats:
    count = noise.stop - noise.start
    rng = np.random.default_rng(noise.seed)
    white = rng.standard_normal(count)
    hz = np.fft.rfftfreq(count, 1.0 / rate)
    centre = min(noise.center_hz, 0.42 * rate)
    width = min(noise.width_hz, 0.5 * rate)
    band = np.exp(-0.5 * ((hz - centre) / (0.5 * width)) ** 2)
    shaped = np.fft.irfft(np.fft.rfft(white) * band, count)
    shaped /= math.sqrt(float(np.mean(shaped * shaped))) + 1e-12
    t = np.arange(count, dtype=np.float64)
    if noise.shape == "burst":
        envelope = _ramp(max(1, round(0.002 * rate)), t) * np.exp(-t / (0.3 * count + 1))
    else:
        rise = max(1, round(count * (0.15 if noise.shape == "affricate" else 0.35)))
        envelope = _ramp(rise, t) * _ramp(max(1, round(0.25 * count)), count - 1 - t)
    return shaped * envelope * noise.gain


@dataclass(slots=True)
class _State:
    """A phrase being rendered: its phase (in periods) and its first segment still
    sounding."""

    phase: float = 0.0
    first: int = 0
    first_noise: int = 0


class _Renderer:
    """Renders a plan in consecutive chunks, keeping each phrase's phase."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rate = plan.sample_rate
        self._phrases = sorted(plan.phrases, key=lambda p: p.start)
        self._next = 0  # the first phrase not started yet
        self._active: list[tuple[_Phrase, _State]] = []

    def render(self, lo: int, hi: int) -> Floats:
        out = np.zeros(hi - lo, dtype=np.float64)
        while self._next < len(self._phrases) and self._phrases[self._next].start < hi:
            self._active.append((self._phrases[self._next], _State()))
            self._next += 1
        still: list[tuple[_Phrase, _State]] = []
        for phrase, state in self._active:
            a, b = max(lo, phrase.start), min(hi, phrase.stop)
            if b > a:
                out[a - lo : b - lo] += self._phrase(phrase, a, b, state)
            if phrase.stop > hi:
                still.append((phrase, state))
        self._active = still
        return out

    def _phrase(self, phrase: _Phrase, lo: int, hi: int, state: _State) -> Floats:
        rate = self.rate
        segments = phrase.segments
        n = np.arange(lo, hi, dtype=np.float64)
        lf = np.empty(hi - lo, dtype=np.float64)
        used: list[int] = []
        for i in range(state.first, len(segments)):
            seg = segments[i]
            if seg.start >= hi:
                break
            used.append(i)
            a, b = max(seg.start, lo), min(seg.stop, hi)
            if b <= a:
                continue
            at = n[a - lo : b - lo]
            own = self._pitch(seg, at)
            if i and at[0] < seg.start + seg.fade:
                prev = segments[i - 1]
                w = _ramp(seg.fade, at - seg.start)
                own = w * own + (1.0 - w) * self._pitch(prev, at, end=True)
            lf[a - lo : b - lo] = own
        while state.first < len(segments) and self._reach(segments, state.first) <= hi:
            state.first += 1  # done with after this chunk
        phases = state.phase + np.cumsum(np.exp2(lf)) / rate
        np.mod(phases, 1.0, out=phases)
        state.phase = float(phases[-1])

        voiced = np.zeros(hi - lo, dtype=np.float64)
        for i in used:
            seg = segments[i]
            if seg.timbre is None:
                continue
            nxt = segments[i + 1] if i + 1 < len(segments) else None
            reach = self._reach(segments, i)
            a, b = max(seg.start, lo), min(reach, hi)
            if b <= a:
                continue
            at = n[a - lo : b - lo]
            weight = np.full(b - a, seg.level, dtype=np.float64)
            if at[0] < seg.start + seg.fade:
                weight *= _ramp(seg.fade, at - seg.start)
            if nxt is not None and at[-1] >= nxt.start:
                weight *= 1.0 - _ramp(nxt.fade, at - nxt.start) * (at >= nxt.start)
            if seg.release and at[-1] >= seg.stop - seg.release:
                weight *= _ramp(seg.release, seg.stop - 1 - at)
            voiced[a - lo : b - lo] += weight * self._read(seg, phases[a - lo : b - lo])
            if reach <= hi:
                seg.table = None  # not needed again

        noises = phrase.noises
        for noise in noises[state.first_noise :]:
            if noise.start >= hi:
                break
            a, b = max(noise.start, lo), min(noise.stop, hi)
            if b > a:
                burst = _noise(noise, rate)  # the same seed each time: the same noise
                voiced[a - lo : b - lo] += burst[a - noise.start : b - noise.start]
        while state.first_noise < len(noises) and noises[state.first_noise].stop <= hi:
            state.first_noise += 1
        return voiced

    @staticmethod
    def _reach(segments: list[_Segment], i: int) -> int:
        """Where segment ``i`` stops sounding: the end of the next one's fade-in."""
        if i + 1 < len(segments):
            return segments[i + 1].start + segments[i + 1].fade
        return segments[i].stop

    def _pitch(self, seg: _Segment, at: Floats, end: bool = False) -> Floats:
        """log2 Hz of a segment at samples ``at`` (``end``: held at its last pitch, for
        the glide out of it)."""
        if end or seg.lf_start == seg.lf_end:
            lf = np.full(at.shape, seg.lf_end)
        else:
            u = (at - seg.start) / (seg.stop - seg.start)
            lf = seg.lf_start + (seg.lf_end - seg.lf_start) * u
        if seg.vibrato:
            t = (at - seg.note_start) / self.rate
            depth = np.clip((t - VIBRATO_DELAY_S) / VIBRATO_RAMP_S, 0.0, 1.0)
            if depth[-1] > 0:
                lf += (VIBRATO_CENTS / 1200) * depth * np.sin(2 * np.pi * VIBRATO_RATE_HZ * t)
        return lf

    def _read(self, seg: _Segment, phases: Floats) -> Floats:
        table = seg.table
        if table is None:
            assert seg.timbre is not None
            f0 = 2.0 ** max(seg.lf_start, seg.lf_end)
            table = _wavetable(seg.timbre, f0, self.rate, seg.tilt, self.plan.voice.formant_scale)
            seg.table = table
        size = table.size - 1
        position = phases * size
        index = position.astype(np.intp)
        np.minimum(index, size - 1, out=index)
        frac = position - index
        low = table[index]
        return low + frac * (table[index + 1] - low)


class SingerEngine:
    """The built-in engine: sings notes, speaks text (see the module docstring)."""

    name: str = NAME

    def duration_s(self, request: AudioRequest) -> float:
        """Exact: the end of the last note, or the spoken length."""
        return plan(request).duration_s

    def duration_samples(self, request: AudioRequest) -> int:
        return plan(request).total_samples

    async def blocks(
        self, request: AudioRequest, block_samples: int
    ) -> AsyncGenerator[Samples, None]:
        if block_samples < 1:
            raise ValueError("block_samples must be >= 1")
        laid_out = plan(request)
        renderer = _Renderer(laid_out)
        total = laid_out.total_samples
        buffer = np.zeros(0, dtype=np.float64)
        rendered = sent = 0
        while sent < total:
            want = min(block_samples, total - sent)
            while buffer.size < want:
                stop = min(rendered + RENDER_CHUNK, total)
                buffer = np.concatenate((buffer, renderer.render(rendered, stop)))
                rendered = stop
                if buffer.size < want:
                    await asyncio.sleep(0)
            block, buffer = buffer[:want], buffer[want:]
            sent += want
            yield np.clip(block, -1.0, 1.0).astype(np.float32)
            await asyncio.sleep(0)
