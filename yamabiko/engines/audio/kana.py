"""Kana: the one table from hiragana and katakana to romaji, and mora splitting.

Shared by the ``singer`` lyrics (:mod:`.lyrics`) and the ``onnx`` front end
(:mod:`.onnx`), so that a kana lyric is read the same way by every engine. Kana are
read as written (``は`` is ``ha``); reading kanji, and particles as pronounced, is
the morphological analyzer's job (:mod:`.lyrics`).

Rules: one mora a syllable; a small ``ゃゅょ`` or ``ぁぃぅぇぉゎ`` joins the kana before
it (``きゃ`` -> ``kya``, ``しゃ`` -> ``sha``, ``ふぁ`` -> ``fa``); ``ん`` is ``n``; ``っ``
is ``cl`` (a closure: the next consonant is doubled); ``ー`` holds the vowel before
(:data:`HOLD`).
"""

from __future__ import annotations

import unicodedata
from typing import Final

HOLD: Final = "-"
"""The syllable that holds the previous vowel (``ー``, or ``-`` in a lyric)."""
CLOSURE: Final = "cl"
"""The romaji of ``っ``."""

_PAIRS: Final = (
    "あa いi うu えe おo かka きki くku けke こko さsa しshi すsu せse そso たta ちchi "
    "つtsu てte とto なna にni ぬnu ねne のno はha ひhi ふfu へhe ほho まma みmi むmu "
    "めme もmo やya ゆyu よyo らra りri るru れre ろro わwa ゐi ゑe をo んn がga ぎgi "
    "ぐgu げge ごgo ざza じji ずzu ぜze ぞzo だda ぢji づzu でde どdo ばba びbi ぶbu "
    "べbe ぼbo ぱpa ぴpi ぷpu ぺpe ぽpo ゔvu っcl ぁa ぃi ぅu ぇe ぉo ゃya ゅyu ょyo ゎwa"
)
_HIRAGANA: Final = {pair[0]: pair[1:] for pair in _PAIRS.split()}
ROMAJI: Final[dict[str, str]] = _HIRAGANA | {chr(ord(k) + 0x60): r for k, r in _HIRAGANA.items()}
"""Hiragana and katakana (the katakana block is the hiragana block plus 0x60) to
romaji."""
SMALL_Y: Final = frozenset("ゃゅょャュョ")
SMALL: Final = SMALL_Y | frozenset("ぁぃぅぇぉゎァィゥェォヮ")
LONG_MARKS: Final = "ー〜"
_VOWEL_LETTERS: Final = "aeiou"


def is_kana(char: str) -> bool:
    """A kana letter this table reads, or the long mark."""
    return char in ROMAJI or char in LONG_MARKS


def morae(text: str) -> list[str]:
    """``text`` (kana) as morae: a small kana joins the one before it, ``ー`` is
    :data:`HOLD`; characters that are not kana are dropped."""
    out: list[str] = []
    for char in text:
        if char in LONG_MARKS:
            out.append(HOLD)
        elif char in SMALL and out and out[-1][-1:] in ROMAJI and out[-1][-1:] not in SMALL:
            out[-1] += char
        elif char in ROMAJI:
            out.append(char)
    return out


def split_syllables(lyrics: str) -> list[str]:
    """``lyrics`` as syllables, one a note: whitespace-separated words, kana split into
    morae; a run of other letters inside a word is one syllable."""
    syllables: list[str] = []
    for word in lyrics.split():
        latin = ""
        for char in word:
            if not is_kana(char):
                latin += char
                continue
            if latin:
                syllables.append(latin)
                latin = ""
            if char in LONG_MARKS:
                syllables.append(HOLD)
            elif char in SMALL and syllables and syllables[-1][-1:] in ROMAJI:
                syllables[-1] += char
            else:
                syllables.append(char)
        if latin:
            syllables.append(latin)
    return syllables


def romanize(syllable: str) -> str:
    """Kana in ``syllable`` as romaji (``きゃ`` -> ``kya``, ``しゃ`` -> ``sha``, ``ふぁ`` ->
    ``fa``, ``っ`` -> ``cl``); other characters lower-cased and kept."""
    out = ""
    for char in unicodedata.normalize("NFKC", syllable):
        romaji = ROMAJI.get(char)
        if romaji is None:
            out += char.lower()
        elif char in SMALL and out and out != CLOSURE:
            vowel = romaji[-1]
            base = out.rstrip(_VOWEL_LETTERS)
            if char in SMALL_Y and not base.endswith(("sh", "ch", "j")):
                base += "y"
            out = base + vowel
        else:
            out += romaji
    return out
