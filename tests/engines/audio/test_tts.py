"""The ``tts`` engine against the fake speech API, through the real OpenAI SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import openai
import pytest

from tests.fakes import FakeSpeech, Script
from yamabiko.engines.audio.base import AudioEngineError, AudioRequest, Note, Samples
from yamabiko.engines.audio.speech import Blocker
from yamabiko.engines.audio.tts import (
    SOURCE_RATE,
    TtsEngine,
    _Resampler,
    pcm16_to_float,
)

TEXT = "The kick sits under the bass; the snare answers on two and four, every bar. " * 2
"""152 characters: 1.52 s of tone at the fake's 10 ms a character."""


@asynccontextmanager
async def speech(
    script: Script | None = None, **engine: object
) -> AsyncIterator[tuple[FakeSpeech, TtsEngine]]:
    async with FakeSpeech(script) as fake:
        options: dict[str, object] = {"api_key": "sk-test", "base_url": fake.url, "timeout": 5.0}
        options.update(engine)
        tts = TtsEngine(**options)  # type: ignore[arg-type]
        try:
            yield fake, tts
        finally:
            await tts.aclose()
        assert fake.errors == []


async def collect(tts: TtsEngine, request: AudioRequest, block: int) -> list[Samples]:
    return [b async for b in tts.blocks(request, block)]


def peak_hz(samples: Samples, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def test_text_streams_in_exact_blocks_with_the_providers_samples() -> None:
    async with speech() as (fake, tts):
        blocks = await collect(tts, AudioRequest(text=TEXT), 777)
    total = fake.samples_for(TEXT)
    assert all(len(b) == 777 for b in blocks[:-1])
    assert 1 <= len(blocks[-1]) <= 777
    assert sum(len(b) for b in blocks) == total
    assert all(b.dtype == np.float32 for b in blocks)
    samples = np.concatenate(blocks)
    assert np.array_equal(samples, pcm16_to_float(fake.pcm(TEXT)))
    assert float(np.max(np.abs(samples))) <= 1.0
    assert fake.last.tokens_sent > 1  # it really came in several chunks


@pytest.mark.parametrize("rate", [16_000, 24_000, 44_100, 48_000])
async def test_the_tone_survives_resampling(rate: int) -> None:
    async with speech() as (fake, tts):
        blocks = await collect(tts, AudioRequest(text=TEXT, sample_rate=rate), 320)
    samples = np.concatenate(blocks)
    assert all(len(b) == 320 for b in blocks[:-1])
    assert len(samples) == round(fake.samples_for(TEXT) * rate / SOURCE_RATE)
    assert abs(peak_hz(samples, rate) - 220.0) < 1.5
    assert float(np.max(np.abs(samples))) == pytest.approx(0.5, abs=0.01)


def test_streaming_resampling_is_the_same_however_the_input_is_cut() -> None:
    rng = np.random.default_rng(7)
    source = rng.uniform(-1, 1, 5001).astype(np.float32)
    for dst in (8_000, 16_000, 22_050, 48_000):
        whole = _Resampler(SOURCE_RATE, dst)
        expected = np.concatenate([whole.feed(source), whole.flush()])
        cut = _Resampler(SOURCE_RATE, dst)
        parts, start = [], 0
        while start < len(source):
            size = int(rng.integers(0, 40))
            parts.append(cut.feed(source[start : start + size]))
            start += size
        parts.append(cut.flush())
        got = np.concatenate(parts)
        assert len(got) == round(len(source) * dst / SOURCE_RATE)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        # Linear interpolation: every third 16 kHz sample is a 24 kHz one, exactly.
        if dst == 16_000:
            np.testing.assert_allclose(got[::2], source[::3][: len(got[::2])], atol=1e-6)


def test_the_blocker_carries_the_remainder() -> None:
    blocker = Blocker(4)
    out = blocker.feed(np.arange(3, dtype=np.float32))
    out += blocker.feed(np.arange(3, 9, dtype=np.float32))
    assert [b.tolist() for b in out] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    rest = blocker.flush()
    assert rest is not None
    assert rest.tolist() == [8]
    assert blocker.flush() is None


async def test_samples_split_across_chunks_are_joined() -> None:
    async with FakeSpeech(chunk_bytes=3) as fake:
        tts = TtsEngine(api_key="k", base_url=fake.url)
        try:
            blocks = await collect(tts, AudioRequest(text="hey"), 100)
        finally:
            await tts.aclose()
    assert np.array_equal(np.concatenate(blocks), pcm16_to_float(fake.pcm("hey")))


async def test_the_voice_and_model_reach_the_provider() -> None:
    async with speech(model="tts-test", voice="coral") as (fake, tts):
        await collect(tts, AudioRequest(text="hello"), 480)
        assert fake.last.body == {
            "model": "tts-test",
            "voice": "coral",
            "input": "hello",
            "response_format": "pcm",
        }
        await collect(tts, AudioRequest(text="hello", voice="nova"), 480)
        assert fake.last.body["voice"] == "nova"
        assert fake.last.headers["authorization"] == "Bearer sk-test"
        assert fake.last.path == "/v1/audio/speech"


def test_the_defaults_are_openais_small_model_and_alloy() -> None:
    tts = TtsEngine(api_key="k")
    assert (tts.name, tts.model, tts.voice, tts.needs_key) == (
        "tts",
        "gpt-4o-mini-tts",
        "alloy",
        True,
    )


async def test_lyrics_are_spoken_when_there_is_no_text() -> None:
    async with speech() as (fake, tts):
        await collect(tts, AudioRequest(lyrics="la  la\nlo"), 480)
        assert fake.last.body["input"] == "la la lo"


async def test_notes_alone_are_refused_before_any_request() -> None:
    request = AudioRequest(notes=(Note(pitch=69, start=0, duration=1, lyric="la"),))
    async with speech() as (fake, tts):
        with pytest.raises(AudioEngineError, match="does not sing"):
            tts.duration_s(request)
        with pytest.raises(AudioEngineError, match="does not sing"):
            await collect(tts, request, 480)
        with pytest.raises(AudioEngineError, match="nothing to say"):
            await collect(tts, AudioRequest(text="  "), 480)
        with pytest.raises(AudioEngineError, match="longer than"):
            await collect(tts, AudioRequest(text="a" * 5000), 480)
        assert fake.requests == []


def test_the_duration_is_estimated_from_the_text() -> None:
    tts = TtsEngine(api_key="k")
    assert 8 <= tts.duration_s(AudioRequest(text="word " * 30)) <= 14  # 30 words: ~10 s
    assert tts.duration_s(AudioRequest(text="こんにちは")) == pytest.approx(5 / 7)
    assert tts.duration_s(AudioRequest(lyrics="la la")) > 0


@pytest.mark.parametrize("status", [400, 429, 500, 503])
async def test_a_provider_failure_is_an_audio_engine_error(status: int) -> None:
    async with speech(Script(fail_status=status, fail_times=1)) as (fake, tts):
        with pytest.raises(AudioEngineError, match=f"HTTP {status}"):
            await collect(tts, AudioRequest(text=TEXT), 480)
        assert fake.last.status == status


async def test_a_refused_key_is_not_quoted() -> None:
    async with speech(Script(expect_key="sk-right"), api_key="sk-wrong-secret") as (_, tts):
        with pytest.raises(AudioEngineError) as caught:
            await collect(tts, AudioRequest(text=TEXT), 480)
    assert "401" in caught.value.args[0]
    assert "sk-" not in caught.value.args[0]


async def test_a_stream_broken_off_is_an_audio_engine_error() -> None:
    async with speech(Script(fail_after=2)) as (_, tts):
        with pytest.raises(AudioEngineError, match="connection"):
            await collect(tts, AudioRequest(text=TEXT), 480)


async def test_an_unreachable_server_is_an_audio_engine_error() -> None:
    async with FakeSpeech() as fake:
        url = fake.url
    tts = TtsEngine(api_key="k", base_url=url, timeout=2.0)
    try:
        with pytest.raises(AudioEngineError, match="connection"):
            await collect(tts, AudioRequest(text="hi"), 480)
    finally:
        await tts.aclose()


async def test_closing_the_generator_mid_stream_closes_the_http_stream() -> None:
    async with speech(Script(delay=0.02)) as (fake, tts):
        blocks = tts.blocks(AudioRequest(text=TEXT * 10), 480)
        assert len(await anext(blocks)) == 480
        await blocks.aclose()
        closed_at = time.monotonic()
        disconnected_at = await fake.wait_disconnect()
        assert disconnected_at - closed_at < 0.1
        assert fake.last.completed_at is None


async def test_cancelling_the_task_closes_the_http_stream() -> None:
    started = asyncio.Event()

    async def listen(tts: TtsEngine) -> None:
        async for _ in tts.blocks(AudioRequest(text=TEXT * 10), 480):
            started.set()

    async with speech(Script(delay=0.02)) as (fake, tts):
        task = asyncio.create_task(listen(tts))
        await asyncio.wait_for(started.wait(), 2.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled_at = time.monotonic()
        disconnected_at = await fake.wait_disconnect()
        assert disconnected_at - cancelled_at < 0.1


async def test_no_key_is_needed_for_a_custom_server() -> None:
    async with speech(api_key=None) as (fake, tts):
        assert not tts.needs_key
        blocks = await collect(tts, AudioRequest(text="hello"), 480)
        assert sum(len(b) for b in blocks) == fake.samples_for("hello")
        assert fake.last.headers["authorization"] == "Bearer unused"


async def test_openai_itself_needs_a_key() -> None:
    tts = TtsEngine(api_key=None, base_url="https://api.openai.com/v1/")
    with pytest.raises(AudioEngineError, match="OPENAI_API_KEY"):
        await collect(tts, AudioRequest(text="hello"), 480)
    await tts.aclose()


async def test_the_fake_serves_pcm_only() -> None:
    async with (
        FakeSpeech() as fake,
        openai.AsyncOpenAI(api_key="k", base_url=fake.url, max_retries=0) as client,
    ):
        with pytest.raises(openai.BadRequestError, match="pcm"):
            await client.audio.speech.create(model="m", voice="alloy", input="hi")
        response = await client.audio.speech.create(
            model="m", voice="alloy", input="hi", response_format="pcm"
        )
        assert response.content == fake.pcm("hi")
        assert response.response.headers["content-type"] == "audio/pcm"
