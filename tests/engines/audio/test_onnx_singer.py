"""The onnx audio engine on the tiny models of :mod:`.tiny_audio_models`: blocks of the
promised sizes, the notes' pitch, consonants and rests heard in the output, lyrics to
phonemes, resampling, model directories that will not load, and cancellation."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from tests.engines.audio.tiny_audio_models import (
    CONSONANT_LOUDNESS,
    HOP_SIZE,
    PHONEMES,
    SAMPLE_RATE,
    VOWEL_LOUDNESS,
    Variant,
    manifest,
    write_model_dir,
)
from yamabiko.engines.audio.base import AudioEngineError, AudioRequest, Note, frequency
from yamabiko.engines.audio.onnx import (
    NO_SPEECH,
    Manifest,
    OnnxSingerEngine,
    Phonemizer,
    Syllable,
    romanize,
    split_syllables,
)

VARIANTS: list[Variant] = ["frames", "phonemes"]
WAIT = 5.0
"""Seconds any wait in these tests may take before it fails."""
BLOCK = 480

ModelDir = Callable[..., Path]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    built: dict[str, Path] = {}

    def get(variant: Variant = "frames") -> Path:
        if variant not in built:
            built[variant] = write_model_dir(tmp_path_factory.mktemp(variant), variant)
        return built[variant]

    return get


async def render(
    engine: OnnxSingerEngine, request: AudioRequest, block: int = BLOCK
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """All the samples, after checking the blocks' guarantees."""
    blocks = [b async for b in engine.blocks(request, block)]
    for b in blocks:
        assert b.dtype == np.float32
        assert b.ndim == 1
        assert np.all(np.abs(b) <= 1.0)
    assert all(len(b) == block for b in blocks[:-1])
    assert not blocks or 1 <= len(blocks[-1]) <= block
    samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    assert len(samples) == round(engine.duration_s(request) * request.sample_rate)
    return samples


def pitch(samples: np.ndarray[Any, Any], rate: int) -> float:
    """The strongest frequency, to a fraction of a hertz (zero-padded FFT)."""
    size = 1 << 19
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=size))
    return float(np.argmax(spectrum) * rate / size)


def at(seconds: float, rate: int = SAMPLE_RATE) -> int:
    return round(seconds * rate)


# tempo 120: a beat is half a second.
MELODY = AudioRequest(
    notes=(
        Note(pitch=60, start=0.0, duration=1.0, lyric="さ"),
        Note(pitch=64, start=1.0, duration=1.0, lyric="ku"),
        Note(pitch=67, start=2.0, duration=1.0, lyric="ra"),
        Note(pitch=72, start=4.0, duration=1.5, lyric="-"),
    ),
    tempo=120.0,
)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_the_output_follows_the_notes_pitch(model_dir: ModelDir, variant: Variant) -> None:
    engine = OnnxSingerEngine(model_dir(variant))
    samples = await render(engine, MELODY)
    assert len(samples) == at(2.75)
    for note in MELODY.notes:
        start, end = note.start * 0.5, (note.start + note.duration) * 0.5
        # The vowel: past the consonant, off the edges.
        heard = pitch(samples[at(start + 0.1) : at(end - 0.02)], SAMPLE_RATE)
        assert heard == pytest.approx(frequency(note.pitch), rel=0.02)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_rests_are_silent_and_consonants_quieter(
    model_dir: ModelDir, variant: Variant
) -> None:
    engine = OnnxSingerEngine(model_dir(variant))
    samples = await render(engine, MELODY)
    # The rest between the third note (ends 1.5 s) and the fourth (starts 2 s).
    assert np.abs(samples[at(1.5) : at(2.0)]).max() == 0.0
    # "さ": 50 ms of s, then a; "-": the vowel held, no consonant.
    assert np.abs(samples[: at(0.05)]).max() == pytest.approx(CONSONANT_LOUDNESS, rel=0.01)
    assert np.abs(samples[at(0.06) : at(0.5)]).max() == pytest.approx(VOWEL_LOUDNESS, rel=0.01)
    assert np.abs(samples[at(2.0) : at(2.05)]).max() == pytest.approx(VOWEL_LOUDNESS, rel=0.01)


async def test_a_leading_rest_and_block_sizes(model_dir: ModelDir) -> None:
    request = AudioRequest(notes=(Note(pitch=69, start=1.0, duration=0.37, lyric="a"),))
    for block in (1, 333, BLOCK, 100_000):
        samples = await render(OnnxSingerEngine(model_dir()), request, block)
        assert len(samples) == at(0.685)
        assert np.abs(samples[: at(0.5)]).max() == 0.0
        assert np.abs(samples[at(0.52) :]).max() > 0.4


@pytest.mark.parametrize("chunk_frames", [1, 7, 50, 10_000])
async def test_any_chunking_gives_the_same_length_and_loudness(
    model_dir: ModelDir, chunk_frames: int
) -> None:
    engine = OnnxSingerEngine(model_dir("phonemes"), chunk_frames=chunk_frames, overlap_frames=3)
    samples = await render(engine, MELODY)
    assert np.abs(samples[at(1.5) : at(2.0)]).max() == 0.0
    assert np.abs(samples[at(2.0) : at(2.75)]).max() == pytest.approx(VOWEL_LOUDNESS, rel=0.01)
    if chunk_frames >= 50:
        # The tiny vocoder's phase restarts in each window: shorter ones add a buzz.
        heard = pitch(samples[at(2.1) : at(2.7)], SAMPLE_RATE)
        assert heard == pytest.approx(frequency(72), rel=0.02)


async def test_the_same_request_gives_the_same_samples(model_dir: ModelDir) -> None:
    engine = OnnxSingerEngine(model_dir(), chunk_frames=30)
    first, second = await render(engine, MELODY), await render(engine, MELODY)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("rate", [16_000, 44_100, 8_000])
async def test_another_sample_rate_is_resampled(model_dir: ModelDir, rate: int) -> None:
    request = AudioRequest(notes=MELODY.notes, tempo=MELODY.tempo, sample_rate=rate)
    engine = OnnxSingerEngine(model_dir(), chunk_frames=64)
    samples = await render(engine, request)
    assert len(samples) == at(2.75, rate)
    heard = pitch(samples[at(0.6, rate) : at(0.98, rate)], rate)
    assert heard == pytest.approx(frequency(64), rel=0.02)
    assert np.abs(samples[at(1.52, rate) : at(1.98, rate)]).max() == 0.0


async def test_lyrics_are_spread_over_the_notes(model_dir: ModelDir) -> None:
    notes = tuple(Note(pitch=62, start=i, duration=1.0) for i in range(3))
    engine = OnnxSingerEngine(model_dir())
    plain = await render(engine, AudioRequest(notes=notes))
    sung = await render(engine, AudioRequest(notes=notes, lyrics="a ka a"))
    # Without lyrics every note holds the default vowel; "ka" starts with a consonant.
    assert np.abs(plain[at(0.5) : at(0.55)]).max() == pytest.approx(VOWEL_LOUDNESS, rel=0.01)
    assert np.abs(sung[at(0.5) : at(0.55)]).max() == pytest.approx(CONSONANT_LOUDNESS, rel=0.01)
    assert np.abs(sung[at(1.0) : at(1.05)]).max() == pytest.approx(VOWEL_LOUDNESS, rel=0.01)


async def test_overlapping_notes_are_cut_and_short_ones_dropped(model_dir: ModelDir) -> None:
    request = AudioRequest(
        notes=(
            Note(pitch=60, start=0.0, duration=4.0, lyric="a"),
            Note(pitch=67, start=1.0, duration=1.0, lyric="o"),
            Note(pitch=50, start=2.0, duration=0.001, lyric="o"),
        )
    )
    samples = await render(OnnxSingerEngine(model_dir()), request)
    # The length is the latest written end; the cut-off part of the first note is a
    # rest, and the last note is shorter than a frame.
    assert len(samples) == at(2.0)
    assert np.abs(samples[at(1.0) :]).max() == 0.0
    assert pitch(samples[at(0.05) : at(0.45)], SAMPLE_RATE) == pytest.approx(
        frequency(60), rel=0.02
    )
    assert pitch(samples[at(0.55) : at(0.95)], SAMPLE_RATE) == pytest.approx(
        frequency(67), rel=0.02
    )


async def test_nothing_to_sing_gives_no_blocks(model_dir: ModelDir) -> None:
    engine = OnnxSingerEngine(model_dir())
    assert await render(engine, AudioRequest()) == pytest.approx([])
    assert await render(engine, AudioRequest(notes=(Note(pitch=60, start=0, duration=0),))) == (
        pytest.approx([])
    )


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (AudioRequest(text="hello"), NO_SPEECH),
        (AudioRequest(notes=(Note(pitch=60, start=-1, duration=1),)), "start"),
        (AudioRequest(notes=(Note(pitch=60, start=0, duration=float("nan")),)), "finite"),
        (AudioRequest(notes=(Note(pitch=128, start=0, duration=1),)), "pitch"),
        (AudioRequest(notes=(Note(pitch=60, start=0, duration=1),), tempo=0), "tempo"),
        (AudioRequest(notes=(Note(pitch=60, start=0, duration=10_000),)), "at most"),
        (AudioRequest(notes=(Note(pitch=60, start=0, duration=1),), sample_rate=0), "rate"),
    ],
)
async def test_requests_it_cannot_render(
    model_dir: ModelDir, request_: AudioRequest, message: str
) -> None:
    engine = OnnxSingerEngine(model_dir(), max_duration_s=60)
    with pytest.raises(AudioEngineError, match=message):
        await render(engine, request_)


# Lyrics to phonemes.


def test_kana_become_syllables_and_romaji() -> None:
    assert split_syllables("さくら sakura") == ["さ", "く", "ら", "sakura"]
    assert split_syllables("きゃりー ぱみゅ") == ["きゃ", "り", "-", "ぱ", "みゅ"]
    assert split_syllables("ラララ la") == ["ラ", "ラ", "ラ", "la"]
    assert [romanize(s) for s in ["きゃ", "しゃ", "ちょ", "ジュ", "ふぁ", "ん", "っ", "La"]] == [
        "kya",
        "sha",
        "cho",
        "ju",
        "fa",
        "n",
        "cl",
        "la",
    ]


@pytest.fixture
def phonemizer() -> Phonemizer:
    return Phonemizer(Manifest.parse(manifest(dictionary={"love": ["l", "a", "v"]})))


def names(phonemizer: Phonemizer, syllable: Syllable) -> tuple[list[str], str | None, list[str]]:
    inventory = phonemizer.manifest.phonemes
    vowel = None if syllable.vowel is None else inventory[syllable.vowel]
    return [inventory[i] for i in syllable.onset], vowel, [inventory[i] for i in syllable.coda]


@pytest.mark.parametrize(
    ("lyric", "expected"),
    [
        ("ka", (["k"], "a", [])),
        ("し", (["sh"], "i", [])),
        ("shi", (["sh"], "i", [])),
        ("ん", ([], "N", [])),
        ("っ", (["SP"], None, [])),  # no "cl" in the tiny inventory
        ("love", (["l"], "a", ["v"])),  # the dictionary
        ("LIVE", (["l"], "i", ["v"])),  # the letter rule: coda vowels dropped
        ("strong", (["s", "t", "r"], "o", ["n"])),  # "g" is not in the inventory
        ("mm", (["m", "m"], None, [])),
        ("xyz", ([], "a", [])),  # nothing it can spell: the default vowel
    ],
)
def test_syllables_become_phonemes(
    phonemizer: Phonemizer, lyric: str, expected: tuple[list[str], str | None, list[str]]
) -> None:
    assert names(phonemizer, phonemizer.syllable(lyric)) == expected


# Model directories that will not load.


def broken(tmp_path: Path, how: str) -> Path:
    directory = write_model_dir(tmp_path / "model")
    data = manifest()
    if how == "no directory":
        return tmp_path / "missing"
    if how == "no manifest":
        (directory / "manifest.json").unlink()
    elif how == "bad json":
        (directory / "manifest.json").write_text("{not json")
    elif how == "no phonemes":
        del data["phonemes"]
    elif how == "bad silence":
        data["silence"] = "pau"
    elif how == "bad hop":
        data["hop_size"] = 0
    elif how == "no vocoder":
        del data["vocoder"]
    elif how == "no acoustic file":
        (directory / "acoustic.onnx").unlink()
    elif how == "corrupt vocoder":
        (directory / "vocoder.onnx").write_bytes(b"not a model")
    elif how == "wrong input name":
        data["acoustic"]["f0"] = "pitch"
    elif how == "an input left unfed":
        data["acoustic"]["durations"] = "durations"
    elif how == "wrong output name":
        data["vocoder"]["waveform"] = "audio"
    elif how == "bad dictionary":
        data["dictionary"] = {"ka": ["k", "ah"]}
    if how not in ("no manifest", "bad json"):
        (directory / "manifest.json").write_text(json.dumps(data))
    return directory


BROKEN = [
    "no directory",
    "no manifest",
    "bad json",
    "no phonemes",
    "bad silence",
    "bad hop",
    "no vocoder",
    "no acoustic file",
    "corrupt vocoder",
    "wrong input name",
    "an input left unfed",
    "wrong output name",
    "bad dictionary",
]


@pytest.mark.parametrize("how", BROKEN)
async def test_a_broken_directory_raises_a_safe_error(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory = broken(tmp_path, how)
    engine = OnnxSingerEngine(directory)
    with caplog.at_level(logging.CRITICAL), pytest.raises(AudioEngineError) as raised:
        await render(engine, MELODY)
    message = str(raised.value)
    assert message.startswith("onnx audio engine: ")
    assert str(tmp_path) not in message
    # It stays broken, without reloading.
    with caplog.at_level(logging.CRITICAL), pytest.raises(AudioEngineError, match=message):
        await engine.load()
    with caplog.at_level(logging.CRITICAL), pytest.raises(AudioEngineError):
        OnnxSingerEngine.open(directory)


async def test_a_model_that_fails_at_run_time(tmp_path: Path) -> None:
    # The manifest says 5 mel channels, the acoustic model makes 4.
    directory = write_model_dir(tmp_path / "model", n_mels=5)
    engine = OnnxSingerEngine(directory)
    with pytest.raises(AudioEngineError, match="inference failed"):
        await render(engine, MELODY)


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        OnnxSingerEngine("x", chunk_frames=0)


# Threads and cancellation.


class Gate:
    """Wraps the engine's acoustic session: each ``run`` says it started, then waits
    for :meth:`open`."""

    def __init__(self, engine: OnnxSingerEngine) -> None:
        model = engine._model.now()  # the loaded model (the engine was opened)
        assert model is not None
        self.session = model.acoustic
        model.acoustic = self
        self.calls = 0
        self.started = threading.Event()
        self.opened = threading.Event()
        self.finished = threading.Event()

    def run(self, outputs: list[str], feed: dict[str, Any]) -> Any:
        self.calls += 1
        self.started.set()
        try:
            assert self.opened.wait(WAIT)
            return self.session.run(outputs, feed)
        finally:
            self.finished.set()

    def get_inputs(self) -> Any:
        return self.session.get_inputs()


async def test_cancelling_returns_at_once_and_abandons_the_chunk(model_dir: ModelDir) -> None:
    engine = OnnxSingerEngine.open(model_dir(), chunk_frames=20)
    gate = Gate(engine)

    async def consume() -> None:
        async for _ in engine.blocks(MELODY, BLOCK):
            pass

    task = asyncio.create_task(consume())
    assert await anyio.to_thread.run_sync(gate.started.wait, WAIT)
    task.cancel()
    with anyio.fail_after(1.0), pytest.raises(asyncio.CancelledError):
        await task
    assert not gate.finished.is_set()  # the thread is still inside its chunk
    gate.opened.set()
    assert await anyio.to_thread.run_sync(gate.finished.wait, WAIT)
    assert gate.calls == 1  # no chunk after it


async def test_closing_the_generator_starts_no_more_chunks(model_dir: ModelDir) -> None:
    engine = OnnxSingerEngine.open(model_dir(), chunk_frames=20)
    gate = Gate(engine)
    gate.opened.set()
    blocks = engine.blocks(MELODY, BLOCK)
    first = await anext(blocks)
    assert len(first) == BLOCK
    await blocks.aclose()
    assert gate.calls == 1


async def test_a_cancelled_first_request_leaves_the_engine_usable(model_dir: ModelDir) -> None:
    engine = OnnxSingerEngine(model_dir())
    with anyio.move_on_after(0):
        await render(engine, MELODY)
    assert len(await render(engine, MELODY)) == at(2.75)


async def test_concurrent_requests_share_the_sessions(model_dir: ModelDir) -> None:
    engine = OnnxSingerEngine(model_dir("phonemes"), chunk_frames=40)
    expected = await render(engine, MELODY)
    results = await asyncio.gather(*(render(engine, MELODY) for _ in range(6)))
    assert all(np.array_equal(r, expected) for r in results)


def test_the_engine_and_its_model_dir(tmp_path: Path) -> None:
    directory = write_model_dir(tmp_path / "m", "phonemes")
    assert {p.name for p in directory.iterdir()} == {
        "manifest.json",
        "acoustic.onnx",
        "vocoder.onnx",
    }
    engine = OnnxSingerEngine.open(directory)
    assert engine.name == "onnx"
    assert engine.duration_s(MELODY) == 2.75
    assert engine.duration_s(AudioRequest(text="hi")) == 0.0
    assert HOP_SIZE * 100 == SAMPLE_RATE
    assert "SP" in PHONEMES
