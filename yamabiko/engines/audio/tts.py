"""The ``tts`` engine: text spoken by OpenAI's speech API (or a compatible server's).

Theory of operation. :meth:`TtsEngine.blocks` asks the official SDK for
``audio.speech.with_streaming_response.create(response_format="pcm")``, whose body is
raw PCM: 16-bit signed little-endian mono at 24 kHz. HTTP chunks split samples
anywhere, so the odd byte is carried to the next chunk; samples become float32, are
resampled (linear interpolation, :class:`_Resampler`) when the request wants another
rate, and are cut into blocks of exactly ``block_samples`` (:class:`.speech.Blocker`),
the remainder carried too. Nothing is buffered beyond one chunk and one block.

The response is read inside ``async with``: closing the generator or cancelling the
task iterating it closes the HTTP stream, so the provider stops generating at once.

What is spoken: ``text``, or when there is none and no notes, ``lyrics`` (their
syllables joined by spaces). Notes are not sung: notes without text are refused. The length is known
only when the stream ends, so :meth:`TtsEngine.duration_s` estimates it from the text.
Provider errors become :class:`AudioEngineError` with a message safe to show a client (a
refused key's answer is left out: OpenAI quotes part of the key in it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final

import httpx2
import numpy as np
import openai

from yamabiko.engines.audio.base import AudioEngineError, AudioRequest, Samples
from yamabiko.engines.audio.speech import Blocker, estimated_seconds, spoken_text
from yamabiko.engines.llm.clients import shared_ssl_context
from yamabiko.engines.llm.openai import DEFAULT_BASE_URL, PLACEHOLDER_KEY, translate
from yamabiko.engines.llm.providers import is_custom_openai_url

NAME: Final = "tts"
SOURCE_RATE: Final = 24_000
"""OpenAI's PCM sample rate (the only one it sends)."""
DEFAULT_MODEL: Final = "gpt-4o-mini-tts"
DEFAULT_VOICE: Final = "alloy"
MAX_INPUT_CHARS: Final = 4096
"""The speech API's limit on ``input``."""
_INT16_SCALE: Final = 1.0 / 32768.0


class TtsEngine:
    """Speech from OpenAI. ``api_key``: ``OPENAI_API_KEY`` (None is fine for a custom
    ``base_url``: a compatible server may want no key); ``base_url``: ``OPENAI_BASE_URL``
    or the public API; ``model`` and ``voice``: the defaults (``AudioRequest.voice``
    overrides the voice); ``timeout``: seconds for connecting and between reads."""

    name = NAME

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        voice: str = DEFAULT_VOICE,
        timeout: float = 60.0,
    ) -> None:
        self._api_key = api_key
        self._custom_base_url = is_custom_openai_url(base_url)
        self._base_url = base_url or DEFAULT_BASE_URL
        self.model = model
        self.voice = voice
        self._timeout = timeout
        self._client: openai.AsyncOpenAI | None = None

    @property
    def needs_key(self) -> bool:
        """False for a custom ``base_url``."""
        return not self._custom_base_url

    def _get_client(self) -> openai.AsyncOpenAI:
        # Built on first use: building one loads a trust store (see llm.clients).
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or PLACEHOLDER_KEY,
                base_url=self._base_url,
                max_retries=0,
                timeout=self._timeout,
                http_client=openai.DefaultAsyncHttpxClient(verify=shared_ssl_context()),
            )
        return self._client

    def duration_s(self, request: AudioRequest) -> float:
        """An estimate from the text's length at a typical speaking rate."""
        return estimated_seconds(spoken_text(request))

    async def blocks(
        self, request: AudioRequest, block_samples: int
    ) -> AsyncGenerator[Samples, None]:
        """Raises :class:`AudioEngineError` on the first iteration, before any I/O, for a
        request it cannot say (:meth:`duration_s` already does for notes alone)."""
        text = spoken_text(request)
        if not text.strip():
            raise AudioEngineError("tts: nothing to say (the text is empty)")
        if len(text) > MAX_INPUT_CHARS:
            raise AudioEngineError(f"tts: the text is longer than {MAX_INPUT_CHARS} characters")
        if block_samples < 1:
            raise AudioEngineError("tts: block_samples must be at least 1")
        if request.sample_rate < 1:
            raise AudioEngineError("tts: the sample rate must be positive")
        if not self._api_key and self.needs_key:
            raise AudioEngineError("tts: no OpenAI key: set OPENAI_API_KEY")
        voice = request.voice or self.voice
        sample_rate = request.sample_rate
        resampler = _Resampler(SOURCE_RATE, sample_rate) if sample_rate != SOURCE_RATE else None
        blocker = Blocker(block_samples)
        carry = b""
        try:
            async with self._get_client().audio.speech.with_streaming_response.create(
                model=self.model, voice=voice, input=text, response_format="pcm"
            ) as response:
                async for chunk in response.iter_bytes():
                    data = carry + chunk
                    whole = len(data) & ~1
                    carry = data[whole:]
                    samples = pcm16_to_float(data[:whole])
                    if resampler is not None:
                        samples = resampler.feed(samples)
                    for block in blocker.feed(samples):
                        yield block
        except (openai.APIError, httpx2.TransportError) as exc:
            raise AudioEngineError(f"tts: {translate(exc).message}") from None
        # A last odd byte is half a sample: dropped.
        if resampler is not None:
            for block in blocker.feed(resampler.flush()):
                yield block
        rest = blocker.flush()
        if rest is not None:
            yield rest

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def pcm16_to_float(data: bytes) -> Samples:
    """16-bit signed little-endian PCM (an even number of bytes) as float32 in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) * np.float32(_INT16_SCALE)


class _Resampler:
    """Streaming linear interpolation from ``src`` to ``dst`` Hz.

    Output sample ``k`` lies at source position ``k * src / dst``, computed in integers
    so that it does not drift over a long stream. Each feed emits every output whose two
    neighbours have arrived; :meth:`flush` emits the rest, holding the last sample, so
    that ``n`` source samples give exactly ``round(n * dst / src)``.
    """

    def __init__(self, src: int, dst: int) -> None:
        self._src = src
        self._dst = dst
        self._buffer: Samples = np.zeros(0, dtype=np.float32)
        self._base = 0
        """The source index of ``_buffer[0]``."""
        self._k = 0
        """The next output index."""

    def _emit(self, end: int, available: int) -> Samples:
        ks = np.arange(self._k, end, dtype=np.int64) * self._src
        index = ks // self._dst
        frac = ((ks % self._dst) / self._dst).astype(np.float32)
        left = np.minimum(index, available - 1) - self._base
        right = np.minimum(index + 1, available - 1) - self._base
        out: Samples = self._buffer[left] * (np.float32(1.0) - frac) + self._buffer[right] * frac
        self._k = end
        return out

    def feed(self, samples: Samples) -> Samples:
        self._buffer = np.concatenate((self._buffer, samples))
        available = self._base + len(self._buffer)
        if available < 2:
            return np.zeros(0, dtype=np.float32)
        # Outputs k with k * src // dst + 1 <= available - 1.
        end = -(-(available - 1) * self._dst // self._src)
        out = self._emit(end, available) if end > self._k else np.zeros(0, dtype=np.float32)
        keep = min(self._k * self._src // self._dst, available - 1)
        self._buffer = self._buffer[keep - self._base :]
        self._base = keep
        return out

    def flush(self) -> Samples:
        available = self._base + len(self._buffer)
        total = (2 * available * self._dst + self._src) // (2 * self._src)
        if available == 0 or total <= self._k:
            return np.zeros(0, dtype=np.float32)
        return self._emit(total, available)
