"""Japanese words: a morphological analyzer over a bounded window of text.

Japanese has no spaces, so where a word ends is the analyzer's call: MeCab (through
``fugashi``) with the UniDic dictionary that ``unidic-lite`` ships inside its wheel
(nothing downloads at run time; see docs/decisions/0030-japanese-analyzer.md). The
ghost engine reads words, not characters, so a suggestion never ends or starts inside
a word.

Cost is bounded by the caller's window, never by the document: :func:`words` reads at
most :data:`MAX_WINDOW` characters (about 30 to 60 microseconds for a window of 32).
The tagger is built once per process, on first use (a few hundred milliseconds: the
dictionary is memory-mapped), and is only called from one thread at a time (the
event loop), as MeCab requires.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Final, Protocol

MAX_WINDOW: Final = 64
"""The most characters one call analyzes."""


class _Node(Protocol):
    surface: str


class _Tagger(Protocol):
    def __call__(self, text: str) -> list[_Node]: ...


@cache
def _tagger() -> _Tagger:
    import fugashi  # imported here: the English-only paths never pay for the dictionary

    tagger: _Tagger = fugashi.Tagger()
    return tagger


def warm() -> None:
    """Loads the dictionary now rather than on the first Japanese keystroke."""
    _tagger()


def normalize(text: str) -> str:
    """NFKC (full-width Latin to ASCII, half-width kana to full width), as the corpus;
    a lone surrogate (which a client may send) becomes "?", which MeCab can read."""
    return unicodedata.normalize("NFKC", text).encode("utf-8", "replace").decode("utf-8")


def words(text: str) -> list[str]:
    """The words of the last :data:`MAX_WINDOW` characters of ``text`` (normalized),
    in order; whitespace is dropped. The first word may be cut by the window: the
    caller knows whether it was."""
    window = normalize(text[-MAX_WINDOW:])
    if not window.strip():
        return []
    return [node.surface for node in _tagger()(window) if node.surface.strip()]
