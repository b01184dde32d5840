"""The ``singer`` engine: a small deterministic singing (and speaking) voice in numpy.

A request goes through three stages, each a module of its own:

1. :mod:`.lyrics`: text -> syllables (kana as written, kanji by their reading from a
   morphological analyzer, English from the CMU pronouncing dictionary);
2. :mod:`.planning`: notes and syllables -> a plan on the sample grid (phrases of
   segments: consonants, vowels) whose controls (pitch with vibrato and jitter,
   gliding formants, levels, breath) are computed for any span;
3. :mod:`.rendering`: the controls -> samples, chunk by chunk.

This module is the engine: :meth:`SingerEngine.blocks` plans in a worker thread (the
dictionaries load there on first use) and renders each :data:`RENDER_CHUNK` in a
worker thread too, so a long song never holds the event loop: the loop only moves
finished blocks. A note at MIDI 69 is heard at 440 Hz; a note too high for the rate
(from about MIDI 117 at 16 kHz) is silent. Voices: ``default`` (None, an adult male
voice), ``high`` and ``low`` (formants and speaking pitch moved).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator
from typing import Final

import anyio
import numpy as np

from yamabiko.engines.audio.base import AudioRequest, Samples
from yamabiko.engines.audio.lyrics import Syllable as Syllable
from yamabiko.engines.audio.lyrics import syllable as syllable
from yamabiko.engines.audio.lyrics import syllables as syllables
from yamabiko.engines.audio.planning import Plan as Plan
from yamabiko.engines.audio.planning import plan as plan
from yamabiko.engines.audio.rendering import RENDER_CHUNK as RENDER_CHUNK
from yamabiko.engines.audio.rendering import Renderer

NAME: Final = "singer"


RENDER_THREADS: Final = 1
"""Chunks rendered at once, per engine (per node): rendering holds the GIL for part
of each chunk, so more threads would not render faster, and every thread that wants
the GIL delays the event loop that paces every stream (docs/audio.md, "Pacing")."""


class SingerEngine:
    """The built-in engine: sings notes, speaks text (see the module docstring)."""

    name: str = NAME

    def __init__(self) -> None:
        self._limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anyio.CapacityLimiter
        ] = weakref.WeakKeyDictionary()

    def _limiter(self) -> anyio.CapacityLimiter:
        """The render slots of the running loop (a limiter belongs to one loop)."""
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(RENDER_THREADS)
        return limiter

    def duration_s(self, request: AudioRequest) -> float:
        """Exact: the end of the last note, or the spoken length. Plans the request:
        call it from a worker thread (the handler does)."""
        return plan(request).duration_s

    def duration_samples(self, request: AudioRequest) -> int:
        return plan(request).total_samples

    async def blocks(
        self, request: AudioRequest, block_samples: int
    ) -> AsyncGenerator[Samples, None]:
        if block_samples < 1:
            raise ValueError("block_samples must be >= 1")
        laid_out = await anyio.to_thread.run_sync(plan, request)
        renderer = Renderer(laid_out)
        total = laid_out.total_samples
        pending: list[np.ndarray] = []
        buffered = 0
        rendered = 0
        while rendered < total or buffered:
            while buffered < block_samples and rendered < total:
                stop = min(rendered + RENDER_CHUNK, total)
                chunk = await anyio.to_thread.run_sync(
                    renderer.render, rendered, stop, limiter=self._limiter()
                )
                np.clip(chunk, -1.0, 1.0, out=chunk)
                pending.append(chunk.astype(np.float32))
                buffered += chunk.size
                rendered = stop
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            # Every block is block_samples long but the last: slice the joined buffer.
            count = buffered if rendered >= total else buffered - buffered % block_samples
            for at in range(0, count, block_samples):
                yield joined[at : min(at + block_samples, count)]
            rest = joined[count:]
            pending = [rest] if rest.size else []
            buffered = rest.size
