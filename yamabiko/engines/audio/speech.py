"""What the speaking engines (``tts``, ``piper``) share: the text a request says, its
estimated length, and cutting a stream of sample arrays into blocks."""

from __future__ import annotations

import re
from typing import Final

import numpy as np

from yamabiko.engines.audio.base import AudioEngineError, AudioRequest, Samples

CHARS_PER_SECOND: Final = 14.0
"""A typical speaking rate for alphabetic text (about 150 words a minute)."""
WIDE_CHARS_PER_SECOND: Final = 7.0
"""For kana and kanji, about one mora or character every 140 ms."""
_WIDE: Final = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def spoken_text(request: AudioRequest, engine: str = "tts") -> str:
    """What a speaking engine says for a request: ``text``, else (without notes) the
    lyrics with their whitespace collapsed. Raises :class:`AudioEngineError` for notes
    without text: ``engine`` does not sing."""
    if request.text is not None:
        return request.text
    if request.notes:
        raise AudioEngineError(f"{engine} speaks text and does not sing notes: use singer or onnx")
    if request.lyrics is not None:
        return " ".join(request.lyrics.split())
    raise AudioEngineError(f"{engine}: nothing to say (give text or lyrics)")


def estimated_seconds(text: str) -> float:
    """How long ``text`` takes to say at a typical speaking rate."""
    wide = len(_WIDE.findall(text))
    return (len(text) - wide) / CHARS_PER_SECOND + wide / WIDE_CHARS_PER_SECOND


class Blocker:
    """Cuts a stream of arrays into blocks of exactly ``size`` samples."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._parts: list[Samples] = []
        self._count = 0

    def feed(self, samples: Samples) -> list[Samples]:
        if len(samples) == 0:
            return []
        self._parts.append(samples)
        self._count += len(samples)
        if self._count < self._size:
            return []
        joined = np.concatenate(self._parts)
        whole = len(joined) - len(joined) % self._size
        blocks = [joined[i : i + self._size] for i in range(0, whole, self._size)]
        rest = joined[whole:]
        self._parts = [rest] if len(rest) else []
        self._count = len(rest)
        return blocks

    def flush(self) -> Samples | None:
        if not self._count:
            return None
        rest = np.concatenate(self._parts)
        self._parts = []
        self._count = 0
        return rest
