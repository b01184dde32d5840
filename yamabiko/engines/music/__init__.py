"""The built-in music engine: a music-theory generator of drum patterns, basslines,
chord progressions, melodies and harmonies, deterministic for a seed (docs/agent.md,
``music/generate``). Pure Python; it knows nothing of sockets or handlers.

Modules: :mod:`.theory` (keys, scales, chords, progressions), :mod:`.voicing` (voice
leading), :mod:`.base` (notes, results, feel), :mod:`.drums`, :mod:`.lines` (pitched
parts) and :mod:`.generate` (the entry point). docs/agent.md states what it guarantees."""

from __future__ import annotations

from .base import KINDS, ChordEvent, Feel, Generated, Kind, Note, beats_per_bar, feel_of
from .generate import (
    DEFAULT_BARS,
    DEFAULT_KEY,
    DEFAULT_STYLE,
    DEFAULT_TEMPO,
    MAX_BARS,
    generate,
    parse_time_signature,
)
from .theory import STYLES, Chord, Key, chord_tones, parse_chord, parse_key

__all__ = [
    "DEFAULT_BARS",
    "DEFAULT_KEY",
    "DEFAULT_STYLE",
    "DEFAULT_TEMPO",
    "KINDS",
    "MAX_BARS",
    "STYLES",
    "Chord",
    "ChordEvent",
    "Feel",
    "Generated",
    "Key",
    "Kind",
    "Note",
    "beats_per_bar",
    "chord_tones",
    "feel_of",
    "generate",
    "parse_chord",
    "parse_key",
    "parse_time_signature",
]
