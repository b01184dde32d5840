"""The audio engine interface: what to sing or say in, float32 sample blocks out.

Theory of operation. The handler (``handlers/audio.py``) asks an engine for an
:class:`AudioRequest` and iterates :meth:`AudioEngine.blocks`; each block is encoded
(:mod:`.encode`) into one frame of the requested format and published as one stream
item. An engine knows nothing of frames, formats, sockets or pacing.

Guarantees of :meth:`AudioEngine.blocks`:

- it yields mono ``float32`` numpy arrays with values in [-1, 1], each of exactly
  ``block_samples`` samples except the last (1 .. ``block_samples``); for engines that
  know their length up front (``singer``, ``onnx``) their total is
  ``round(duration_s * sample_rate)``;
- the same request gives the same samples (``singer`` and ``onnx`` are deterministic);
- closing the generator (``aclose()``) or cancelling the task iterating it stops the
  work: an engine running off the event loop lets its current chunk finish and
  drops it;
- a request the engine cannot render raises :class:`AudioEngineError` before the first
  block (its message is safe to show a client).

Time: note ``start`` and ``duration`` are in beats at ``tempo`` (beats per minute); a
note at MIDI pitch 69 sounds at 440 Hz (``frequency(69) == 440.0``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]


class AudioEngineError(Exception):
    """The engine cannot render this request (no model, an unsupported voice...)."""


class Note(msgspec.Struct, frozen=True, kw_only=True):
    """A sung note: MIDI ``pitch`` (0-127), ``start`` and ``duration`` in beats,
    ``velocity`` 1-127, and the ``lyric`` syllable sung on it (kana, romaji or English;
    None or ``-`` holds the previous vowel)."""

    pitch: int
    start: float
    duration: float
    velocity: int = 100
    lyric: str | None = None


class AudioRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``notes`` (with their ``lyric``s, or ``lyrics`` spread over them, one syllable a
    note) are sung; ``text`` without notes is spoken. ``voice`` picks an engine's
    voice (None: its default)."""

    text: str | None = None
    lyrics: str | None = None
    notes: tuple[Note, ...] = ()
    tempo: float = 120.0
    voice: str | None = None
    sample_rate: int = 24_000

    def __repr__(self) -> str:
        # Never the text: reprs end up in logs.
        return f"AudioRequest(notes={len(self.notes)}, text={self.text is not None})"


def frequency(pitch: float) -> float:
    """The frequency of a MIDI pitch in Hz (equal temperament, A4 = 69 = 440 Hz)."""
    return float(440.0 * 2.0 ** ((pitch - 69) / 12))


def seconds_per_beat(tempo: float) -> float:
    return 60.0 / tempo


class AudioEngine(Protocol):
    name: str
    """``singer``, ``onnx``, ``tts``: what ``audio/synthesize {engine}`` names."""

    def duration_s(self, request: AudioRequest) -> float:
        """The rendered length in seconds, as well as the engine can tell before
        rendering (``estimatedDurationMs``; exact for ``singer``)."""
        ...

    def blocks(self, request: AudioRequest, block_samples: int) -> AsyncGenerator[Samples, None]:
        """The samples, in blocks (see the module docstring)."""
        ...
